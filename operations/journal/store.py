"""The audit journal: an append-only, hash-chained table in SQLite or PostgreSQL.

Each record is sealed when it is appended: ``sha256`` is the SHA-256 of the canonical JSON
(sorted keys, no spaces, UTF-8) of the record without ``sha256`` — ``seq``, ``time``, ``actor``,
``action``, ``object``, ``detail``, ``key`` and ``prev_sha256``, the previous record's ``sha256``
(64 zeros for the first). Appends are serialized by the database (PostgreSQL:
``pg_advisory_xact_lock`` inside the transaction; SQLite: ``BEGIN IMMEDIATE``), so workers
appending at once still make one chain with no gaps. A ``key`` already journaled is skipped.
There is no update or delete path: :meth:`Journal.verify` finds any row changed behind its back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from workflows.audit import JournalEntry

__all__ = [
    "DSN_ENV",
    "GENESIS",
    "Journal",
    "JournalRecord",
    "VerifyResult",
    "canonical",
    "dsn_from_env",
    "engine_url",
    "iso",
    "open_journal",
    "seal",
]

DSN_ENV = "TOCSIN_AUDIT_DSN"
GENESIS = "0" * 64
PAGE = 1000
_LOCK_ID = 0x70C51A
"""The PostgreSQL advisory lock key that serializes appends (and migrations)."""
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"

_METADATA = sa.MetaData()
TABLE = sa.Table(
    "journal",
    _METADATA,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("time", sa.String(32), nullable=False),
    sa.Column("actor", sa.Text, nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("object", sa.String(512), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("prev_sha256", sa.String(64), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
)


def dsn_from_env() -> str | None:
    """``TOCSIN_AUDIT_DSN``, or None for the default SQLite file."""
    return os.environ.get(DSN_ENV) or None


def engine_url(dsn: str | None, home: Path) -> str:
    """The SQLAlchemy URL of a DSN: ``postgresql://`` → asyncpg, ``sqlite:///path`` → aiosqlite.

    None means ``<home>/audit.db``. A DSN already naming a driver is kept.

    Raises:
        ValueError: a scheme that is neither PostgreSQL nor SQLite.
    """
    if not dsn:
        home.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(home / 'audit.db').resolve()}"
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        raise ValueError(f"{DSN_ENV}: not a database URL: expected postgresql://… or sqlite:///path")
    base = scheme.split("+")[0].lower()
    if base in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}" if "+" not in scheme else dsn
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}" if "+" not in scheme else dsn
    raise ValueError(f"{DSN_ENV}: unsupported database {scheme!r}: use postgresql://… or sqlite:///path")


def iso(when: datetime) -> str:
    """An instant as the journal writes it: UTC, microseconds, ``Z``."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def seal(body: dict[str, Any]) -> str:
    """The ``sha256`` of a record's body (every field but ``sha256``)."""
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class JournalRecord:
    """One sealed record."""

    seq: int
    time: str
    actor: dict[str, Any] | None
    action: str
    object: str
    detail: dict[str, Any]
    key: str
    prev_sha256: str
    sha256: str

    def body(self) -> dict[str, Any]:
        """The fields the seal covers."""
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "object": self.object,
            "detail": self.detail,
            "key": self.key,
            "prev_sha256": self.prev_sha256,
        }

    def as_dict(self) -> dict[str, Any]:
        """The whole record, ``sha256`` included (what an export line holds)."""
        return {**self.body(), "sha256": self.sha256}

    @property
    def when(self) -> datetime:
        """``time`` as an aware datetime."""
        return datetime.fromisoformat(self.time.replace("Z", "+00:00"))


@dataclass(frozen=True)
class VerifyResult:
    """What :meth:`Journal.verify` found: ``ok``, how many records, else the first broken one and why."""

    ok: bool
    count: int
    seq: int | None = None
    reason: str | None = None


def _row_record(row: Any) -> JournalRecord:
    return JournalRecord(
        seq=row.seq,
        time=row.time,
        actor=json.loads(row.actor) if row.actor is not None else None,
        action=row.action,
        object=row.object,
        detail=json.loads(row.detail),
        key=row.key,
        prev_sha256=row.prev_sha256,
        sha256=row.sha256,
    )


def _matches_place(record: JournalRecord, service: str | None, env: str | None) -> bool:
    parts = record.object.split("/")
    for index, wanted in ((1, service), (2, env)):
        if wanted is None:
            continue
        name = "service" if index == 1 else "env"
        from_object = parts[index] if parts[0] == "deploy" and len(parts) > index else None
        if wanted not in (from_object, record.detail.get(name)):
            return False
    return True


class Journal:
    """The audit journal on one database; make it with :func:`open_journal`."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

    async def _lock(self, conn: AsyncConnection) -> None:
        if self.postgres:
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})

    async def append(self, entries: Sequence[JournalEntry]) -> list[JournalRecord]:
        """Seal the entries not journaled yet (by ``key``) at the end of the chain, in order; returns them."""
        fresh: dict[str, JournalEntry] = {}
        for entry in entries:
            fresh.setdefault(entry.key, entry)
        if not fresh:
            return []
        async with self.engine.begin() as conn:
            await self._lock(conn)
            keys = list(fresh)
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                held = await conn.execute(sa.select(TABLE.c.key).where(TABLE.c.key.in_(chunk)))
                for (key,) in held:
                    fresh.pop(key, None)
            if not fresh:
                return []
            last = (
                await conn.execute(sa.select(TABLE.c.seq, TABLE.c.sha256).order_by(TABLE.c.seq.desc()).limit(1))
            ).first()
            seq, prev = (last.seq, last.sha256) if last else (0, GENESIS)
            records = []
            for entry in fresh.values():
                seq += 1
                data = entry.model_dump(mode="json")
                body = {
                    "seq": seq,
                    "time": iso(entry.time),
                    "actor": data["actor"],
                    "action": entry.action,
                    "object": entry.object,
                    "detail": data["detail"],
                    "key": entry.key,
                    "prev_sha256": prev,
                }
                prev = seal(body)
                records.append(JournalRecord(**body, sha256=prev))
            await conn.execute(
                sa.insert(TABLE),
                [
                    {
                        **r.body(),
                        "actor": canonical(r.actor) if r.actor is not None else None,
                        "detail": canonical(r.detail),
                        "sha256": r.sha256,
                    }
                    for r in records
                ],
            )
        return records

    async def _pages(self, where: list[Any]) -> AsyncIterator[JournalRecord]:
        after = 0
        while True:
            query = sa.select(TABLE).where(TABLE.c.seq > after, *where).order_by(TABLE.c.seq).limit(PAGE)
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query)).all()
            for row in rows:
                yield _row_record(row)
            if len(rows) < PAGE:
                return
            after = rows[-1].seq

    async def records(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        service: str | None = None,
        env: str | None = None,
        actor: str | None = None,
        action: str | None = None,
    ) -> AsyncIterator[JournalRecord]:
        """Records in ``seq`` order: at or after ``since``, before ``until``, of a service or environment
        (the object id ``deploy/<service>/<env>/…`` or ``detail.service``/``detail.env``), by an actor
        (its name), with an action."""
        where: list[Any] = []
        if since is not None:
            where.append(TABLE.c.time >= iso(since))
        if until is not None:
            where.append(TABLE.c.time < iso(until))
        if action is not None:
            where.append(TABLE.c.action == action)
        async for record in self._pages(where):
            if actor is not None and (record.actor or {}).get("name") != actor:
                continue
            if _matches_place(record, service, env):
                yield record

    async def first(self) -> JournalRecord | None:
        """The oldest record, if any."""
        async for record in self._pages([]):
            return record
        return None

    async def last(self, action: str) -> JournalRecord | None:
        """The newest record with this action, if any."""
        query = sa.select(TABLE).where(TABLE.c.action == action).order_by(TABLE.c.seq.desc()).limit(1)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _row_record(row) if row is not None else None

    async def verify(self) -> VerifyResult:
        """Walk the chain from seq 1: the first record whose seq leaves a gap, whose ``prev_sha256`` is
        not the previous ``sha256``, or whose ``sha256`` does not match its content."""
        count, prev_seq, prev = 0, 0, GENESIS
        async for record in self._pages([]):
            if record.seq != prev_seq + 1:
                missing = f"{prev_seq + 1}" + (f"-{record.seq - 1}" if record.seq - 1 > prev_seq + 1 else "")
                return VerifyResult(False, count, record.seq, f"gap: seq {missing} missing before it")
            if record.prev_sha256 != prev:
                return VerifyResult(False, count, record.seq, "prev_sha256 is not the previous record's sha256")
            if seal(record.body()) != record.sha256:
                return VerifyResult(
                    False, count, record.seq, "sha256 does not match the record (changed after sealing)"
                )
            count, prev_seq, prev = count + 1, record.seq, record.sha256
        return VerifyResult(True, count)

    async def close(self) -> None:
        """Release the connections."""
        await self.engine.dispose()


def _sqlite_serialized(engine: AsyncEngine) -> None:
    """Every SQLite transaction starts with ``BEGIN IMMEDIATE`` (one writer at a time, across processes)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _upgrade(connection: Connection) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration, one process at a time."""
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        await conn.run_sync(_upgrade)


async def open_journal(dsn: str | None, home: Path) -> Journal:
    """Open (and migrate to head) the journal at ``dsn`` (None: ``<home>/audit.db``).

    Raises:
        ValueError: an unsupported DSN.
    """
    url = engine_url(dsn, home)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _sqlite_serialized(engine)
    else:
        engine = create_async_engine(url, pool_pre_ping=True)
    for attempt in range(5):
        try:
            await migrate(engine)
            break
        except sa.exc.OperationalError:
            if attempt == 4:
                await engine.dispose()
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    return Journal(engine)
