"""Identity on every command, incident controls and silences in the audit: the real `tocsin` CLI.

`--by ""` (or blanks) exits 2 naming `--by` on every command that records who acted,
before anything is sent; `tocsin alert --by` (default: the OS user) is who the audit
shows, never the client's `pid@host`; `tocsin escalate` and `tocsin snooze` act on an
incident with identity; silences added and expired appear in `tocsin audit export`.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from operations.audit import verify_chain
from tests.helpers import address_of, cli
from tests.procs import TOCSIN, base_env, process
from workflows.incident import IncidentState
from workflows.silences import SILENCES_ID


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


EMPTY_BY = [
    ["alert", "--name", "X", "--severity", "info"],
    ["ack", "incident/abc"],
    ["resolve", "incident/abc"],
    ["escalate", "incident/abc"],
    ["snooze", "incident/abc", "--for", "30m"],
    ["deploy", "--service", "shop", "--env", "prod", "--version", "v1"],
    ["deploy", "pause", "deploy/shop/prod/v1"],
    ["deploy", "resume", "deploy/shop/prod/v1"],
    ["deploy", "promote", "deploy/shop/prod/v1"],
    ["deploy", "abort", "deploy/shop/prod/v1"],
    ["approve", "deploy/shop/prod/v1"],
    ["reject", "deploy/shop/prod/v1", "--reason", "no"],
    ["rollback", "--service", "shop", "--env", "prod", "--reason", "bad"],
    ["silence", "add", "--matcher", 'service="shop"', "--duration", "1h", "--comment", "maintenance"],
    ["silence", "expire", "0123abcd"],
]


@pytest.mark.parametrize("n", range(len(EMPTY_BY)), ids=[" ".join(a[:2]) for a in EMPTY_BY])
def test_empty_by_exits_2_naming_by(n: int) -> None:
    blank = "" if n % 2 == 0 else "   "  # empty on half the commands, blanks on the others
    done = cli(*EMPTY_BY[n], "--by", blank, address=closed_port())
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert done.stderr.startswith("tocsin: --by:"), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["ack", " ", "--by", "erin"],
        ["resolve", "", "--by", "erin"],
        ["escalate", "", "--by", "erin"],
        ["snooze", "", "--for", "1h", "--by", "erin"],
    ],
    ids=["ack", "resolve", "escalate", "snooze"],
)
def test_empty_incident_id_exits_2_before_connecting(args: list[str]) -> None:
    done = cli(*args, address=closed_port())
    assert done.returncode == 2 and done.stderr.startswith("tocsin: ID:"), done.stderr


@pytest.mark.parametrize("duration", ["soon", "0s", "-5m"])
def test_snooze_needs_a_positive_duration(duration: str) -> None:
    done = cli("snooze", "incident/abc", "--for", duration, "--by", "erin", address=closed_port())
    assert done.returncode == 2 and done.stderr.startswith("tocsin: --for:"), done.stderr


@pytest.fixture
def stack(dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str) -> Iterator[dict[str, Any]]:
    """A console config (no group wait, a two-level ladder) and a real `tocsin worker`."""
    config = {
        "channels": {"console": {"type": "console"}},
        "receivers": [{"name": "ops", "channels": ["console"]}, {"name": "lead", "channels": ["console"]}],
        "route": {
            "receiver": "ops",
            "group_by": ["alertname", "service"],
            "group_wait": "0s",
            "escalation": "two",
        },
        "escalation_policies": {
            "two": {"levels": [{"after": "0m", "receiver": "ops"}, {"after": "1h", "receiver": "lead"}]}
        },
    }
    path = tmp_path / "tocsin.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = base_env(
        TEMPORAL_ADDRESS=address_of(dev_env.client),
        TOCSIN_TASK_QUEUE=task_queue,
        TOCSIN_CONFIG=str(path),
        TOCSIN_HOME=str(tmp_path / ".tocsin"),
    )
    with process([TOCSIN, "worker"], tmp_path, env, tmp_path / "worker.log"):
        yield {"env": env, "service": f"pay-{uuid.uuid4().hex[:6]}", "cwd": tmp_path}


def run(stack: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return cli(*args, env=stack["env"], cwd=stack["cwd"])


def export(stack: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    done = run(stack, "audit", "export", *args)
    assert done.returncode == 0, done.stderr
    assert verify_chain(done.stdout.splitlines()) is None
    return [json.loads(line) for line in done.stdout.splitlines()]


async def test_escalate_snooze_and_alert_by_are_who_the_audit_shows(
    dev_env: WorkflowEnvironment, stack: dict[str, Any]
) -> None:
    svc = stack["service"]
    raised = run(stack, "alert", "--name", "CheckoutSlow", "--severity", "warning", "--service", svc, "--by", "carol")
    assert raised.returncode == 0, raised.stderr
    incident = raised.stdout.strip()
    anonymous = run(stack, "alert", "--name", "CheckoutErrors", "--severity", "warning", "--service", svc)
    assert anonymous.returncode == 0, anonymous.stderr

    up = run(stack, "escalate", incident, "--by", "erin", "--note", "customers calling")
    assert up.returncode == 0, up.stderr
    assert up.stdout.startswith(f"{incident}: ")
    held = run(stack, "snooze", incident, "--for", "30m", "--by", "erin", "--note", "fix deploying")
    assert held.returncode == 0, held.stderr
    assert "snoozed until" in held.stdout
    state = await dev_env.client.get_workflow_handle(incident).query("state", result_type=IncidentState)
    acts = [(e.actor, e.action) for e in state.timeline]
    assert ("erin", "escalate_now") in acts and ("erin", "snoozed") in acts, acts
    unknown = run(stack, "escalate", "incident/nope", "--by", "erin")
    assert unknown.returncode == 2 and "incident/nope" in unknown.stderr

    # the journal's records, sealed when the actions happened (the export's history part only covers
    # what is older than the journal's first record)
    records = [r for r in export(stack, "--service", svc) if r["kind"] == "incident"]
    by_incident = {(r["workflow_id"], r["action"]): r for r in records if "journal" in r}
    escalated, snoozed = by_incident[(incident, "incident.escalated")], by_incident[(incident, "incident.snoozed")]
    assert escalated["actor"] == "erin" and "customers calling" in json.dumps(escalated["detail"])
    assert snoozed["actor"] == "erin" and "fix deploying" in json.dumps(snoozed["detail"])
    assert escalated["journal"]["key"].startswith(incident + "/")
    other = anonymous.stdout.strip()
    assert (other, "incident.state") in by_incident
    assert not [r for r in records if re.match(r"^\d+@", r["actor"])], "no pid@host in the audit"
    await dev_env.client.get_workflow_handle(incident).terminate("test over")
    await dev_env.client.get_workflow_handle(other).terminate("test over")


async def _end_silences(dev_env: WorkflowEnvironment) -> None:
    """The store is one per namespace: one started by an earlier test runs on that test's queue."""
    try:
        await dev_env.client.get_workflow_handle(SILENCES_ID).terminate("test isolation")
    except RPCError:
        pass


async def test_silences_added_and_expired_appear_in_the_audit(
    dev_env: WorkflowEnvironment, stack: dict[str, Any]
) -> None:
    svc = stack["service"]
    await _end_silences(dev_env)
    try:
        added = run(
            stack,
            "silence",
            "add",
            "--matcher",
            f'service="{svc}"',
            "--duration",
            "2h",
            "--by",
            "sam",
            "--comment",
            "db upgrade",
        )
        assert added.returncode == 0, added.stderr
        silence = added.stdout.strip()
        expired = run(stack, "silence", "expire", silence, "--by", "tess")
        assert expired.returncode == 0, expired.stderr
        records = [r for r in export(stack, "--since", "1h") if r["kind"] == "silences"]
    finally:
        await _end_silences(dev_env)
    mine = [r for r in records if r["action"].startswith("silence.") and r["detail"].get("id") == silence]
    assert [(r["actor"], r["action"]) for r in mine] == [("sam", "silence.added"), ("tess", "silence.expired")], records
    assert f'service="{svc}"' in mine[0]["detail"]["matchers"] and mine[0]["detail"]["comment"] == "db upgrade"
    assert all(r["workflow_id"] == SILENCES_ID for r in mine)
    assert not [r for r in records if r["action"] == "started" or re.match(r"^\d+@", r["actor"])]
