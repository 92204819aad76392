"""The typed errors every operation raises; each door maps them once.

==================  ===========  ============  =====================
error               CLI exit     HTTP status   meaning
==================  ===========  ============  =====================
:class:`BadInput`   2            400 / 422     a field is wrong (named)
:class:`NotFound`   2            404           no such incident, deployment, silence
:class:`Refused`    2            403 / 409     the workflow or a rule said no (reason)
:class:`Conflict`   1            409           already running / already done
:class:`Unavailable` 1           503           Temporal did not answer
:class:`Unauthenticated` 1       401           no credential, or one that proves nothing
==================  ===========  ============  =====================
"""

from __future__ import annotations

__all__ = ["OperationError", "BadInput", "NotFound", "Refused", "Conflict", "Unavailable", "Unauthenticated"]


class OperationError(Exception):
    """Base of the errors an operation raises; ``str()`` is a one-line reason."""


class BadInput(OperationError):
    """Bad input; ``field`` names it (``--by``, ``labels``, ``receiver``…)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class NotFound(OperationError):
    """The object named does not exist."""


class Refused(OperationError):
    """The operation was refused (by a workflow's validator or a rule); ``str()`` is the reason."""


class Conflict(OperationError):
    """The operation conflicts with the current state (already running, nothing to roll back)."""


class Unavailable(OperationError):
    """Temporal (or another dependency) did not answer."""


class Unauthenticated(OperationError):
    """No credential, or one that proves nothing (an unknown or expired token, a bad ID token)."""
