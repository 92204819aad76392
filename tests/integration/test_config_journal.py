"""Config and access changes in the real audit journal (SQLite under a temporary home)."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import yaml
from temporalio.testing import WorkflowEnvironment

from operations.config import ConfigStore
from operations.journal import Journal, JournalRecord, open_journal
from tests.helpers import settings_for
from workers.config_audit import config_journaling, journal_config
from workers.main import running_worker

HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
CONFIG: dict[str, Any] = {
    "channels": {"console": {"type": "console"}},
    "receivers": [{"name": "console", "channels": ["console"]}],
    "environments": {"prod": {"approvers": ["alice"], "production": True}},
    "users": [
        {"name": "alice", "roles": ["approver:prod"], "tokens": [{"id": "laptop", "sha256": HASH}]},
        {"name": "bob", "roles": ["deployer:prod"]},
    ],
}


def _write(path: Path, data: dict[str, Any], bump: int = 0) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + bump))  # a reload is noticed by mtime
    return path


async def _records(journal: Journal, action: str) -> list[JournalRecord]:
    return [r async for r in journal.records(action=action)]


async def test_worker_starts_journal_a_config_once_and_a_new_approver_as_an_access_change(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    path = _write(tmp_path / "tocsin.yaml", CONFIG)
    settings = settings_for(f"tq-{uuid.uuid4().hex[:8]}", tmp_path)
    journal = await open_journal(None, tmp_path)
    try:
        for _ in range(2):
            async with running_worker(dev_env.client, settings, ConfigStore(path), journal):
                pass
        changed = await _records(journal, "config.changed")
        assert len(changed) == 1 and changed[0].object == str(path) and changed[0].detail["initial"] is True
        assert await _records(journal, "access.changed") == []

        _write(path, {**CONFIG, "environments": {"prod": {"approvers": ["alice", "bob"], "production": True}}}, 5)
        async with running_worker(dev_env.client, settings, ConfigStore(path), journal):
            pass
        changed = await _records(journal, "config.changed")
        access = await _records(journal, "access.changed")
        assert len(changed) == 2
        assert changed[1].detail["changes"]["environments"] == {"changed": [{"name": "prod", "fields": ["approvers"]}]}
        assert [(a.object, a.detail["change"], a.detail["approver"]) for a in access] == [
            ("environments/prod", "approver.added", "bob")
        ]
        assert (await journal.verify()).ok
        everything = [r.as_dict() async for r in journal.records()]
        assert HASH not in str(everything)
    finally:
        await journal.close()


async def test_workers_starting_at_once_journal_the_config_once(tmp_path: Path) -> None:
    path = _write(tmp_path / "tocsin.yaml", CONFIG)
    journals = [await open_journal(None, tmp_path) for _ in range(3)]
    try:
        await asyncio.gather(*(journal_config(j, ConfigStore(path)) for j in journals))
        assert len(await _records(journals[0], "config.changed")) == 1
    finally:
        for j in journals:
            await j.close()


async def test_a_reloaded_config_is_journaled_while_the_worker_runs(tmp_path: Path) -> None:
    path = _write(tmp_path / "tocsin.yaml", CONFIG)
    journal = await open_journal(None, tmp_path)
    store = ConfigStore(path)
    try:
        async with config_journaling(journal, store, every=0.05):
            assert len(await _records(journal, "config.changed")) == 1
            users = [{**CONFIG["users"][0], "tokens": []}, CONFIG["users"][1]]
            _write(path, {**CONFIG, "users": users}, 5)
            for _ in range(100):
                access = await _records(journal, "access.changed")
                if access:
                    break
                await asyncio.sleep(0.05)
        assert [(a.object, a.detail["change"], a.detail["token"]) for a in access] == [
            ("user/alice", "token.removed", "laptop")
        ]
        assert len(await _records(journal, "config.changed")) == 2
    finally:
        await journal.close()
