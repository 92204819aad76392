"""``tocsin flaky`` against a real dev server and worker: a test that failed and passed on one commit is listed
as flaky (repo, branch, why, last failure); quarantine reaches every running pipeline of the repository and
shows in the list; release lifts it; an unknown test or repository is NotFound; the CLI prints the same."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import yaml
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from operations.auth import hash_token, new_token
from operations.builds import send_build_event
from operations.context import Context
from operations.errors import NotFound
from operations.flaky import FlakyList, list_flaky, quarantine_test, release_test
from tests.helpers import address_of, cli, ops, person, tocsin_worker
from tests.procs import TOCSIN, base_env, free_port, process, tocsin_gateway
from workflows.pipeline import BuildEvent, pipeline_id
from workflows.pipeline.models import QUERY_STATE, PipelineState, TestOutcome, TestSummary

T = TypeVar("T")
FLAKY = "tests.test_feed::test_reconnects"
STEADY = "tests.test_api::test_health"


def run(commit: str, status: str, repo: str, branch: str = "main", *, flaky_passed: bool) -> BuildEvent:
    """One CI run: ``STEADY`` passes; ``FLAKY`` fails, or passes."""
    outcomes = [
        TestOutcome(nodeid=STEADY, outcome="passed"),
        TestOutcome(nodeid=FLAKY, outcome="passed" if flaky_passed else "failed", message="TimeoutError: feed"),
    ]
    tests = TestSummary(total=2, failed=0 if flaky_passed else 1, outcomes=outcomes)
    return BuildEvent(repo=repo, branch=branch, commit=commit, status=status, tests=tests)  # type: ignore[arg-type]


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, seconds: float = 60) -> T:
    """Poll ``probe`` until it answers something (visibility and signals are asynchronous)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            found = await probe()
        except (RPCError, NotFound):
            found = None
        if found is not None:
            return found
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.1)


async def tocsin(*args: str, address: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, in a thread: this test's event loop runs the worker that answers the CLI's queries."""
    return await asyncio.to_thread(cli, *args, address=address)


async def state_of(ctx: Context, repo: str, branch: str) -> PipelineState:
    handle = ctx.client.get_workflow_handle(pipeline_id(repo, branch))
    state: PipelineState = await handle.query(QUERY_STATE, result_type=PipelineState)
    return state


async def listed(ctx: Context, repo: str, check: Callable[[FlakyList], bool]) -> FlakyList:
    async def probe() -> FlakyList | None:
        found = await list_flaky(ctx, repo)
        return found if check(found) else None

    return await eventually(probe, f"flaky list of {repo}")


async def test_flaky_list_quarantine_and_release(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    repo = f"acme/feed-{uuid.uuid4().hex[:6]}"
    ctx = ops(dev_env.client, queue)
    ci = person("ci")
    async with tocsin_worker(dev_env.client, queue, tmp_path):
        # A retry of one commit: the test failed, then passed without a change.
        await send_build_event(ctx, ci, run("aaaaaaa", "failure", repo, flaky_passed=False))
        await send_build_event(ctx, ci, run("aaaaaaa", "success", repo, flaky_passed=True))
        # A branch that only ever passed: no flaky test there, but it is one of the repo's pipelines.
        await send_build_event(ctx, ci, run("bbbbbbb", "success", repo, "feature-x", flaky_passed=True))

        async def both_seen() -> bool | None:
            main, feature = await state_of(ctx, repo, "main"), await state_of(ctx, repo, "feature-x")
            return True if main.seq >= 2 and feature.seq >= 1 else None

        await eventually(both_seen, "both pipelines processed their events")
        found = await listed(ctx, repo, lambda f: len(f.pipelines) == 2 and bool(f.tests))
        assert found.unanswered == []
        assert sorted(found.pipelines) == [pipeline_id(repo, "feature-x"), pipeline_id(repo, "main")]
        [row] = found.tests
        assert (row.test, row.repo, row.branch, row.flaky) == (FLAKY, repo, "main", True)
        assert "same commit aaaaaaa" in row.reason
        assert row.last_failure is not None and row.quarantined_by is None
        assert (row.failures, row.passes) == (1, 1)

        # The CLI (direct mode) prints the same list.
        address = address_of(dev_env.client)
        done = await tocsin("flaky", "list", "--repo", repo, "--json", address=address)
        assert done.returncode == 0, done.stderr
        assert [t["test"] for t in json.loads(done.stdout)["tests"]] == [FLAKY]
        done = await tocsin("flaky", "list", "--repo", repo, address=address)
        assert done.returncode == 0 and done.stdout.startswith(f"{FLAKY}  {repo}@main  failed and passed"), done.stdout

        # Quarantine reaches both branches; the list shows who and until when.
        until = datetime.now(UTC) + timedelta(days=7)
        signalled = await quarantine_test(ctx, person("alice"), repo, FLAKY, until, "reconnect races the mock")
        assert sorted(signalled.pipelines) == sorted(found.pipelines)

        def quarantined(f: FlakyList) -> bool:
            return len(f.tests) == 2 and all(t.quarantined_by == "alice" for t in f.tests)

        found = await listed(ctx, repo, quarantined)
        by_branch = {t.branch: t for t in found.tests}
        assert by_branch["main"].flaky and not by_branch["feature-x"].flaky  # muted there too, though not flaky
        assert by_branch["feature-x"].quarantine_reason == "reconnect races the mock"
        assert by_branch["main"].quarantined_until == until

        # Release lifts it everywhere; the test stays listed on main, as flaky.
        released = await release_test(ctx, person("alice"), repo, FLAKY)
        assert sorted(released.pipelines) == sorted(found.pipelines)
        found = await listed(ctx, repo, lambda f: all(t.quarantined_by is None for t in f.tests))
        assert [(t.branch, t.flaky) for t in found.tests] == [("main", True)]

        with pytest.raises(NotFound, match="not quarantined"):
            await release_test(ctx, person("alice"), repo, FLAKY)
        with pytest.raises(NotFound, match="tests.test_other::test_x"):
            await release_test(ctx, person("alice"), repo, "tests.test_other::test_x")
        with pytest.raises(NotFound, match="no running pipeline"):
            await quarantine_test(ctx, person("alice"), repo + "-gone", FLAKY)

        # The CLI's quarantine, then release by hand.
        done = await tocsin(
            "flaky", "quarantine", FLAKY, "--repo", repo, "--by", "bob", "--until", "2d", address=address
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"{FLAKY}: quarantined until ") and pipeline_id(repo, "main") in done.stdout
        await listed(ctx, repo, lambda f: any(t.quarantined_by == "bob" for t in f.tests))
        done = await tocsin("flaky", "release", FLAKY, "--repo", repo, "--by", "bob", address=address)
        assert done.returncode == 0 and done.stdout.startswith(f"{FLAKY}: released in "), done.stderr
        done = await tocsin("flaky", "release", "nope::x", "--repo", repo, "--by", "bob", address=address)
        assert done.returncode == 2 and "nope::x" in done.stderr, done.stderr


async def test_a_steady_failure_is_not_listed(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    repo = f"acme/steady-{uuid.uuid4().hex[:6]}"
    ctx = ops(dev_env.client, queue)
    async with tocsin_worker(dev_env.client, queue, tmp_path):
        for commit in ("1111111", "2222222", "3333333"):
            await send_build_event(ctx, person("ci"), run(commit, "failure", repo, flaky_passed=False))

        async def processed() -> PipelineState | None:
            state = await state_of(ctx, repo, "main")
            return state if state.seq >= 3 else None

        state = await eventually(processed, "three failures processed")
        assert FLAKY in state.health.tests.tests  # remembered, as a failing test
        found = await listed(ctx, repo, lambda f: bool(f.pipelines))
        assert found.tests == []  # failing every run is broken, not flaky


DATA = Path(__file__).parents[1] / "unit" / "data" / "reports"
TELEMETRY_FLAKY = ["tests.test_market_data::test_feed_reconnects", "tests.test_fix::test_logon"]


async def test_remote_mode_build_inputs_and_flaky_commands(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    """Through the gateway (TOCSIN_URL + an API token): ``tocsin build`` with the new inputs, then the flaky
    commands; the identity comes from the token, a role is needed to quarantine, ``--by`` must be the token's."""
    tokens = {"ci-bot": new_token(), "viewer": new_token()}
    config = {
        "channels": {"console": {"type": "console"}},
        "receivers": [{"name": "builds", "channels": ["console"]}],
        "route": {"receiver": "builds"},
        "users": [
            {"name": "ci-bot", "roles": ["builder"], "tokens": [{"id": "ci", "sha256": hash_token(tokens["ci-bot"])}]},
            {"name": "viewer", "roles": [], "tokens": [{"id": "laptop", "sha256": hash_token(tokens["viewer"])}]},
        ],
    }
    path = tmp_path / "tocsin.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = base_env(
        TEMPORAL_ADDRESS=address_of(dev_env.client),
        TOCSIN_TASK_QUEUE=f"tq-{uuid.uuid4().hex[:8]}",
        TOCSIN_CONFIG=str(path),
        TOCSIN_HOME=str(tmp_path / ".tocsin"),
        TOCSIN_GATEWAY_TOKEN=new_token(),
    )
    repo = f"acme/remote-{uuid.uuid4().hex[:6]}"
    log = tmp_path / "build.log"
    log.write_text("\x1b[32m== pytest ==\x1b[0m\nE   TimeoutError: feed did not reconnect\n")
    with process([TOCSIN, "worker"], tmp_path, env, tmp_path / "worker.log"), tocsin_gateway(tmp_path, env) as url:

        def remote(user: str, *args: str) -> subprocess.CompletedProcess[str]:
            run_env = {k: v for k, v in base_env().items() if k not in ("TOCSIN_CONFIG", "TOCSIN_OIDC_TOKEN")}
            run_env.update(TOCSIN_URL=url, TOCSIN_TOKEN=tokens[user], TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
            return subprocess.run([TOCSIN, *args], capture_output=True, text=True, env=run_env, timeout=60)

        async def remote_async(user: str, *args: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(remote, user, *args)

        build = ["build", "--repo", repo, "--branch", "main", "--commit", "cccccc1", "--status", "timed_out"]
        extra = ["--log", str(log), "--step", "pytest", "--queued-seconds", "12"]
        done = await remote_async("ci-bot", *build, *extra, "--flake-telemetry", str(DATA / "flake_runs.json"))
        assert done.returncode == 0 and done.stdout.strip() == pipeline_id(repo, "main"), done.stderr
        done = await remote_async("ci-bot", *build, "--queued-seconds", "-1")
        assert done.returncode == 2 and done.stderr.startswith("tocsin: --queued-seconds:"), done.stderr

        async def seen() -> PipelineState | None:
            state = await state_of(ops(dev_env.client, "unused"), repo, "main")
            return state if state.seq >= 1 else None

        state = await eventually(seen, "the remote build processed")
        assert state.last_event is not None
        assert (state.last_event.status, state.last_event.step, state.last_event.queued_seconds) == (
            "timed_out",
            "pytest",
            12.0,
        )

        async def listed_remote() -> list[str] | None:
            done = await remote_async("viewer", "flaky", "list", "--repo", repo, "--json")
            assert done.returncode == 0, done.stderr
            names = sorted(t["test"] for t in json.loads(done.stdout)["tests"])
            return names or None

        assert await eventually(listed_remote, "the telemetry's reruns listed") == sorted(TELEMETRY_FLAKY)

        test = TELEMETRY_FLAKY[0]
        done = await remote_async("viewer", "flaky", "quarantine", test, "--repo", repo, "--by", "viewer")
        assert done.returncode == 2 and "builder" in done.stderr, done.stderr  # no role
        done = await remote_async("ci-bot", "flaky", "quarantine", test, "--repo", repo, "--by", "alice")
        assert done.returncode == 2 and "credential" in done.stderr, done.stderr  # --by is not the token's
        done = await remote_async(
            "ci-bot", "flaky", "quarantine", test, "--repo", repo, "--until", "soon", "--by", "ci-bot"
        )
        assert done.returncode == 2 and done.stderr.startswith("tocsin: --until:"), done.stderr
        done = await remote_async(
            "ci-bot", "flaky", "quarantine", test, "--repo", repo, "--by", "ci-bot", "--until", "7d"
        )
        assert done.returncode == 0 and done.stdout.startswith(f"{test}: quarantined until "), done.stderr

        async def quarantined_by() -> str | None:
            done = await remote_async("viewer", "flaky", "list", "--repo", repo, "--json")
            rows = {t["test"]: t for t in json.loads(done.stdout)["tests"]}
            found = rows.get(test, {}).get("quarantined_by")
            return str(found) if found else None

        assert await eventually(quarantined_by, "the quarantine listed") == "ci-bot"
        done = await remote_async("ci-bot", "flaky", "release", test, "--repo", repo)
        assert done.returncode == 0 and done.stdout.startswith(f"{test}: released in "), done.stderr
        done = await remote_async("ci-bot", "flaky", "release", "nope::x", "--repo", repo)
        assert done.returncode == 2 and "nope::x" in done.stderr, done.stderr
