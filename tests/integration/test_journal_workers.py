"""Two real ``tocsin worker`` processes journal into one PostgreSQL audit journal (issue 13).

A burst of 200 audited actions (notifications: each journals ``notification.requested`` and
``notification.delivered``) runs while one worker is SIGKILLed mid-burst and started again: the
journal is one valid chain, with no gap in ``seq`` and exactly one record per event.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from operations import Actor
from operations.builds import send_notification
from operations.config import load_config_file
from operations.journal import open_journal
from tests.helpers import address_of, ops
from workflows.models import Message

TOCSIN = str(Path(sys.executable).parent / "tocsin")
BURST = 200


def _worker(env: dict[str, str], home: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([TOCSIN, "worker"], cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _count(dsn: str, home: Path, action: str) -> int:
    journal = await open_journal(dsn, home)
    try:
        return sum([1 async for _ in journal.records(action=action)])
    finally:
        await journal.close()


async def test_two_workers_and_a_kill_mid_burst_make_one_chain(
    dev_env: WorkflowEnvironment, postgres_dsn: str, tmp_path: Path
) -> None:
    config = tmp_path / "tocsin.yaml"
    config.write_text(
        "channels: {console: {type: console}}\nreceivers: [{name: ops, channels: [console]}]\nroute: {receiver: ops}\n"
    )
    queue = f"journal-{tmp_path.name}"
    env = {k: v for k, v in os.environ.items() if k != "TOCSIN_CONFIG"}
    env.update(
        TEMPORAL_ADDRESS=address_of(dev_env.client),
        TOCSIN_TASK_QUEUE=queue,
        TOCSIN_CONFIG=str(config),
        TOCSIN_HOME=str(tmp_path / "home"),
        TOCSIN_AUDIT_DSN=postgres_dsn,
    )
    workers = [_worker(env, tmp_path), _worker(env, tmp_path)]
    ctx = ops(dev_env.client, queue, load_config_file(config))
    actor = Actor(name="ci-burst")
    try:
        for i in range(BURST):
            await send_notification(ctx, actor, "ops", Message(title=f"burst {i}", text="x"))
            if i == BURST // 3:
                workers[0].send_signal(signal.SIGKILL)  # mid-burst, with sends and journal batches in flight
                workers[0].wait()
                workers[0] = _worker(env, tmp_path)
        for _ in range(600):
            if await _count(postgres_dsn, tmp_path, "notification.delivered") >= BURST:
                break
            await asyncio.sleep(0.5)
    finally:
        for proc in workers:
            proc.kill()
            proc.wait()

    journal = await open_journal(postgres_dsn, tmp_path)
    try:
        records = [r async for r in journal.records()]
        verdict = await journal.verify()
    finally:
        await journal.close()
    assert verdict.ok, verdict
    assert [r.seq for r in records] == list(range(1, len(records) + 1))  # no gap
    actions = Counter(r.action for r in records)
    assert actions["notification.requested"] == BURST, actions  # each exactly once, across the kill
    assert actions["notification.delivered"] == BURST, actions
    assert len({r.key for r in records}) == len(records)
    requested = [r for r in records if r.action == "notification.requested"]
    assert {(r.actor or {}).get("name") for r in requested} == {"ci-burst"}
