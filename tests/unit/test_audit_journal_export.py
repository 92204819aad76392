"""The export's journal lines: sealed records verify alone, tampering names the record; refusals journaled."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from operations import Refused
from operations.audit import (
    chain_lines,
    export_audit,
    refusal_sink,
    verify_chain,
    verify_lines,
)
from operations.auth import refuse, set_refusal_sink
from operations.context import Context
from operations.journal import open_journal
from workflows.audit import JournalEntry
from workflows.config import default_config
from workflows.identity import Actor

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ALICE = Actor(name="alice", verified=True, method="token", credential="laptop", via="api")


async def _lines(tmp_path: Path) -> list[str]:
    journal = await open_journal(None, tmp_path)
    try:
        await journal.append(
            [
                JournalEntry(
                    key=f"deploy/payments/prod/1.{i}/approved",
                    time=T0 + timedelta(minutes=i),
                    actor=ALICE if i % 2 else None,
                    action="deployment.approved" if i % 2 else "deployment.stage",
                    object=f"deploy/payments/prod/1.{i}",
                    detail={"comment": "lgtm", "step": i},
                )
                for i in range(5)
            ]
        )
        # no Temporal call: nothing asked for is older than the journal's first record
        ctx = Context(None, default_config(), "tocsin")  # type: ignore[arg-type]
        return await export_audit(ctx, since=T0, journal=journal)
    finally:
        await journal.close()


async def test_journal_lines_carry_the_seal_and_verify(tmp_path: Path) -> None:
    lines = await _lines(tmp_path)
    assert len(lines) == 5 and verify_lines(lines) is None and verify_chain(lines) is None
    first = json.loads(lines[1])
    assert first["kind"] == "deployment" and first["actor"] == "alice" and first["identity"]["credential"] == "laptop"
    assert first["journal"]["seq"] == 2 and first["detail"] == {"comment": "lgtm", "step": 1}


async def test_a_record_edited_and_rechained_is_found_by_its_seal(tmp_path: Path) -> None:
    lines = await _lines(tmp_path)
    records = [json.loads(line) for line in lines]
    for record in records:
        del record["prev_sha256"]
    records[2]["detail"]["comment"] = "approved by someone else"
    forged = chain_lines(records)  # the file's own chain recomputed: only the journal seal tells
    broken = verify_lines(forged)
    assert broken is not None and broken.line == 3 and broken.seq == 3 and "sha256" in broken.reason


async def test_a_dropped_line_breaks_the_file_chain(tmp_path: Path) -> None:
    lines = await _lines(tmp_path)
    broken = verify_lines(lines[:2] + lines[3:])
    assert broken is not None and broken.line == 3 and broken.seq == 4


async def test_a_filtered_export_still_verifies(tmp_path: Path) -> None:
    journal = await open_journal(None, tmp_path)
    try:
        await journal.append(
            [
                JournalEntry(key=f"k/{i}", time=T0 + timedelta(minutes=i), action="refused" if i % 2 else "x")
                for i in range(6)
            ]
        )
        ctx = Context(None, default_config(), "tocsin")  # type: ignore[arg-type]
        lines = await export_audit(ctx, since=T0, action="refused", journal=journal)
        assert [json.loads(ln)["journal"]["seq"] for ln in lines] == [2, 4, 6]
        assert verify_lines(lines) is None
        until = await export_audit(ctx, since=T0, until=T0 + timedelta(minutes=2), journal=journal)
        assert [json.loads(ln)["journal"]["seq"] for ln in until] == [1, 2]
    finally:
        await journal.close()


async def test_the_gateway_sink_journals_each_refusal(tmp_path: Path) -> None:
    journal = await open_journal(None, tmp_path)
    pending: set[asyncio.Task] = set()
    set_refusal_sink(refusal_sink(journal, pending))
    try:
        with pytest.raises(Refused):
            raise refuse(ALICE, "approver:prod", "alice does not hold the role approver:prod", "role")
        await asyncio.gather(*pending)
        records = [r async for r in journal.records(action="refused")]
        assert len(records) == 1
        record = records[0]
        assert record.key.startswith("refusal/") and record.actor["name"] == "alice"
        assert record.detail == {
            "role": "approver:prod",
            "reason": "alice does not hold the role approver:prod",
            "kind": "role",
        }
    finally:
        set_refusal_sink(None)
        await journal.close()
