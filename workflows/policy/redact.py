"""Redaction of secrets in text, URLs and the models that carry them (pure: no I/O).

Applied twice, by the same rules:

* **at the door** (``operations/``): a build event, a notification, an alert, a note, comment or
  reason is redacted *before* it enters Temporal, so no secret sits in workflow history, in the
  worker's log or in ``audit export``;
* **in every outgoing payload** (``activities/delivery.py``): the whole message a channel renders
  from (title, text, fields, links, buttons, labels) is redacted again before the channel builds
  its API call, so what was written into history before these rules existed, or matches a
  ``redact_patterns`` entry added since, does not leave either.

What goes: known token shapes (Slack, GitHub, AWS, SendGrid, JWTs, bearer and basic credentials,
private keys), ``password=…``-style pairs (``db_password=``, ``"token": "…"``, ``X-Api-Key: …``),
credentials in URLs (``https://user:pass@host``, ``?token=``, ``access_token=``, ``api_key=``,
``sig=``, ``X-Amz-Signature=`` …) and whatever the config's ``redact_patterns`` match.

What stays (no over-redaction): names that merely contain a secret word (``HighPasswd: probe``,
``password_reset_latency``, ``token_bucket``), prose after ``password:`` that does not look like a
secret (``password: expired``), ordinary query parameters (``?orgId=1&g0.expr=…``), commit SHAs.

Inside a URL the marker is ``REDACTED`` (no brackets), so a redacted link is still a valid URL for
Slack buttons, Teams actions and Jira links; in text it is ``[REDACTED]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from workflows.incident.models import Alert
from workflows.models import Message
from workflows.pipeline.models import BuildEvent

__all__ = [
    "REDACTED",
    "URL_REDACTED",
    "Redactor",
    "redactor_for",
    "is_secret_name",
    "redact_mapping",
    "redact_message",
    "redact_alert",
    "redact_alerts",
    "redact_build_event",
]

REDACTED = "[REDACTED]"
"""What replaces a secret in text."""
URL_REDACTED = "REDACTED"
"""What replaces a secret inside a URL (brackets are not valid there)."""
_MARKERS = (REDACTED, URL_REDACTED)

_TOKENS = re.compile(
    "|".join(
        [
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
            r"\bxox[abposre]-[A-Za-z0-9-]{10,}",  # Slack tokens
            r"\bxapp-[A-Za-z0-9-]{10,}",
            r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",  # GitHub tokens
            r"\bgithub_pat_[A-Za-z0-9_]{22,}\b",
            r"\bglpat-[A-Za-z0-9_-]{20,}\b",  # GitLab personal access tokens
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
            r"(?i:aws_secret_access_key\s*[=:]\s*\S+)",
            r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",  # JWT
            r"(?i:\bbearer\s+[A-Za-z0-9._~+/=-]{8,})",
            # HTTP basic credentials: base64 with a digit or +/= in it ("basic authentication" stays)
            r"(?i:\bbasic\s+(?=[A-Za-z0-9+/]*[0-9+/])[A-Za-z0-9+/]{12,}={0,2})",
            r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",  # SendGrid
            r"\bsk_(?:live|test)_[A-Za-z0-9]{16,}\b",  # Stripe secret keys
        ]
    )
)
"""Known token shapes, as one pattern (one scan per text)."""

# A name that *is* a secret's name: the secret word last, after optional ``prefix_`` parts
# (``db_password``, ``X-Api-Key``, ``client_secret``), never in the middle (``password_reset_latency``).
_WORDS = (
    r"password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key"
    r"|private[_-]?key|credentials?"
)
_PREFIX = r"(?:[a-z0-9]+[_.-])*"
_SECRET_NAME = re.compile(rf"(?i)^{_PREFIX}(?:{_WORDS})$")
# ``key=value`` / ``key: value`` / ``"key": "value"`` in prose: keep the key, hide the value.
_PAIR = re.compile(
    rf"(?i)(?<![\w.-])({_PREFIX}(?:{_WORDS})[\"']?\s*)([=:])(\s*)"
    r"(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
)
# A URL in text (up to whitespace, quotes or angle brackets).
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s<>\"'`]+")
# ``scheme://user:password@`` (the password may hold ``@``: up to the authority's last one).
_USERINFO = re.compile(r"(?i)^([a-z][a-z0-9+.-]*://)([^\s:/@?#]*):([^\s/?#]+)@")
# ``scheme://<token>@``: a user part alone that looks like a token (long, with a digit).
_USER_TOKEN = re.compile(r"(?i)^([a-z][a-z0-9+.-]*://)(?=[A-Za-z_-]*[0-9])([A-Za-z0-9_.~-]{20,})@")
# Query or fragment parameters that carry credentials.
_PARAM = re.compile(
    rf"(?i)([?&#;](?:{_PREFIX}(?:{_WORDS}|signature)|sig|auth|key|jwt|session[_-]?id)=)([^&#;\s]+)",
)


def _looks_secret(value: str) -> bool:
    """After ``password:`` (a colon, prose-like): is this value a secret or just a word?"""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return len(value) > 2  # quoted: a value, and only an empty one is harmless
    if value in _MARKERS:
        return False
    if not value.isalpha():
        return True  # digits or symbols: hunter2, p@ss, s3cr3t
    return len(value) >= 12  # a long single word is more likely a passphrase than prose


class Redactor:
    """Replaces secrets with ``[REDACTED]`` in text and ``REDACTED`` in URLs.

    Args:
        extra_patterns: regular expressions (the config's ``redact_patterns``) whose matches go too.

    Raises:
        ValueError: an extra pattern is not a valid regular expression (naming it).
    """

    def __init__(self, extra_patterns: Iterable[str] = ()):
        patterns: list[re.Pattern[str]] = [_TOKENS]
        for source in extra_patterns:
            try:
                patterns.append(re.compile(source))
            except re.error as exc:
                raise ValueError(f"redact_patterns: {source!r} is not a valid regular expression: {exc}") from None
        self._patterns = patterns

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced by ``[REDACTED]`` (URLs in it keep their shape)."""
        return self._apply(text, REDACTED)

    def url(self, url: str) -> str:
        """A URL field (a link, a button, a build URL) with its secrets replaced by ``REDACTED``."""
        return self._apply(url, URL_REDACTED)

    def value(self, value: str) -> str:
        """A value that may be a URL (a label, an annotation): :meth:`url` if it is one, else text."""
        stripped = value.strip()
        if "://" in stripped and not any(ch.isspace() for ch in stripped):
            return self.url(value)
        return self(value)

    def _apply(self, text: str, marker: str) -> str:
        if not text:
            return text
        out = text
        for pattern in self._patterns:
            out = pattern.sub(marker, out)
        if "://" in out:
            out = _URL.sub(lambda m: _redact_url(m.group(0), marker), out)
        if "=" in out or ":" in out:
            out = _PAIR.sub(lambda m: _pair(m, marker), out)
        return out


def _redact_url(url: str, marker: str) -> str:
    """Userinfo passwords, token-like users and credential parameters of one URL."""
    url = _USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:{_mark(m.group(3), marker)}@", url, count=1)
    url = _USER_TOKEN.sub(lambda m: f"{m.group(1)}{marker}@", url, count=1)
    return _PARAM.sub(lambda m: m.group(1) + _mark(m.group(2), marker), url)


def _mark(value: str, marker: str) -> str:
    return value if value in _MARKERS else marker


def _pair(match: re.Match[str], marker: str) -> str:
    key, sep, space, value = match.groups()
    if value in _MARKERS or (sep == ":" and not _looks_secret(value)):
        return match.group(0)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return f"{key}{sep}{space}{value[0]}{marker}{value[0]}"
    return f"{key}{sep}{space}{marker}"


@lru_cache(maxsize=32)
def _cached(patterns: tuple[str, ...]) -> Redactor:
    return Redactor(patterns)


def redactor_for(extra_patterns: Iterable[str] = ()) -> Redactor:
    """The redactor of a config's ``redact_patterns``, compiled once per distinct list."""
    return _cached(tuple(extra_patterns))


def is_secret_name(name: str) -> bool:
    """Whether ``name`` names a secret (``password``, ``db_password``, ``X-Api-Key``), not ``HighPasswd``."""
    return bool(_SECRET_NAME.match(name.strip()))


def redact_mapping(values: Mapping[str, str], redactor: Redactor) -> dict[str, str]:
    """Labels or annotations: the value of a secret-named key goes whole; others are redacted as values."""
    return {
        key: (REDACTED if value and is_secret_name(key) else redactor.value(value)) for key, value in values.items()
    }


def redact_message(message: Message, redactor: Redactor) -> Message:
    """Every text a channel can render from ``message``: title, text, fields, links, buttons, labels.

    Args:
        message: the channel-neutral message.
        redactor: the rules (built-in plus the config's patterns).

    Returns:
        A redacted copy (``message`` itself is not changed).
    """
    data = message.model_copy(deep=True)
    data.title = redactor(data.title)
    data.text = redactor(data.text)
    data.source = redactor(data.source)
    for fld in data.fields:
        fld.title = redactor(fld.title)
        fld.value = REDACTED if fld.value and is_secret_name(fld.title) else redactor(fld.value)
    for link in data.links:
        link.text = redactor(link.text)
        link.url = redactor.url(link.url)
    for action in data.actions:
        action.text = redactor(action.text)
        action.value = redactor(action.value)
        if action.url:
            action.url = redactor.url(action.url)
    data.labels = redact_mapping(data.labels, redactor)
    return data


def redact_alert(alert: Alert, extra_patterns: Iterable[str] | Redactor = ()) -> Alert:
    """An alert with its labels, annotations and ``generator_url`` redacted (before it enters Temporal).

    Args:
        alert: as Alertmanager (or ``tocsin alert``) sent it.
        extra_patterns: the config's ``redact_patterns``, or a ready :class:`Redactor`.

    Returns:
        A redacted copy; fingerprint, status and times are kept.
    """
    redactor = extra_patterns if isinstance(extra_patterns, Redactor) else redactor_for(extra_patterns)
    return alert.model_copy(
        update={
            "labels": redact_mapping(alert.labels, redactor),
            "annotations": redact_mapping(alert.annotations, redactor),
            "generator_url": redactor.url(alert.generator_url),
        }
    )


def redact_alerts(alerts: Iterable[Alert], extra_patterns: Iterable[str] = ()) -> list[Alert]:
    """:func:`redact_alert` over a batch, compiling the rules once."""
    redactor = redactor_for(extra_patterns)
    return [redact_alert(alert, redactor) for alert in alerts]


def redact_build_event(event: BuildEvent, redactor: Redactor) -> BuildEvent:
    """A CI event's free text redacted: its URL, author, failing step, log tail, failing tests' names and
    messages (the summary's failures and its per-test outcomes), findings (``top`` and serious findings).

    Repository, branch, commit and workflow name are identities (the pipeline's id), not free text.
    """
    text = redactor
    update: dict[str, object] = {
        "url": redactor.url(event.url) if event.url else event.url,
        "author": text(event.author) if event.author else event.author,
        "step": text(event.step) if event.step else event.step,
        "log_tail": text(event.log_tail) if event.log_tail else event.log_tail,
    }
    if event.tests is not None:
        failures = [
            f.model_copy(update={"name": text(f.name), "classname": text(f.classname), "message": text(f.message)})
            for f in event.tests.failures
        ]
        outcomes = [o.model_copy(update={"message": text(o.message)}) if o.message else o for o in event.tests.outcomes]
        update["tests"] = event.tests.model_copy(update={"failures": failures, "outcomes": outcomes})
    update["security"] = [
        s.model_copy(
            update={
                "top": [text(t) for t in s.top],
                "findings": [
                    f.model_copy(update={"message": text(f.message), "location": text(f.location)}) for f in s.findings
                ],
            }
        )
        for s in event.security
    ]
    return event.model_copy(update=update)
