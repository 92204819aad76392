"""The audit journal on a real PostgreSQL: concurrent writers make one chain; tampering is found."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from operations.journal import open_journal
from tests.helpers import cli
from tests.postgres import PostgresServer
from workflows.audit import JournalEntry

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BURST = 200


def writer(dsn: str, first: int, last: int, pause: float = 0, start_at: float = 0) -> subprocess.Popen[str]:
    """A writer process; with ``start_at`` (an epoch second) it starts its burst then."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.journal_writer", dsn, str(first), str(last), str(pause), str(start_at)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> int:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    return int(out.split()[-1])


async def check_one_chain(dsn: str) -> None:
    journal = await open_journal(dsn, Path("."))
    try:
        result = await journal.verify()
        records = [r async for r in journal.records()]
    finally:
        await journal.close()
    assert result.ok, result
    assert result.count == BURST
    assert [r.seq for r in records] == list(range(1, BURST + 1))  # no gaps
    assert sorted(r.key for r in records) == sorted(f"burst/{i}" for i in range(BURST))  # no duplicates, none lost


async def test_two_writers_make_one_chain(postgres_dsn: str) -> None:
    # overlapping halves: keys 80..119 are sent by both; both migrate a fresh database at once
    start = time.time() + 3
    a, b = writer(postgres_dsn, 0, 120, start_at=start), writer(postgres_dsn, 80, BURST, start_at=start)
    new = finish(a) + finish(b)
    assert new == BURST
    await check_one_chain(postgres_dsn)


async def test_a_writer_killed_mid_burst_and_resent_leaves_one_chain(
    postgres: PostgresServer, postgres_dsn: str
) -> None:
    start = time.time() + 3
    slow = writer(postgres_dsn, 0, BURST, pause=0.02, start_at=start)
    other = writer(postgres_dsn, 100, BURST, pause=0.005, start_at=start)
    deadline = time.monotonic() + 60
    while True:  # kill the slow writer once it is well into the burst
        count = (
            int(postgres.sql(postgres_dsn, "SELECT count(*) FROM journal")) if _has_table(postgres, postgres_dsn) else 0
        )
        if count >= 30 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert slow.poll() is None, "the slow writer finished before it could be killed"
    slow.send_signal(signal.SIGKILL)
    slow.wait(timeout=10)
    finish(other)
    partial = int(postgres.sql(postgres_dsn, "SELECT count(*) FROM journal"))
    assert partial < BURST
    finish(writer(postgres_dsn, 0, BURST))  # the killed writer's batches re-sent from the start
    await check_one_chain(postgres_dsn)


def _has_table(postgres: PostgresServer, dsn: str) -> bool:
    return postgres.sql(dsn, "SELECT to_regclass('journal') IS NOT NULL") == "t"


async def test_audit_verify_names_the_updated_row(postgres: PostgresServer, postgres_dsn: str, tmp_path: Path) -> None:
    journal = await open_journal(postgres_dsn, tmp_path)
    try:
        await journal.append(
            [
                JournalEntry(key=f"k/{i}", time=datetime.now(UTC), action="deployment.approved", detail={"n": i})
                for i in range(10)
            ]
        )
    finally:
        await journal.close()
    env = {"TOCSIN_AUDIT_DSN": postgres_dsn, "TOCSIN_HOME": str(tmp_path)}
    intact = cli("audit", "verify", env=env, cwd=tmp_path)
    assert intact.returncode == 0 and "10 records, chain intact" in intact.stdout, intact.stderr
    postgres.sql(postgres_dsn, "UPDATE journal SET detail = '{\"n\":999}' WHERE seq = 7")
    broken = cli("audit", "verify", env=env, cwd=tmp_path)
    assert broken.returncode == 1
    assert "seq 7" in broken.stderr and "sha256" in broken.stderr


async def test_two_writers_on_the_default_sqlite_file_make_one_chain(tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path / 'audit.db'}"
    start = time.time() + 3
    a, b = writer(dsn, 0, 120, start_at=start), writer(dsn, 80, BURST, start_at=start)
    assert finish(a) + finish(b) == BURST
    await check_one_chain(dsn)


async def test_the_documented_append_only_role_appends_and_cannot_update(
    postgres: PostgresServer, postgres_dsn: str, tmp_path: Path
) -> None:
    owner = await open_journal(postgres_dsn, tmp_path)  # the owner migrates once
    await owner.close()
    role = f"writer_{postgres_dsn.rsplit('_', 1)[-1]}"
    for statement in (
        f"CREATE ROLE {role} LOGIN",
        "REVOKE ALL ON SCHEMA public FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT ON journal TO {role}",
        f"GRANT SELECT ON alembic_version TO {role}",
    ):
        postgres.sql(postgres_dsn, statement)
    restricted = postgres_dsn.replace("//tocsin@", f"//{role}@")
    journal = await open_journal(restricted, tmp_path)  # migrations at head need no more than SELECT
    try:
        new = await journal.append([JournalEntry(key="k/1", time=datetime.now(UTC), action="refused")])
        assert [r.seq for r in new] == [1] and (await journal.verify()).ok
    finally:
        await journal.close()
    for statement in ("UPDATE journal SET action = 'x'", "DELETE FROM journal", "TRUNCATE journal"):
        with pytest.raises(subprocess.CalledProcessError) as denied:
            postgres.sql(restricted, statement)
        assert "permission denied" in denied.value.stderr
