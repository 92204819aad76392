"""``tocsin build``'s new inputs: ``--log`` (tail, ANSI), ``--step``, ``--queued-seconds``, ``--flake-telemetry``,
``timed_out``; bad values exit 2 naming the flag; the API's build body checks them too (422 naming the field);
the operation redacts the log tail, the step, per-test messages and findings before they enter Temporal."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client
from typer.testing import CliRunner

from operations.builds import send_build_event
from operations.context import Context
from starters import api
from starters.api_support import authenticate
from starters.cli import app
from starters.cli import builds as build_cli
from starters.reports import ReportError, read_log_tail
from starters.reports.log_tail import log_tail
from tests.unit.test_redact_doors import ALICE, CRED_URL, PASSWORD, RecordingClient
from workflows.config import default_config
from workflows.identity import Actor
from workflows.pipeline import BuildEvent
from workflows.pipeline.models import (
    MAX_LOG_TAIL,
    SecurityFinding,
    SecuritySummary,
    TestFailure,
    TestOutcome,
    TestSummary,
)

DATA = Path(__file__).parent / "data" / "reports"
BUILD = ["build", "--repo", "acme/api", "--branch", "main", "--commit", "abcdef1", "--status", "failure"]


# ---------------------------------------------------------------------------------------- the log tail


def test_log_tail_strips_colours_and_keeps_the_last_state_of_progress_lines() -> None:
    text = "\x1b[1m==> build\x1b[0m\r\n\x1b]8;;https://x\x07link\x1b]8;;\x07 here\nprogress 10%\rprogress 100%\n\x1b[31mE  boom\x1b[0m\n\n"
    assert log_tail(text) == "==> build\nlink here\nprogress 100%\nE  boom"


def test_log_tail_cuts_on_line_boundaries() -> None:
    lines = [f"line {i:04d}" for i in range(2000)]  # 9 characters each, 10 with the newline
    tail = log_tail("\n".join(lines))
    assert len(tail) <= MAX_LOG_TAIL and tail.endswith("line 1999")
    assert tail.split("\n")[0] in lines  # no partial first line
    assert len(tail) > MAX_LOG_TAIL - 10
    assert log_tail("x" * 10 + "\n" + "y" * 20, limit=8) == "y" * 8  # one long last line keeps its end


def test_read_log_tail_reads_only_the_end_of_a_big_file(tmp_path: Path) -> None:
    path = tmp_path / "build.log"
    with path.open("w") as out:
        for i in range(200_000):  # about 3 MB
            out.write(f"\x1b[32mstep {i} ok\x1b[0m\n")
        out.write("Error: cannot find module 'left-pad'\n")
    tail = read_log_tail(path)
    assert tail is not None and tail.endswith("Error: cannot find module 'left-pad'")
    assert "\x1b" not in tail and len(tail) <= MAX_LOG_TAIL
    assert tail.split("\n")[0].startswith("step ")  # whole lines only
    empty = tmp_path / "empty.log"
    empty.write_text("\n\n")
    assert read_log_tail(empty) is None


def test_read_log_tail_errors_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"^--log: .*gone\.log: file not found$"):
        read_log_tail(tmp_path / "gone.log")
    with pytest.raises(ReportError, match=r"^--log: .*: is a directory, not a file$"):
        read_log_tail(tmp_path)


# ---------------------------------------------------------------------------------------- the CLI


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[BuildEvent]]:
    """The events ``tocsin build`` would send (its remote-mode call, run against a recording API)."""
    events: list[BuildEvent] = []

    class RecordingApi:
        async def build(self, event: BuildEvent) -> str:
            events.append(event)
            return f"pipeline/{event.repo}/{event.branch}"

    def run_op(
        op: Any, config: Any = None, refused: Any = None, remote: Callable[[Any], Awaitable[str]] | None = None
    ) -> str:
        assert remote is not None
        return asyncio.run(remote(RecordingApi()))

    monkeypatch.setattr(build_cli, "run_op", run_op)
    yield events


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--queued-seconds", "-1"], "--queued-seconds"),
        (["--queued-seconds", "nan"], "--queued-seconds"),
        (["--step", "  "], "--step"),
        (["--step", "x" * 201], "--step"),
        (["--duration", "inf"], "--duration"),
        (["--log", "/nonexistent/build.log"], "--log"),
        (["--flake-telemetry", "/nonexistent/flake.json"], "--flake-telemetry"),
    ],
)
def test_bad_new_inputs_exit_2_naming_the_flag(
    runner: CliRunner, sent: list[BuildEvent], args: list[str], flag: str
) -> None:
    done = runner.invoke(app, [*BUILD, *args])
    assert done.exit_code == 2, done.output
    assert done.output.startswith(f"tocsin: {flag}:"), done.output
    assert sent == []


def test_bad_flake_telemetry_file_exits_2(runner: CliRunner, sent: list[BuildEvent], tmp_path: Path) -> None:
    bogus = tmp_path / "flake.json"
    bogus.write_text('{"events": {}}')
    done = runner.invoke(app, [*BUILD, "--flake-telemetry", str(bogus)])
    assert done.exit_code == 2 and done.output.startswith("tocsin: --flake-telemetry:") and "flake.json" in done.output
    assert sent == []


def test_status_lists_timed_out(runner: CliRunner, sent: list[BuildEvent]) -> None:
    done = runner.invoke(app, [*BUILD[:-1], "exploded"])
    assert done.exit_code == 2 and "timed_out" in done.output
    assert runner.invoke(app, [*BUILD[:-1], "timed_out"]).exit_code == 0
    assert sent[0].status == "timed_out"


def test_new_inputs_reach_the_event(runner: CliRunner, sent: list[BuildEvent], tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text("\x1b[36mCollecting deps\x1b[0m\nnpm ERR! code ETIMEDOUT\n")
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuite tests="2" failures="0">'
        '<testcase classname="tests.test_market_data" name="test_feed_reconnects" time="1.2"/>'
        '<testcase classname="tests.test_api" name="test_ok" time="0.1"/>'
        "</testsuite>"
    )
    args = ["--log", str(log), "--step", " install ", "--queued-seconds", "42.5", "--junit", str(junit)]
    done = runner.invoke(app, [*BUILD, *args, "--flake-telemetry", str(DATA / "flake_runs.json")])
    assert done.exit_code == 0, done.output
    [event] = sent
    assert (event.log_tail, event.step, event.queued_seconds) == (
        "Collecting deps\nnpm ERR! code ETIMEDOUT",
        "install",
        42.5,
    )
    assert event.tests is not None and event.tests.total == 2  # the JUnit counts stay
    outcomes = {o.nodeid: o for o in event.tests.outcomes}
    # The JUnit report saw a pass; the telemetry knew it failed first: a rerun in the run, so flaky.
    reconnect = outcomes["tests.test_market_data::test_feed_reconnects"]
    assert (reconnect.outcome, reconnect.reruns, reconnect.flaky_in_run) == ("passed", 1, True)
    assert outcomes["tests.test_orders.TestRisk::test_limit[usd]"].outcome == "failed"  # only the telemetry knew


def test_flake_telemetry_alone_makes_the_test_summary(runner: CliRunner, sent: list[BuildEvent]) -> None:
    done = runner.invoke(app, [*BUILD, "--flake-telemetry", str(DATA / "flake_runs.json")])
    assert done.exit_code == 0, done.output
    tests = sent[0].tests
    assert tests is not None
    assert (tests.total, tests.failed, tests.errors) == (3, 1, 0)
    assert tests.failures == [
        TestFailure(
            name="test_limit[usd]",
            classname="tests.test_orders.TestRisk",
            message="AssertionError: limit 1000 exceeded by order 0x7f3a2b",
        )
    ]
    assert sorted(o.nodeid for o in tests.outcomes if o.flaky_in_run) == [
        "tests.test_fix::test_logon",
        "tests.test_market_data::test_feed_reconnects",
    ]


# ---------------------------------------------------------------------------------------- the API body


@pytest.fixture
def api_client() -> Iterator[tuple[httpx.AsyncClient, RecordingClient]]:
    recording = RecordingClient()
    gateway = FastAPI()
    api.install(gateway)
    gateway.dependency_overrides[authenticate] = lambda: Actor(name="ci", via="api")
    gateway.state.client = recording
    gateway.state.store = SimpleNamespace(get=default_config)
    gateway.state.settings = SimpleNamespace(task_queue="tq")
    transport = httpx.ASGITransport(app=gateway)
    yield httpx.AsyncClient(transport=transport, base_url="http://gateway"), recording


BODY = {"repo": "acme/api", "branch": "main", "commit": "abcdef1", "status": "timed_out"}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"queued_seconds": -1}, "queued_seconds"),
        ({"log_tail": "x" * (MAX_LOG_TAIL + 1)}, "log_tail"),
        ({"step": ""}, "step"),
        ({"step": "   "}, "step"),
        ({"duration_seconds": -5}, "duration_seconds"),
        ({"status": "exploded"}, "status"),
        ({"pr": 0}, "pr"),
    ],
)
async def test_api_refuses_bad_build_fields_naming_them(
    api_client: tuple[httpx.AsyncClient, RecordingClient], extra: dict[str, Any], field: str
) -> None:
    http, recording = api_client
    async with http:
        resp = await http.post("/api/v1/builds", json={**BODY, **extra})
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == field
    assert recording.sent == []


async def test_api_accepts_and_redacts_the_new_fields(api_client: tuple[httpx.AsyncClient, RecordingClient]) -> None:
    http, recording = api_client
    body = {**BODY, "log_tail": f"export DB_PASSWORD={PASSWORD}\nfailed", "step": "deploy", "queued_seconds": 3}
    async with http:
        resp = await http.post("/api/v1/builds", json=body)
    assert resp.status_code == 202, resp.text
    [event] = [a for a in recording.sent if isinstance(a, BuildEvent)]
    assert (event.status, event.step, event.queued_seconds) == ("timed_out", "deploy", 3.0)
    assert event.log_tail is not None and PASSWORD not in event.log_tail and event.log_tail.endswith("\nfailed")
    assert type(event) is BuildEvent  # the operation's own model, not the API body


# ---------------------------------------------------------------------------------------- redaction


async def test_operation_redacts_log_step_outcomes_and_findings() -> None:
    recording = RecordingClient()
    ctx = Context(cast(Client, recording), default_config(), "tq")
    secret = f"password={PASSWORD}"
    event = BuildEvent(
        repo="acme/api",
        branch="main",
        commit="abcdef1",
        status="failure",
        log_tail="x" * MAX_LOG_TAIL + f"\ncurl {CRED_URL}",  # over the limit: the operation keeps the end
        step=f"deploy {secret}",
        tests=TestSummary(outcomes=[TestOutcome(nodeid="t::a", outcome="failed", message=secret)]),
        security=[
            SecuritySummary(
                tool="trivy",
                critical=1,
                findings=[SecurityFinding(rule="CVE-2023-1", message=secret, location=f"{CRED_URL}:1")],
            )
        ],
    )
    await send_build_event(ctx, ALICE, event)
    assert recording.leaks() == []
    [sent] = [a for a in recording.sent if isinstance(a, BuildEvent)]
    assert (
        sent.log_tail is not None
        and len(sent.log_tail) <= MAX_LOG_TAIL
        and sent.log_tail.endswith("/run/1?token=[REDACTED]")
    )
    assert sent.step == "deploy password=[REDACTED]"
