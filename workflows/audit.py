"""The audit journal's contract: what a flow hands the journal activity, and ``audit:`` in the config.

Flows append records through the activity named :data:`ACTIVITY_APPEND` with a :class:`JournalBatch`;
the activity seals each record into the hash chain of the journal (SQLite under ``TOCSIN_HOME``,
PostgreSQL with ``TOCSIN_AUDIT_DSN``). Each entry's ``key`` is derived from the workflow id and the
event (``<workflow id>/<event seq or name>``), so an activity retried, or a workflow task replayed,
appends nothing twice: the journal ignores a key it already holds.

Records carry the verified :class:`~workflows.identity.Actor`, never a secret: ``detail`` holds
names, ids, outcomes and reasons, not message text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workflows.identity import Actor
from workflows.policy.durations import check_duration

__all__ = ["ACTIVITY_APPEND", "JournalEntry", "JournalBatch", "AuditConfig", "ACTIONS"]

ACTIVITY_APPEND = "journal_append"
"""The activity every flow calls to append to the journal."""

ACTIONS = (
    # human actions and their outcome (the actor is the person)
    "incident.acknowledged",
    "incident.resolved",
    "incident.escalated",
    "incident.snoozed",
    "deployment.requested",
    "deployment.approved",
    "deployment.rejected",
    "deployment.control",
    "rollback.requested",
    "silence.added",
    "silence.expired",
    "build.reported",
    "notification.requested",
    "refused",
    # what Tocsin did (the actor is Tocsin)
    "incident.state",
    "deployment.gate",
    "deployment.stage",
    "deployment.finished",
    "rollback.finished",
    "notification.delivered",
    "notification.dead_lettered",
    "config.changed",
    "access.changed",
)
"""Action names in the journal (``tocsin audit export --action`` filters on them)."""


class JournalEntry(BaseModel):
    """One event to seal into the journal."""

    key: str = Field(min_length=1, max_length=512)
    """Idempotency key: ``<workflow id>/<event>``; a key already journaled is skipped."""
    time: datetime
    """When it happened (the workflow's clock)."""
    actor: Actor | None = None
    """Who did it; None for Tocsin itself."""
    action: str
    object: str = ""
    """What it was done to: a workflow id (``deploy/payments/prod/1.4.2``), a config file…"""
    detail: dict[str, Any] = Field(default_factory=dict)


class JournalBatch(BaseModel):
    """Entries appended in order by one activity call."""

    entries: list[JournalEntry]


class AuditConfig(BaseModel):
    """``audit:`` in ``tocsin.yaml``."""

    model_config = ConfigDict(extra="forbid")

    history_retention: str = "90d"
    """How long Temporal keeps closed workflows: workers raise the namespace retention to at least this."""

    _v_retention = field_validator("history_retention")(lambda cls, v: check_duration(v))
