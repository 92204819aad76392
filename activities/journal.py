"""The audit journal activity: flows hand it :class:`~workflows.audit.JournalBatch` es to seal.

Built once per worker with the worker's :class:`~operations.journal.Journal`. Database errors are
left retryable (the journal's unavailability is transient: the workflow's retry policy keeps
trying); a retried call appends nothing twice, since the journal skips keys it already holds.
"""

from __future__ import annotations

import logging

from temporalio import activity

from operations.journal import Journal
from workflows.audit import ACTIVITY_APPEND, JournalBatch

__all__ = ["JournalActivities"]

log = logging.getLogger("tocsin.audit")


class JournalActivities:
    """The journal's activities, bound to one open journal."""

    def __init__(self, journal: Journal):
        self.journal = journal

    @activity.defn(name=ACTIVITY_APPEND)
    async def append(self, batch: JournalBatch) -> int:
        """Seal the batch's new entries into the chain; returns how many were new."""
        records = await self.journal.append(batch.entries)
        if records:
            log.debug("journaled %d record(s), last seq %d", len(records), records[-1].seq)
        return len(records)
