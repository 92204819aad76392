"""Contracts of ``SilencesWorkflow`` (``silences/default``): silences, and the updates that add and expire them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from workflows.identity import Actor

__all__ = [
    "WORKFLOW",
    "UPDATE_ADD",
    "UPDATE_EXPIRE",
    "QUERY_LIST",
    "SILENCES_ID",
    "SilenceRecord",
    "AddSilence",
    "ExpireSilence",
    "SilencesState",
]

WORKFLOW = "SilencesWorkflow"
UPDATE_ADD = "add"
UPDATE_EXPIRE = "expire"
QUERY_LIST = "list"
SILENCES_ID = "silences/default"


class SilenceRecord(BaseModel):
    """One silence (a maintenance window)."""

    id: str
    matchers: list[str]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    expired_by: str | None = None
    """Who expired it early (None: it ran out on time or is active)."""
    created_by_actor: Actor | None = None
    """How ``created_by`` was verified."""
    expired_by_actor: Actor | None = None
    """How ``expired_by`` was verified."""

    def active(self, at: datetime) -> bool:
        """Whether it mutes alerts at ``at``."""
        return self.starts_at <= at < self.ends_at


class AddSilence(BaseModel):
    """Update ``add``."""

    matchers: list[str]
    duration: str
    by: str
    comment: str
    actor: Actor | None = None
    """Who adds it, and how they were verified (``by`` is its name)."""


class ExpireSilence(BaseModel):
    """Update ``expire``."""

    id: str
    by: str
    actor: Actor | None = None
    """Who expires it, and how they were verified (``by`` is its name)."""


class SilencesState(BaseModel):
    """Every silence, newest first; expired ones kept for the record (bounded)."""

    silences: list[SilenceRecord] = Field(default_factory=list)
    seq: int = 0
    journal_seq: int = 0
    """Audit journal records made so far (``workflows.journal``), carried across continue-as-new."""
