"""Every user-facing operation, one function each, whatever the door (CLI, HTTP API, Slack, activities).

Each takes a :class:`Context` (Temporal client, config, task queue) and, for a
human action, an :class:`~workflows.identity.Actor`; it validates, then starts,
signals, updates or queries workflows *by contract* (names and models from
``workflows/<flow>/models.py``, never the workflow classes), and raises only
the typed errors of :mod:`operations.errors`, which each door maps once.
"""

from operations.context import Context
from operations.errors import BadInput, Conflict, NotFound, OperationError, Refused, Unavailable
from workflows.identity import Actor

__all__ = ["Actor", "Context", "OperationError", "BadInput", "NotFound", "Refused", "Conflict", "Unavailable"]
