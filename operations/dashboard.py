"""The web dashboard's view (``GET /``, ``GET /api/v1/dashboard``) and the build badges (``GET /badge/…``).

One call, :func:`collect_dashboard`, gathers a bounded picture: the pipelines (``pipeline/<repo>/<branch>``)
with their status, 7-day success rate, average build time, failures today and build-time trend; their recent
failures; open incidents with level and age; running deployments with stage and weight.

Lists come from Temporal's visibility (search attributes and memo), each with a limit. Pipeline and
deployment states come from their ``state`` queries, sent concurrently (at most :data:`QUERY_CONCURRENCY` at a
time), each with a timeout (:data:`QUERY_TIMEOUT`), all within twice that: a workflow whose worker is gone or
stuck shows what visibility knows and is marked unanswered, it never holds the page up.

It is read-only and needs no authorization: what it shows (names, statuses, commits, links CI sent, counts)
is what a status page shows; states carry no secrets (they are redacted before they reach a workflow).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from pydantic import BaseModel, Field
from temporalio.client import WorkflowExecution

from operations.context import Context, temporal_errors
from workflows import search
from workflows.deployment import QUERY_STATE as DEPLOY_QUERY_STATE
from workflows.deployment import DeploymentState
from workflows.pipeline import QUERY_STATE as PIPELINE_QUERY_STATE
from workflows.pipeline import PipelineState, pipeline_id

__all__ = [
    "BadgeStatus",
    "TrendPoint",
    "RecentFailure",
    "PipelineView",
    "IncidentView",
    "DeploymentView",
    "Dashboard",
    "MAX_PIPELINES",
    "MAX_INCIDENTS",
    "MAX_DEPLOYMENTS",
    "MAX_RECENT_FAILURES",
    "MAX_TREND_POINTS",
    "QUERY_TIMEOUT",
    "QUERY_CONCURRENCY",
    "collect_dashboard",
    "pipeline_view",
    "badge_status",
    "pipeline_badge",
]

MAX_PIPELINES = 200
"""Pipelines listed (visibility order: most recently started first)."""
MAX_INCIDENTS = 100
MAX_DEPLOYMENTS = 50
MAX_RECENT_FAILURES = 20
MAX_TREND_POINTS = 50
"""Build-time points kept per pipeline (the latest ones)."""
QUERY_TIMEOUT = 3.0
"""Seconds one state query may take before the row is shown from visibility alone."""
QUERY_CONCURRENCY = 16
SUCCESS_RATE_DAYS = 7

BadgeStatus = Literal["passing", "failing", "flaky", "unknown"]

_FAILED_NOTICES = ("BuildFailed", "BuildFlaky")
"""Notices that are failed builds (``BuildFlaky``: failed on known-flaky tests only)."""

T = TypeVar("T")


class TrendPoint(BaseModel):
    """One finished build's duration."""

    at: datetime
    seconds: float
    status: str


class RecentFailure(BaseModel):
    """One failed build of a pipeline."""

    repo: str
    branch: str
    commit: str
    workflow: str
    flaky: bool = False
    url: str | None = None
    """The CI run's link when known (the last build's), else the CI failure tracking issue's."""
    seq: int = 0
    """The event's number in its pipeline (newer is larger)."""


class PipelineView(BaseModel):
    """One pipeline (repository branch) as the dashboard shows it."""

    id: str
    repo: str
    branch: str
    status: BadgeStatus
    """``passing``, ``failing``, ``flaky`` (the last finished build failed on flaky tests only) or ``unknown``."""
    building: bool = False
    """The latest event is a ``started`` one."""
    answered: bool = True
    """False when the state query did not answer in time (the row shows visibility's status only)."""
    last_commit: str | None = None
    last_url: str | None = None
    last_duration_seconds: float | None = None
    consecutive_failures: int = 0
    red_since: datetime | None = None
    success_rate_7d: float | None = None
    """Successful share of the builds finished in the last 7 UTC days (None: none finished)."""
    builds_7d: int = 0
    avg_build_seconds: float | None = None
    """Mean duration of the recent finished builds that reported one."""
    failures_today: int = 0
    """Failed builds of the current UTC day."""
    trend: list[TrendPoint] = Field(default_factory=list)
    """Durations of the last finished builds, oldest first (at most ``MAX_TREND_POINTS``)."""
    failures: list[RecentFailure] = Field(default_factory=list)


class IncidentView(BaseModel):
    """One open incident."""

    id: str
    title: str = ""
    service: str = ""
    severity: str = ""
    status: str = ""
    level: int = 0
    acknowledged_by: str | None = None
    created_at: datetime | None = None
    age_seconds: float | None = None


class DeploymentView(BaseModel):
    """One running deployment."""

    id: str
    service: str = ""
    env: str = ""
    version: str = ""
    status: str = ""
    stage: str = ""
    weight: int | None = None
    paused: bool = False
    started_at: datetime | None = None
    answered: bool = True


class Dashboard(BaseModel):
    """Everything the dashboard page shows."""

    generated_at: datetime
    pipelines: list[PipelineView] = Field(default_factory=list)
    recent_failures: list[RecentFailure] = Field(default_factory=list)
    incidents: list[IncidentView] = Field(default_factory=list)
    deployments: list[DeploymentView] = Field(default_factory=list)
    truncated: list[str] = Field(default_factory=list)
    """Sections that hit their limit (``pipelines``, ``incidents``, ``deployments``)."""
    unanswered: int = 0
    """State queries that did not answer in time."""


# ------------------------------------------------------------------------------------------ pure views


def badge_status(state: PipelineState | None) -> BadgeStatus:
    """The badge of a pipeline: ``flaky`` when its last finished build failed on flaky tests only,
    ``failing`` while a CI workflow of it is red, ``passing`` once one has finished and none is red,
    ``unknown`` without a finished build (or without a state)."""
    if state is None:
        return "unknown"
    finished = [n for n in state.notices if n.alertname != "BuildStarted"]
    if finished and (finished[-1].flaky or finished[-1].alertname == "BuildFlaky"):
        return "flaky"
    tracks = list(state.tracks.values())
    if any(t.consecutive_failures for t in tracks):
        return "failing"
    if any(t.last_status is not None for t in tracks):
        return "passing"
    last = state.last_event.status if state.last_event is not None else None
    return "passing" if last == "success" else "failing" if last in ("failure", "timed_out") else "unknown"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _failures(repo: str, branch: str, state: PipelineState) -> list[RecentFailure]:
    last = state.last_event
    out: list[RecentFailure] = []
    for notice in state.notices:
        if notice.alertname not in _FAILED_NOTICES:
            continue
        url = last.url if last is not None and last.commit == notice.commit else None
        if url is None:
            url = next((d.url for d in notice.tracking_deliveries if d.url), None)
        out.append(
            RecentFailure(
                repo=repo,
                branch=branch,
                commit=notice.commit,
                workflow=notice.workflow,
                flaky=notice.flaky or notice.alertname == "BuildFlaky",
                url=url,
                seq=notice.seq,
            )
        )
    return out[::-1]


def pipeline_view(repo: str, branch: str, state: PipelineState | None, now: datetime) -> PipelineView:
    """A pipeline's row from its state (None: not answered, shown as ``unknown``)."""
    view = PipelineView(id=pipeline_id(repo, branch), repo=repo, branch=branch, status=badge_status(state))
    if state is None:
        view.answered = False
        return view
    builds = state.health.builds
    today = now.astimezone(UTC).date()
    first_day = today - timedelta(days=SUCCESS_RATE_DAYS - 1)
    window = [d for d in builds.days if first_day <= d.day <= today]
    ok = sum(d.successes for d in window)
    total = ok + sum(d.failures for d in window)
    samples = builds.durations_all[-MAX_TREND_POINTS:]
    last = state.last_event
    view.building = bool(state.notices) and state.notices[-1].alertname == "BuildStarted"
    view.last_commit = last.commit if last is not None else (state.notices[-1].commit if state.notices else None)
    view.last_url = last.url if last is not None else None
    view.last_duration_seconds = last.duration_seconds if last is not None else None
    view.consecutive_failures = max((t.consecutive_failures for t in state.tracks.values()), default=0)
    view.red_since = builds.red_since
    view.success_rate_7d = ok / total if total else None
    view.builds_7d = total
    recent = _mean([s for _, s, _ in builds.durations_all])
    view.avg_build_seconds = recent if recent is not None else _mean(builds.durations)
    view.failures_today = sum(d.failures for d in builds.days if d.day == today)
    view.trend = [TrendPoint(at=at, seconds=seconds, status=status) for at, seconds, status in samples]
    view.failures = _failures(repo, branch, state)
    return view


def _split_pipeline_id(workflow_id: str, repo: str | None) -> tuple[str, str]:
    """``(repo, branch)`` of ``pipeline/<repo>/<branch>`` (the repo from ``TocsinService`` when known)."""
    rest = workflow_id.removeprefix("pipeline/")
    if repo and rest.startswith(repo + "/"):
        return repo, rest[len(repo) + 1 :]
    head, _, tail = rest.rpartition("/")
    return head, tail


def _repo_matches(repo: str, wanted: str) -> bool:
    return repo == wanted or repo.endswith("/" + wanted)


# ------------------------------------------------------------------------------------------ queries


class _Budget:
    """At most ``QUERY_CONCURRENCY`` calls at a time, each within ``timeout`` seconds, all within ``2 × timeout``."""

    def __init__(self, timeout: float, concurrency: int = QUERY_CONCURRENCY) -> None:
        self.timeout = timeout
        self.gate = asyncio.Semaphore(concurrency)
        self.deadline = asyncio.get_running_loop().time() + 2 * timeout

    async def run(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """``call()``'s answer, or None when it fails, or does not answer in its time or the budget's."""
        async with self.gate:
            left = min(self.timeout, self.deadline - asyncio.get_running_loop().time())
            if left <= 0:
                return None
            try:
                return await asyncio.wait_for(call(), timeout=left)
            except Exception:  # a query that fails or times out leaves the row to visibility
                return None


async def _pipeline_state(ctx: Context, workflow_id: str, timeout: float) -> PipelineState:
    handle = ctx.client.get_workflow_handle(workflow_id)
    return await handle.query(PIPELINE_QUERY_STATE, result_type=PipelineState, rpc_timeout=timedelta(seconds=timeout))


async def _deploy_state(ctx: Context, workflow_id: str, timeout: float) -> DeploymentState:
    handle = ctx.client.get_workflow_handle(workflow_id)
    return await handle.query(DEPLOY_QUERY_STATE, result_type=DeploymentState, rpc_timeout=timedelta(seconds=timeout))


async def _listed(ctx: Context, query: str, limit: int) -> tuple[list[WorkflowExecution], bool]:
    """Up to ``limit`` executions, and whether there were more."""
    found: list[WorkflowExecution] = []
    async for ex in ctx.client.list_workflows(query, limit=limit + 1):
        found.append(ex)
    return found[:limit], len(found) > limit


def _incident_view(ex: WorkflowExecution, memo: dict[str, object], now: datetime) -> IncidentView:
    attrs = ex.typed_search_attributes
    level = memo.get("level")
    by = memo.get("acknowledged_by")
    return IncidentView(
        id=ex.id,
        title=str(memo.get("title") or ""),
        service=str(memo.get("service") or attrs.get(search.SERVICE) or ""),
        severity=str(memo.get("severity") or attrs.get(search.SEVERITY) or ""),
        status=attrs.get(search.STATUS) or "triggered",
        level=level if isinstance(level, int) else 0,
        acknowledged_by=str(by) if by else None,
        created_at=ex.start_time,
        age_seconds=(now - ex.start_time).total_seconds() if ex.start_time else None,
    )


def _deployment_view(ex: WorkflowExecution, state: DeploymentState | None) -> DeploymentView:
    attrs = ex.typed_search_attributes
    status = attrs.get(search.STATUS) or "running"
    service, env = attrs.get(search.SERVICE) or "", attrs.get(search.ENVIRONMENT) or ""
    view = DeploymentView(
        id=ex.id,
        service=service,
        env=env,
        version=ex.id.removeprefix(f"deploy/{service}/{env}/"),
        status=status,
        stage=status,
        started_at=ex.start_time,
        answered=state is not None,
    )
    if state is not None:
        view.version = state.version or view.version
        view.stage = state.stage
        view.weight = state.weight
        view.paused = state.paused
    return view


async def collect_dashboard(
    ctx: Context,
    repo: str | None = None,
    *,
    timeout: float = QUERY_TIMEOUT,
    now: datetime | None = None,
) -> Dashboard:
    """The dashboard's view: pipelines, their recent failures, open incidents, running deployments.

    Args:
        ctx: the operations' context (only its client is used).
        repo: only pipelines of this repository (``acme/shop``, or its last part ``shop``); incidents and
            deployments of the service of that name.
        timeout: seconds each state query may take.
        now: the time the ages and "today" are measured from (default: the clock).

    Raises:
        Unavailable: Temporal does not answer the listings.
    """
    now = now or datetime.now(UTC)
    service = repo.rsplit("/", 1)[-1] if repo else None
    budget = _Budget(timeout)
    truncated: list[str] = []
    with temporal_errors():
        # A full repository name is TocsinService itself; its last part alone is matched below.
        exact = repo if repo is not None and "/" in repo else None
        pipes, more = await _listed(ctx, search.query("pipeline", service=exact, running=True), MAX_PIPELINES)
        if more:
            truncated.append("pipelines")
        incidents, more = await _listed(
            ctx,
            search.query("incident", service=service, status=search.OPEN_INCIDENT_STATUSES, running=True),
            MAX_INCIDENTS,
        )
        if more:
            truncated.append("incidents")
        deploys, more = await _listed(ctx, search.query("deployment", service=service, running=True), MAX_DEPLOYMENTS)
        if more:
            truncated.append("deployments")
    names = [_split_pipeline_id(ex.id, ex.typed_search_attributes.get(search.SERVICE)) for ex in pipes]
    keep = [i for i, (r, _) in enumerate(names) if repo is None or _repo_matches(r, repo)]
    pipe_states, deploy_states, memos = await asyncio.gather(
        asyncio.gather(*(budget.run(_state_call(ctx, pipes[i].id, timeout)) for i in keep)),
        asyncio.gather(*(budget.run(_deploy_call(ctx, ex.id, timeout)) for ex in deploys)),
        asyncio.gather(*(ex.memo() for ex in incidents)),
    )
    views = [pipeline_view(*names[i], state, now) for i, state in zip(keep, pipe_states, strict=True)]
    for i, view in zip(keep, views, strict=True):
        if not view.answered:  # visibility's TocsinStatus is all there is
            view.status = _status_from_visibility(pipes[i].typed_search_attributes.get(search.STATUS))
    order = {"failing": 0, "flaky": 1, "unknown": 2, "passing": 3}
    views.sort(key=lambda v: (order[v.status], v.repo, v.branch))
    failures = sorted(
        (f for v in views for f in v.failures), key=lambda f: (f.repo, f.branch, -f.seq)
    )  # grouped by pipeline, newest first
    open_incidents = [_incident_view(ex, memo or {}, now) for ex, memo in zip(incidents, memos, strict=True)]
    open_incidents.sort(key=lambda i: (-i.level, i.created_at or now))  # highest level first, then oldest
    return Dashboard(
        generated_at=now,
        pipelines=views,
        recent_failures=failures[:MAX_RECENT_FAILURES],
        incidents=open_incidents,
        deployments=[_deployment_view(ex, st) for ex, st in zip(deploys, deploy_states, strict=True)],
        truncated=truncated,
        unanswered=sum(1 for s in pipe_states if s is None) + sum(1 for s in deploy_states if s is None),
    )


def _state_call(ctx: Context, workflow_id: str, timeout: float) -> Callable[[], Awaitable[PipelineState]]:
    return lambda: _pipeline_state(ctx, workflow_id, timeout)


def _deploy_call(ctx: Context, workflow_id: str, timeout: float) -> Callable[[], Awaitable[DeploymentState]]:
    return lambda: _deploy_state(ctx, workflow_id, timeout)


def _status_from_visibility(status: str | None) -> BadgeStatus:
    return "failing" if status == "failing" else "passing" if status == "passing" else "unknown"


async def _visible_status(ctx: Context, workflow_id: str) -> str | None:
    described = await ctx.client.get_workflow_handle(workflow_id).describe()
    return described.typed_search_attributes.get(search.STATUS)


async def pipeline_badge(ctx: Context, repo: str, branch: str, *, timeout: float = QUERY_TIMEOUT) -> BadgeStatus:
    """The badge status of ``pipeline/<repo>/<branch>``; ``unknown`` when there is no such pipeline or Temporal
    does not answer (a badge never errors). When the state query is not answered in time, the status comes from
    visibility (``TocsinStatus``: ``passing`` or ``failing``)."""
    budget = _Budget(timeout, concurrency=1)
    wid = pipeline_id(repo, branch)
    state = await budget.run(_state_call(ctx, wid, timeout))
    if state is not None:
        return badge_status(state)
    return _status_from_visibility(await budget.run(lambda: _visible_status(ctx, wid)))
