"""The audit journal store on SQLite: chain sealing, idempotent keys, verify, filters, the activity."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activities.journal import JournalActivities
from operations.journal import GENESIS, canonical, engine_url, open_journal
from workflows.audit import JournalBatch, JournalEntry
from workflows.identity import Actor

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def entry(key: str, minutes: int = 0, **kw) -> JournalEntry:
    return JournalEntry(
        key=key, time=T0 + timedelta(minutes=minutes), action=kw.pop("action", "deployment.approved"), **kw
    )


async def test_chain_is_sealed_and_keys_are_idempotent(tmp_path: Path) -> None:
    journal = await open_journal(None, tmp_path)
    try:
        alice = Actor(name="alice", verified=True, method="token", credential="laptop", via="api")
        first = await journal.append([entry("deploy/a/prod/1/approved", actor=alice, object="deploy/a/prod/1")])
        again = await journal.append(
            [entry("deploy/a/prod/1/approved", actor=alice), entry("x/2", 1), entry("x/2", 2), entry("x/3", 3)]
        )
        assert [r.seq for r in first] == [1]
        assert [r.key for r in again] == ["x/2", "x/3"]  # the repeated key skipped, also inside one batch
        assert [r.seq for r in again] == [2, 3]
        assert first[0].prev_sha256 == GENESIS
        assert again[0].prev_sha256 == first[0].sha256 and again[1].prev_sha256 == again[0].sha256
        body = {k: v for k, v in first[0].as_dict().items() if k != "sha256"}
        assert first[0].sha256 == hashlib.sha256(canonical(body).encode()).hexdigest()
        assert body["actor"]["credential"] == "laptop" and body["time"] == "2026-11-01T12:00:00.000000Z"
        assert (await journal.verify()).ok and (await journal.verify()).count == 3
        assert (await journal.last("deployment.approved")).seq == 3
        assert await journal.last("refused") is None
    finally:
        await journal.close()
    assert (tmp_path / "audit.db").exists()


async def test_concurrent_appends_in_one_process_make_one_chain(tmp_path: Path) -> None:
    journals = [await open_journal(None, tmp_path) for _ in range(3)]
    try:
        await asyncio.gather(*(j.append([entry(f"k/{n}/{i}", i)]) for i in range(20) for n, j in enumerate(journals)))
        result = await journals[0].verify()
        assert result.ok and result.count == 60
    finally:
        for j in journals:
            await j.close()


@pytest.mark.parametrize(
    ("sql", "seq", "why"),
    [
        ('UPDATE journal SET detail = \'{"comment":"edited"}\' WHERE seq = 2', 2, "sha256 does not match"),
        ("DELETE FROM journal WHERE seq = 2", 3, "gap"),
        ("UPDATE journal SET prev_sha256 = '{z}' WHERE seq = 3", 3, "prev_sha256"),
    ],
)
async def test_verify_names_the_first_broken_record(tmp_path: Path, sql: str, seq: int, why: str) -> None:
    journal = await open_journal(None, tmp_path)
    try:
        await journal.append([entry(f"k/{i}", i, detail={"comment": "ok"}) for i in range(4)])
        assert (await journal.verify()).ok
        with sqlite3.connect(tmp_path / "audit.db") as db:
            db.execute(sql.replace("{z}", "f" * 64))
        result = await journal.verify()
        assert not result.ok and result.seq == seq and why in (result.reason or "")
    finally:
        await journal.close()


async def test_filters(tmp_path: Path) -> None:
    journal = await open_journal(f"sqlite:///{tmp_path / 'j.db'}", tmp_path / "unused")
    try:
        bob = Actor(name="bob", via="slack")
        await journal.append(
            [
                entry("d/1", 0, object="deploy/payments/prod/1.0", action="deployment.requested", actor=bob),
                entry("d/2", 10, object="deploy/payments/staging/1.0", action="deployment.stage"),
                entry("i/1", 20, object="incident/abc", detail={"service": "payments", "env": "prod"}),
                entry("r/1", 30, action="refused", actor=Actor(name="eve", via="api")),
            ]
        )

        async def keys(**kw) -> list[str]:
            return [r.key async for r in journal.records(**kw)]

        assert await keys() == ["d/1", "d/2", "i/1", "r/1"]
        assert await keys(service="payments") == ["d/1", "d/2", "i/1"]
        assert await keys(service="payments", env="prod") == ["d/1", "i/1"]
        assert await keys(env="staging") == ["d/2"]
        assert await keys(since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=30)) == ["d/2", "i/1"]
        assert await keys(actor="bob") == ["d/1"]
        assert await keys(action="refused") == ["r/1"]
        assert not (tmp_path / "unused" / "audit.db").exists()
    finally:
        await journal.close()


async def test_the_activity_returns_how_many_were_new(tmp_path: Path) -> None:
    journal = await open_journal(None, tmp_path)
    try:
        acts = JournalActivities(journal)
        batch = JournalBatch(entries=[entry("a/1"), entry("a/2", 1)])
        assert await acts.append(batch) == 2
        assert await acts.append(batch) == 0
        assert (await journal.verify()).count == 2
    finally:
        await journal.close()


def test_dsn_mapping(tmp_path: Path) -> None:
    assert engine_url("postgresql://u:p@h:5432/db", tmp_path) == "postgresql+asyncpg://u:p@h:5432/db"
    assert engine_url("postgres://h/db", tmp_path) == "postgresql+asyncpg://h/db"
    assert engine_url("sqlite:////var/x.db", tmp_path) == "sqlite+aiosqlite:////var/x.db"
    assert engine_url(None, tmp_path).endswith(str(tmp_path.resolve() / "audit.db"))
    with pytest.raises(ValueError, match="TOCSIN_AUDIT_DSN"):
        engine_url("mysql://h/db", tmp_path)
    assert json.loads(canonical({"b": 1, "a": "é"})) == {"a": "é", "b": 1}
