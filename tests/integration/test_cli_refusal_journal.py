"""A direct-mode command refused by authorization is sealed in the audit journal (issue 13: every refusal)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml
from temporalio.testing import WorkflowEnvironment

from operations.auth import hash_token, new_token
from operations.journal import open_journal
from tests.helpers import address_of, cli


async def test_a_refused_direct_mode_command_is_journaled(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    config = tmp_path / "tocsin.yaml"
    users = [{"name": "alice", "roles": ["responder"], "tokens": [{"id": "laptop", "sha256": hash_token(new_token())}]}]
    console = {
        "channels": {"console": {"type": "console"}},
        "receivers": [{"name": "console", "channels": ["console"]}],
    }
    config.write_text(yaml.safe_dump({**console, "route": {"receiver": "console"}, "users": users}))
    env = {"TOCSIN_CONFIG": str(config), "TOCSIN_HOME": str(tmp_path / "home")}
    done = await asyncio.to_thread(
        cli, "ack", "incident/0123456789abcdef", "--by", "mallory", address=address_of(dev_env.client), env=env
    )
    assert done.returncode != 0 and "not verified" in done.stderr, done.stderr

    journal = await open_journal(None, tmp_path / "home")
    try:
        records = [r async for r in journal.records(action="refused")]
        assert (await journal.verify()).ok
    finally:
        await journal.close()
    assert len(records) == 1, records
    refusal = records[0]
    assert refusal.actor is not None and refusal.actor["name"] == "mallory" and refusal.actor["verified"] is False
    assert refusal.detail["role"] == "responder" and "not verified" in refusal.detail["reason"]
