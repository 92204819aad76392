"""Redaction of outgoing text: secrets never leave an activity.

The rules live in :mod:`workflows.policy.redact` (pure, shared with the doors in ``operations/``,
which redact before anything enters Temporal); this module keeps the activities' import path.
"""

from __future__ import annotations

from workflows.policy.redact import REDACTED, URL_REDACTED, Redactor, redact_message, redactor_for

__all__ = ["Redactor", "REDACTED", "URL_REDACTED", "redact_message", "redactor_for"]
