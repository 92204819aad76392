"""Which alerts of a group fire, in a bounded and compact form. Pure: no I/O, no Temporal.

An incident must know, for every alert it has seen, whether it fires (a re-sent alert changes
nothing; the incident resolves when the last one resolves) and how severe it is (the group's
severity) — but not its labels. The ledger keeps 13 bytes per alert: a 72-bit hash of the
fingerprint (12 base64url characters) and one character for status and severity (lower case
firing, upper case resolved: ``i`` info, ``w`` warning, ``e`` error, ``c`` critical).
``CAPACITY`` alerts (20,000: 260 KB packed) are tracked exactly; alerts beyond that are
counted as ``untracked`` and hold nothing open.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter

from workflows.policy.incidents import SEVERITY_ORDER

__all__ = ["AlertLedger", "CAPACITY", "KEY_LENGTH", "severity_code"]

CAPACITY = 20_000
KEY_LENGTH = 12
_ENTRY = KEY_LENGTH + 1
_CODES = "iwec"
_NAMES = ("info", "warning", "error", "critical")


def severity_code(labels: dict[str, str], firing: bool) -> str:
    """One character for an alert's status and severity (unknown severities count as warning)."""
    severity = labels.get("severity", "warning")
    rank = SEVERITY_ORDER.get(severity, SEVERITY_ORDER["warning"])
    code = _CODES[rank]
    return code if firing else code.upper()


def _key(fingerprint: str) -> str:
    digest = hashlib.sha256(fingerprint.encode("utf-8", "surrogatepass")).digest()[:9]
    return base64.urlsafe_b64encode(digest).decode("ascii")


class AlertLedger:
    """Status and severity of every alert of a group, by fingerprint hash; bounded by ``capacity``."""

    def __init__(self, packed: str = "", capacity: int = CAPACITY) -> None:
        """Unpack a ledger (``pack()``'s output; empty: a new ledger)."""
        self.capacity = capacity
        self._codes: dict[str, str] = {
            packed[i : i + KEY_LENGTH]: packed[i + KEY_LENGTH] for i in range(0, len(packed) - _ENTRY + 1, _ENTRY)
        }
        self._count: Counter[str] = Counter(self._codes.values())

    def pack(self) -> str:
        """The ledger as one string (13 characters per alert, insertion order)."""
        return "".join(k + c for k, c in self._codes.items())

    def __len__(self) -> int:
        return len(self._codes)

    def record(self, fingerprint: str, code: str) -> str:
        """Note an alert's status and severity (``severity_code``).

        Returns:
            ``new`` (first seen), ``changed`` (status or severity changed), ``same`` (a re-send),
            or ``untracked`` (a new alert while the ledger is full: not recorded).
        """
        key = _key(fingerprint)
        old = self._codes.get(key)
        if old == code:
            return "same"
        if old is None and len(self._codes) >= self.capacity:
            return "untracked"
        self._codes[key] = code
        self._count[code] += 1
        if old is None:
            return "new"
        self._count[old] -= 1
        return "changed"

    def firing(self) -> int:
        """Alerts firing now."""
        return sum(self._count[c] for c in _CODES)

    def resolved(self) -> int:
        """Alerts resolved."""
        return sum(self._count[c.upper()] for c in _CODES)

    def severity(self) -> str:
        """The highest severity among firing alerts, or among all alerts when none fires (``info`` if empty)."""
        for codes in (_CODES, _CODES + _CODES.upper()):
            ranks = [_CODES.index(c.lower()) for c in codes if self._count[c] > 0]
            if ranks:
                return _NAMES[max(ranks)]
        return "info"
