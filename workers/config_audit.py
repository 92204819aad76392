"""Config and access changes into the audit journal, at worker start and whenever the config reloads.

At start the worker compares its config's digest with the last ``config.changed`` record and, when
they differ, appends a ``config.changed`` record and one ``access.changed`` record per access
change (:mod:`workflows.policy.config_changes` decides what changed and strips every secret).
While it runs it looks at the config every :data:`CHECK_EVERY` seconds — which is also what makes
:class:`~operations.config.ConfigStore` reload a changed file — and does the same when the config
was reloaded or the day changed (a token expires at midnight UTC). Several workers starting at once
with the same config journal it once: the records' keys are derived from the last record and the
digest. A journal that cannot be written is a logged warning, tried again at the next look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime

from sqlalchemy.exc import SQLAlchemyError

from operations.config import ConfigStore
from operations.journal import Journal, JournalRecord
from workflows.config import Config
from workflows.policy.config_changes import config_change_entries

__all__ = ["CHECK_EVERY", "BUILT_IN", "journal_config", "config_journaling"]

log = logging.getLogger("tocsin")

CHECK_EVERY = 10.0
"""Seconds between looks at the config file."""
BUILT_IN = "(built-in defaults)"
"""The ``object`` of a record about the built-in config (no file)."""


async def journal_config(journal: Journal, store: ConfigStore, now: datetime | None = None) -> list[JournalRecord]:
    """Journal the store's config if it differs from the last journaled one; returns the records appended."""
    when = now or datetime.now(UTC)
    file = str(store.path) if store.path is not None else BUILT_IN
    last = await journal.last("config.changed")
    entries = config_change_entries(
        store.get(),
        file=file,
        now=when,
        last_seq=last.seq if last is not None else None,
        last_detail=last.detail if last is not None else None,
    )
    if not entries:
        return []
    records = await journal.append(entries)
    if records:
        access = sum(1 for r in records if r.action == "access.changed")
        log.info(
            "audit journal: config %s recorded (digest %s…, %d access change(s))",
            file,
            entries[0].detail["digest"][:12],
            access,
        )
    return records


async def _safely(journal: Journal, store: ConfigStore) -> bool:
    try:
        await journal_config(journal, store)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("audit journal: cannot record the config (%s); trying again in %gs", exc, CHECK_EVERY)
        return False
    except Exception:  # recording the config must never stop the worker
        log.warning("audit journal: cannot record the config; trying again in %gs", CHECK_EVERY, exc_info=True)
        return False
    return True


async def _watch(
    journal: Journal, store: ConfigStore, every: float, today: Callable[[], date], seen: tuple[Config, date] | None
) -> None:
    while True:
        await asyncio.sleep(every)
        current = (store.get(), today())
        if seen is None or current[0] is not seen[0] or current[1] != seen[1]:
            if await _safely(journal, store):
                seen = current


@contextlib.asynccontextmanager
async def config_journaling(
    journal: Journal, store: ConfigStore, every: float = CHECK_EVERY
) -> AsyncIterator[asyncio.Task[None]]:
    """For the block: the config journaled now (before the block starts), then on every reload."""

    def today() -> date:
        return datetime.now(UTC).date()

    seen = (store.get(), today()) if await _safely(journal, store) else None
    task = asyncio.create_task(_watch(journal, store, every, today, seen))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
