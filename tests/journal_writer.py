"""A journal writer process for the concurrency tests:
``python -m tests.journal_writer DSN FIRST LAST [PAUSE [START_AT]]``.

Opens the journal, waits for the epoch second ``START_AT`` (so that writers start their bursts
together), then appends the entries ``burst/FIRST`` … ``burst/LAST-1`` through the ``journal_append``
activity's class, two per batch, pausing ``PAUSE`` seconds between batches; prints ``done N`` (how
many were new).
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from activities.journal import JournalActivities
from operations.journal import open_journal
from workflows.audit import JournalBatch, JournalEntry
from workflows.identity import Actor

BATCH = 2


async def main(dsn: str, first: int, last: int, pause: float, start_at: float) -> None:
    journal = await open_journal(dsn, Path("."))
    acts = JournalActivities(journal)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    new = 0
    try:
        for start in range(first, last, BATCH):
            entries = [
                JournalEntry(
                    key=f"burst/{i}",
                    time=datetime.now(UTC),
                    actor=Actor(name=f"user{i % 7}", verified=True, method="token", credential="ci", via="api"),
                    action="deployment.approved",
                    object=f"deploy/svc{i % 3}/prod/{i}",
                    detail={"n": i},
                )
                for i in range(start, min(start + BATCH, last))
            ]
            new += await acts.append(JournalBatch(entries=entries))
            if pause:
                await asyncio.sleep(pause)
    finally:
        await journal.close()
    print(f"done {new}", flush=True)


if __name__ == "__main__":
    args = [*sys.argv[1:4], *[*sys.argv[4:], "0", "0"][:2]]
    asyncio.run(main(args[0], int(args[1]), int(args[2]), float(args[3]), float(args[4])))
