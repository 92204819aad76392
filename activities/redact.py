"""Redaction of outgoing text: secrets never leave an activity."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["Redactor", "REDACTED"]

REDACTED = "[REDACTED]"

_BUILTIN = [
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack tokens
    r"\bxapp-[A-Za-z0-9-]{10,}",
    r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{22,}\b",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
    r"(?i)aws_secret_access_key\s*[=:]\s*\S+",
    r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",  # JWT
    r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}",
    r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",  # SendGrid
]
# key=value pairs: keep the key, hide the value.
_PAIRS = re.compile(
    r"(?i)\b((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
)
# credentials in URLs: scheme://user:pass@host
_URL_CREDS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s:/@]+):([^\s@/]+)@")


class Redactor:
    """Replaces secrets in text with ``[REDACTED]``."""

    def __init__(self, extra_patterns: Iterable[str] = ()):
        self._patterns = [re.compile(p) for p in [*_BUILTIN, *extra_patterns]]

    def __call__(self, text: str) -> str:
        if not text:
            return text
        out = _URL_CREDS.sub(lambda m: f"{m.group(1)}{m.group(2)}:{REDACTED}@", text)
        for pattern in self._patterns:
            out = pattern.sub(REDACTED, out)
        out = _PAIRS.sub(lambda m: f"{m.group(1)}{REDACTED}", out)
        return out
