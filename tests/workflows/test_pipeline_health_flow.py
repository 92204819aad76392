"""PipelineWorkflow with its memory (issue 14): flaky tests, trends, tracking issue, security, escalation.

Real worker, time-skipping server, console outbox and the fake GitHub API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from operations.builds import send_build_event
from operations.journal import open_journal
from tests.fakes.github import FakeGitHub
from tests.helpers import ops, outbox, person, tocsin_worker
from workflows.pipeline.models import (
    BuildEvent,
    CoverageSummary,
    FlakyQuarantine,
    FlakyRelease,
    PipelineState,
    SecurityFinding,
    SecuritySummary,
    TestFailure,
    TestOutcome,
    TestSummary,
)
from workflows.pipeline.workflow import PipelineWorkflow

T = TypeVar("T")
GH_REPO = "acme/api"


@pytest.fixture
def repo(task_queue: str) -> str:
    """Entity workflows outlive a test: each test has its own pipeline."""
    return f"acme/{task_queue}"


def config(gh: FakeGitHub | None = None, **pipelines: Any) -> dict[str, Any]:
    channels: dict[str, Any] = {"out": {"type": "console"}}
    builds = ["out"]
    if gh is not None:
        channels["gh"] = {"type": "github", "token": gh.token, "repo": GH_REPO, "api_url": gh.url}
        builds.append("gh")
    return {
        "channels": channels,
        "receivers": [{"name": "builds", "channels": builds}, {"name": "security", "channels": ["out"]}],
        "route": {
            "receiver": "builds",
            "routes": [{"receiver": "security", "matchers": ['kind="security"']}],
        },
        "pipelines": {"health": {"trends": {"success_rate_min_builds": 100}}, **pipelines},
    }


def outcome(name: str, result: str, reruns: int = 0, message: str = "") -> TestOutcome:
    return TestOutcome(nodeid=f"tests.test_api::{name}", outcome=result, reruns=reruns, message=message)  # type: ignore[arg-type]


def summary_of(*outcomes: TestOutcome) -> TestSummary:
    failed = [o for o in outcomes if o.failed]
    return TestSummary(
        total=len(outcomes),
        failed=len(failed),
        failures=[
            TestFailure(name=o.nodeid.split("::")[1], classname="tests.test_api", message=o.message) for o in failed
        ],
        outcomes=list(outcomes),
    )


class Pipeline:
    """Sends events to one pipeline and reads what came out."""

    def __init__(self, client: Client, task_queue: str, home: Path, cfg: Path, repo: str, branch: str = "main"):
        self.client, self.task_queue, self.home, self.cfg = client, task_queue, home, cfg
        self.repo, self.branch = repo, branch
        self.n = 0

    async def send(self, status: str, commit: str | None = None, **kw: Any) -> str:
        self.n += 1
        sha = commit or f"{self.n:040x}"
        event = BuildEvent(repo=self.repo, branch=self.branch, commit=sha, status=status, **kw)  # type: ignore[arg-type]
        return await send_build_event(ops(self.client, self.task_queue, self.cfg), person("ci"), event)

    @property
    def handle(self) -> Any:
        return self.client.get_workflow_handle(f"pipeline/{self.repo}/{self.branch}")

    async def state(self, seq: int) -> PipelineState:
        async def ready() -> PipelineState | None:
            st: PipelineState = await self.handle.query(PipelineWorkflow.state)
            # ``seq`` counts an event as soon as it is taken; its notice is kept once it has been handled.
            done = bool(st.notices) and st.notices[-1].seq >= seq
            return st if done and not any(n.delivering for n in st.notices) else None

        return await until(ready, f"seq {seq}")

    def messages(self, alertname: str | None = None) -> list[dict[str, Any]]:
        found = [r["message"] for r in outbox(self.home)]
        return [m for m in found if alertname is None or m["labels"].get("alertname") == alertname]


async def until(probe: Callable[[], Awaitable[T | None]], what: str, seconds: float = 30) -> T:
    """Poll ``probe`` until it returns something, for at most ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    last: Exception | None = None
    while True:
        try:
            got = await probe()
        except Exception as exc:  # a query racing continue-as-new; ask again
            last = exc
            got = None
        if got is not None:
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")
        await asyncio.sleep(0.05)


async def test_rerun_makes_a_test_flaky_and_the_next_failure_only_on_it_is_info_not_a_page(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any, repo: str
) -> None:
    cfg = write_config(config())
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        p = Pipeline(time_env.client, task_queue, tmp_path, cfg, repo)
        # Failed then passed within one run (pytest-rerunfailures): flaky at once.
        await p.send(
            "success", tests=summary_of(outcome("test_retry", "passed", reruns=1), outcome("test_ok", "passed"))
        )
        await p.send(
            "failure",
            tests=summary_of(outcome("test_retry", "failed", message="Timeout"), outcome("test_ok", "passed")),
        )
        state = await p.state(2)
        flaky = await until(lambda: _first(p.messages("BuildFlaky")), f"BuildFlaky in {state.notices}")
        reported = await until(lambda: _reported(tmp_path, 2), "two build.reported journal records")
    assert flaky["severity"] == "info"
    assert flaky["labels"]["flaky"] == "true"
    assert "test_retry" in flaky["text"]
    assert not p.messages("BuildFailed")
    assert [n.flaky for n in state.notices] == [False, True]
    assert state.tracks["ci"].consecutive_failures == 0  # a flaky build does not make the branch red
    assert state.tracking == []  # and opens no tracking issue
    assert [(d["flaky"], d["flaky_tests"], d["tests_failed"]) for d in reported] == [(False, 1, 0), (True, 1, 1)]


async def test_a_consistently_failing_test_is_not_flaky_and_three_failures_in_a_row_are_critical(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any, repo: str
) -> None:
    cfg = write_config(config())
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        p = Pipeline(time_env.client, task_queue, tmp_path, cfg, repo)
        await p.send("success", tests=summary_of(outcome("test_div", "passed")))
        for _ in range(3):
            await p.send("failure", tests=summary_of(outcome("test_div", "failed", message="ZeroDivisionError")))
        state = await p.state(4)
    failed = p.messages("BuildFailed")
    assert [m["severity"] for m in sorted(failed, key=lambda m: m["text"])] != []
    severities = sorted(m["labels"]["severity"] for m in failed)
    assert severities == ["critical", "error", "error"]
    assert all(m["labels"].get("flaky") != "true" for m in failed)
    assert all(m["labels"]["category"] == "test" for m in failed)
    assert not state.notices[-1].flaky


async def test_quarantine_keeps_a_test_quiet_and_k_passes_release_it_and_tell_the_owner(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any, repo: str
) -> None:
    cfg = write_config(config(health={"flaky": {"release_after": 2}, "trends": {"success_rate_min_builds": 100}}))
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        p = Pipeline(time_env.client, task_queue, tmp_path, cfg, repo)
        await p.send("success", tests=summary_of(outcome("test_net", "passed")))
        await p.state(1)
        await p.handle.signal(
            "flaky_quarantine", FlakyQuarantine(test="tests.test_api::test_net", actor=person("dana"))
        )
        await p.send("failure", tests=summary_of(outcome("test_net", "failed", message="ConnectionReset")))
        await p.send("success", tests=summary_of(outcome("test_net", "passed")))
        await p.send("success", tests=summary_of(outcome("test_net", "passed")))
        state = await p.state(4)
        released = await until(lambda: _first(p.messages("FlakyTestReleased")), "the release notice")
    assert [n.alertname for n in state.notices] == ["BuildSucceeded", "BuildFlaky", "BuildSucceeded", "BuildSucceeded"]
    assert released["labels"]["owner"] == "dana"
    assert "@dana" in released["text"]
    assert state.health.tests.tests["tests.test_api::test_net"].quarantine is None


async def test_release_by_hand(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any, repo: str
) -> None:
    cfg = write_config(config())
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        p = Pipeline(time_env.client, task_queue, tmp_path, cfg, repo)
        await p.send("started")
        await p.state(1)
        test = "tests.test_api::test_x"
        await p.handle.signal("flaky_quarantine", FlakyQuarantine(test=test, actor=person("dana"), reason="noisy"))
        st: PipelineState = await p.handle.query(PipelineWorkflow.state)
        record = st.health.tests.tests[test]
        assert record.quarantine is not None and record.quarantine.by == "dana"
        await p.handle.signal("flaky_release", FlakyRelease(test=test, actor=person("dana")))
        st = await p.handle.query(PipelineWorkflow.state)
        assert test not in st.health.tests.tests or st.health.tests.tests[test].quarantine is None


async def _reported(home: Path, n: int) -> list[dict[str, Any]] | None:
    """The ``build.reported`` details in the worker's journal, once there are ``n``."""
    journal = await open_journal(None, home)
    try:
        found = [dict(r.detail) async for r in journal.records(action="build.reported")]
    finally:
        await journal.close()
    return found if len(found) >= n else None


def _first(items: list[T]) -> Awaitable[T | None]:
    async def first() -> T | None:
        return items[0] if items else None

    return first()


async def test_tracking_issue_opens_comments_and_closes_once_across_a_worker_restart(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any, repo: str
) -> None:
    """On the dev server: a new worker takes over the workflow (the test server keeps it on the gone worker's sticky queue)."""
    with FakeGitHub(repos=[GH_REPO]) as gh:
        cfg = write_config(config(gh))
        p = Pipeline(dev_env.client, task_queue, tmp_path, cfg, repo)
        async with tocsin_worker(dev_env.client, task_queue, tmp_path, cfg):
            await p.send(
                "failure",
                url="https://ci.example/runs/1",
                author="alice",
                log_tail="step 3\nerror: linker failed\nProcess completed with exit code 1.",
                step="build",
            )
            await until(lambda: _first(gh.issues(GH_REPO)), "the tracking issue")
            state = await p.state(1)
            await until(lambda: _done(p), "tracking delivery")
        # A new worker (the old one is gone, as after a crash): the same issue gets the next failure.
        async with tocsin_worker(dev_env.client, task_queue, tmp_path, cfg):
            await p.send("timed_out", url="https://ci.example/runs/2")
            await p.state(2)
            await until(lambda: _comments(gh, 1), "a comment for the second failure")
            await p.send("success", url="https://ci.example/runs/3")
            await until(lambda: _closed(gh), "the issue closed")
            state = await p.state(3)
    [issue] = gh.issues(GH_REPO)
    assert issue["title"] == f"CI failure alerts: {repo}@main"
    assert {label["name"] if isinstance(label, dict) else label for label in issue["labels"]} >= {"tocsin", "tocsin-ci"}
    assert "linker failed" in issue["body"] and "https://ci.example/runs/1" in issue["body"]
    comments = gh.comments(GH_REPO, issue["number"])
    assert any("timed out" in c["body"] for c in comments)
    assert any("green again" in c["body"] for c in comments)
    assert issue["state"] == "closed"
    assert [n.tracking for n in state.notices] == ["trigger", "trigger", "resolve"]
    assert state.tracking == []
    assert any(d.outcome == "delivered" for d in state.notices[0].tracking_deliveries)


async def _incident(env: WorkflowEnvironment, service: str) -> dict[str, Any] | None:
    """The BuildFailing incident of ``service`` (only this test's: the dev server holds every test's incidents)."""
    query = f'WorkflowType="IncidentWorkflow" AND TocsinService="{service}" AND ExecutionStatus="Running"'
    async for wf in env.client.list_workflows(query):
        state = await env.client.get_workflow_handle(wf.id).query("state")
        if any(a["labels"].get("alertname") == "BuildFailing" for a in state["alerts"].values()):
            return dict(state)
    return None


def _pages(home: Path) -> list[dict[str, Any]]:
    return [r for r in outbox(home) if "BuildFailing" in r["message"]["title"]]


async def _done(p: Pipeline) -> bool | None:
    st: PipelineState = await p.handle.query(PipelineWorkflow.state)
    return True if st.notices and st.notices[0].tracking_deliveries else None


async def _comments(gh: FakeGitHub, n: int) -> bool | None:
    issues = gh.issues(GH_REPO)
    return True if issues and len(gh.comments(GH_REPO, issues[0]["number"])) >= n else None


async def _closed(gh: FakeGitHub) -> bool | None:
    issues = gh.issues(GH_REPO)
    return True if issues and issues[0]["state"] == "closed" else None


async def test_an_unwatched_branch_opens_no_tracking_issue(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any, repo: str
) -> None:
    with FakeGitHub(repos=[GH_REPO]) as gh:
        cfg = write_config(config(gh))
        async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
            p = Pipeline(time_env.client, task_queue, tmp_path, cfg, repo, branch="feature/x")
            await p.send("failure")
            state = await p.state(1)
        assert state.tracking == [] and state.notices[0].tracking is None
        assert gh.issues(GH_REPO) == []


async def test_duration_regression_and_coverage_drop_are_alerts_with_the_delta_in_the_message(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any, repo: str
) -> None:
    cfg = write_config(config(notify_success=True))
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        p = Pipeline(time_env.client, task_queue, tmp_path, cfg, repo)

        def cov(pct: float) -> CoverageSummary:
            return CoverageSummary(format="cobertura", line_percent=pct)

        for _ in range(3):
            await p.send("success", duration_seconds=100, coverage=cov(82.0))
        await p.send("success", duration_seconds=160, coverage=cov(75.5))
        await p.state(4)
        regression = await until(lambda: _first(p.messages("BuildPerformanceRegression")), "the regression alert")
        dropped = await until(lambda: _first(p.messages("CoverageDropped")), "the coverage alert")
    assert regression["severity"] == "warning" and "performance regression" in regression["text"].lower()
    assert dropped["severity"] == "warning"
    [last] = [r["message"] for r in outbox(tmp_path) if "/event-4/" in r["key"]]
    coverage = next(f["value"] for f in last["fields"] if f["title"] == "Coverage")
    assert "75.5" in coverage and "6.5" in coverage
    assert last["labels"]["coverage_state"] == "dropped"


async def test_serious_sarif_findings_go_to_the_security_route_once(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any, repo: str
) -> None:
    cfg = write_config(config())
    finding = SecurityFinding(
        rule="CVE-2026-1234", cve="CVE-2026-1234", package="openssl", location="go.sum:12", cvss=9.8
    )
    scan = SecuritySummary(tool="Trivy", error=1, critical=1, findings=[finding])
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        p = Pipeline(time_env.client, task_queue, tmp_path, cfg, repo)
        await p.send("success", security=[scan])
        await p.send("success", security=[scan])  # the same finding again: not told twice
        await p.state(2)
        first = await until(lambda: _first(p.messages("SecurityFindings")), "the security message")
    records = [r for r in outbox(tmp_path) if r["message"]["labels"].get("kind") == "security"]
    assert len(records) == 1
    assert "/security-1/security/" in records[0]["key"] + "/"  # step security-<seq>, receiver security
    assert first["severity"] == "critical"
    assert "CVE-2026-1234" in first["text"] and "openssl" in first["text"] and "go.sum:12" in first["text"]
    assert "9.8" in first["text"]


async def test_failures_on_a_watched_branch_start_the_escalation_ladder_and_green_resolves_it(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any, repo: str
) -> None:
    data = config(escalation="ci-ladder")
    data["route"]["group_wait"] = "1s"
    data["route"]["group_by"] = ["alertname", "repo"]  # this test's own incident (the dev server is shared)
    data["channels"]["pager"] = {"type": "console"}
    data["receivers"].append({"name": "oncall", "channels": ["pager"]})
    data["escalation_policies"] = {
        "ci-ladder": {"levels": [{"after": "0s", "receiver": "oncall"}, {"after": "15m", "receiver": "builds"}]}
    }
    cfg = write_config(data)
    async with tocsin_worker(dev_env.client, task_queue, tmp_path, cfg):
        p = Pipeline(dev_env.client, task_queue, tmp_path, cfg, repo)
        await p.send("failure")
        await p.send("failure")
        state = await p.state(2)
        assert state.escalated is not None
        incident = await until(lambda: _incident(dev_env, repo.rsplit("/", 1)[-1]), "the BuildFailing incident")
        assert incident["escalation"] == "ci-ladder", incident
        page = await until(lambda: _first(_pages(tmp_path)), "the BuildFailing page", seconds=60)
        assert page["key"].endswith("/rung-0/pager")  # level 1 of the ladder: oncall's channel
        await p.send("success")
        state = await p.state(3)
        assert state.escalated is None
    assert page["message"]["severity"] == "critical"
    assert repo in page["message"]["text"]


async def test_the_same_failure_on_three_branches_is_one_grouped_message_naming_the_first_run(
    fresh_time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any, repo: str
) -> None:
    """A fresh server: ``report/failure-patterns`` is one entity per namespace, started on the first test's queue."""
    cfg = write_config(config())
    failing = summary_of(outcome("test_pay", "failed", message="AssertionError: expected 200, got 503 at 0x7f3a"))
    async with tocsin_worker(fresh_time_env.client, task_queue, tmp_path, cfg):
        for i, branch in enumerate(["main", "release/1.2", "feature/pay"]):
            p = Pipeline(fresh_time_env.client, task_queue, tmp_path, cfg, repo, branch=branch)
            p.n = 10 * (i + 1)
            await p.send("failure", tests=failing, author=f"dev{i}", url=f"https://ci.example/runs/{i}")
            await p.state(1)
        group = await until(lambda: _first(p.messages("BuildFailurePattern")), "the grouped message", seconds=60)
    assert len(p.messages("BuildFailurePattern")) == 1
    for branch in ("main", "release/1.2", "feature/pay"):
        assert branch in group["text"] or branch in group["title"]
    assert "dev0" in group["text"] and "https://ci.example/runs/0" in group["text"]


async def test_a_drill_is_kept_out_of_the_health_memory_and_never_pages(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any, repo: str
) -> None:
    from workflows.pipeline.models import DRILL_WORKFLOW

    data = config(escalation="ci-ladder")
    data["escalation_policies"] = {"ci-ladder": {"levels": [{"after": "0s", "receiver": "builds"}]}}
    cfg = write_config(data)
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        p = Pipeline(time_env.client, task_queue, tmp_path, cfg, repo)
        await p.send("failure", workflow=DRILL_WORKFLOW, duration_seconds=3)
        state = await p.state(1)
    assert state.escalated is None
    assert state.health.builds.days == [] and state.health.builds.red_since is None
    assert state.tracks[DRILL_WORKFLOW].consecutive_failures == 1
    assert [m["labels"]["alertname"] for m in p.messages()] == ["BuildFailed"]
