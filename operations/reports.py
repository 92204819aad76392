"""``tocsin report``: the pipeline health report of one repository, from its pipeline entities' state.

The repository's pipelines are found through visibility (``TocsinKind=pipeline``, ``TocsinService=<repo>``,
running), each one's memory read with its ``state`` query, and the report made by the pure
:func:`workflows.policy.health_report.health_report`. The scheduled report (``ReportWorkflow``, kind
``pipeline-health``) gathers the same way through ``activities.pipelines``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from temporalio.client import Client
from temporalio.service import RPCError

from operations.context import Context, temporal_errors
from operations.errors import BadInput
from workflows import pipeline, search
from workflows.config import Config
from workflows.pipeline import PipelineState
from workflows.policy.durations import DurationError, parse_duration
from workflows.policy.health_report import HealthReport, health_report

__all__ = [
    "PipelineSnapshot",
    "pipeline_states",
    "parse_period",
    "build_health_report",
    "pipeline_report",
    "MAX_PERIOD",
    "MAX_PIPELINES",
]

log = logging.getLogger("tocsin.reports")

MAX_PERIOD = timedelta(days=365)
MAX_PIPELINES = 500
"""Branches of one repository a report reads at the most."""
QUERY_TIMEOUT = timedelta(seconds=10)


class PipelineSnapshot(BaseModel):
    """One pipeline entity's state, as read (``state`` None: it did not answer, ``error`` says why)."""

    repo: str
    branch: str
    state: PipelineState | None = None
    error: str | None = None


def parse_period(period: str, field: str = "--period") -> timedelta:
    """``7d``, ``24h``, ``2w``: a positive duration of at most a year; :class:`BadInput` naming ``field`` otherwise."""
    try:
        value = parse_duration(period)
    except DurationError as exc:
        raise BadInput(field, str(exc)) from None
    if value <= timedelta(0):
        raise BadInput(field, f"must be more than zero, got {period!r}")
    if value > MAX_PERIOD:
        raise BadInput(field, f"at most 365d, got {period!r}")
    return value


def _branch_of(workflow_id: str, repo: str) -> str:
    prefix = pipeline.pipeline_id(repo, "")
    return workflow_id[len(prefix) :] if workflow_id.startswith(prefix) else workflow_id


async def pipeline_states(client: Client, repo: str) -> list[PipelineSnapshot]:
    """Each running pipeline entity of ``repo`` and its state, sorted by branch."""
    found: list[PipelineSnapshot] = []
    with temporal_errors():
        query = search.query("pipeline", service=repo, running=True)
        async for wf in client.list_workflows(query, limit=MAX_PIPELINES):
            snap = PipelineSnapshot(repo=repo, branch=_branch_of(wf.id, repo))
            try:
                snap.state = await client.get_workflow_handle(wf.id).query(
                    pipeline.QUERY_STATE, result_type=PipelineState, rpc_timeout=QUERY_TIMEOUT
                )
            except RPCError as exc:
                log.warning("pipeline %s did not answer its state query: %s", wf.id, exc.message)
                snap.error = exc.message
            found.append(snap)
    return sorted(found, key=lambda s: s.branch)


async def build_health_report(
    client: Client, config: Config, repo: str, period: str, now: datetime | None = None
) -> HealthReport:
    """The health report of ``repo`` over ``period`` before ``now`` (default: now), with the config's
    watched branches and flaky-test thresholds.

    Raises:
        BadInput: ``period`` is not a duration (naming ``--period``).
    """
    span = parse_period(period)
    snapshots = await pipeline_states(client, repo)
    report = health_report(
        repo,
        [(s.repo, s.branch, s.state) for s in snapshots if s.state is not None],
        now or datetime.now(UTC),
        span,
        watch=config.pipelines.watch,
        flaky=config.pipelines.health.flaky,
        period_text=period,
    )
    report.unanswered = [s.branch for s in snapshots if s.state is None]
    return report


async def pipeline_report(ctx: Context, repo: str, period: str = "7d") -> HealthReport:
    """``tocsin report --repo R [--period 7d]``.

    Raises:
        BadInput: ``--period`` is not a duration, or ``--repo`` has no pipeline Tocsin knows of.
    """
    if not repo.strip():
        raise BadInput("--repo", "must not be empty")
    parse_period(period)
    report = await build_health_report(ctx.client, ctx.config, repo.strip(), period)
    if not report.branches and not report.unanswered:
        raise BadInput("--repo", f"no pipeline of {repo.strip()!r} is known (no build event has reached Tocsin)")
    return report
