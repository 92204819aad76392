"""``tocsin drill``: an alert drill through the real path (issue 14 item 9, seed 004).

A synthetic failure of the CI workflow ``tocsin-drill`` goes to the pipeline ``pipeline/<repo>/<branch>`` as
any ``tocsin build`` event does (:func:`operations.builds.send_build_event`: authorized, redacted,
signal-with-start); the drill then polls the pipeline's ``state`` query until the failure was notified and
its CI failure tracking issue opened (``notice.tracking == "trigger"`` with a delivered tracking record),
sends the recovery (a success of a second synthetic commit), and waits until the issue closed
(``tracking == "resolve"``, delivered). The timings are measured by the drill's own clock.

The drill's track is its own (``tocsin-drill``): the branch's real CI tracks are not touched. It is
recorded twice over in the audit journal: by the pipeline itself (each of its two events is a
``build.reported`` record with ``workflow: tocsin-drill`` and the sender's actor), and by the CLI, which
seals one ``drill`` record with the timings and what did not happen (:func:`drill_entry`).

Safety: a drill on a branch that is not watched (``pipelines.watch``) is bad input (no tracking issue would
open), and a drill on a pipeline whose tracking issue is already open is refused (its recovery would close
the real issue).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from temporalio.service import RPCError

from operations.builds import send_build_event
from operations.context import Context, require_actor
from operations.errors import BadInput, Conflict
from workflows import pipeline
from workflows.audit import JournalEntry
from workflows.identity import Actor
from workflows.pipeline import DRILL_WORKFLOW, BuildEvent, PipelineNotice, PipelineState
from workflows.policy.health_report import watched

__all__ = ["DRILL_WORKFLOW", "DrillResult", "run_drill", "drill_commit", "drill_entry"]

"""The CI workflow name of the drill's events (its own track in the pipeline)."""
POLL_SECONDS = 0.25


class DrillResult(BaseModel):
    """What the drill saw, and when (seconds from the event each step follows)."""

    repo: str
    branch: str
    workflow_id: str
    failure_commit: str
    recovery_commit: str | None = None
    sent_at: datetime
    notified_seconds: float | None = None
    """Failure sent → its notification delivered."""
    issue_opened_seconds: float | None = None
    """Failure sent → the tracking issue opened."""
    issue_url: str | None = None
    recovery_sent_at: datetime | None = None
    issue_closed_seconds: float | None = None
    """Recovery sent → the tracking issue closed."""
    missing: list[str] = Field(default_factory=list)
    """What did not happen within the timeout (empty: the drill passed)."""

    @property
    def ok(self) -> bool:
        """Everything happened in time."""
        return not self.missing


def drill_commit(kind: str) -> str:
    """A synthetic commit SHA (40 hex digits of a hash of the time)."""
    return hashlib.sha1(f"tocsin-drill {kind} {time.time_ns()}".encode()).hexdigest()


def drill_entry(actor: Actor, result: DrillResult) -> JournalEntry:
    """The audit journal's ``drill`` record of a drill (key ``drill/<failure commit>``)."""
    detail = result.model_dump(
        mode="json",
        include={"repo", "branch", "failure_commit", "recovery_commit", "issue_url", "missing"}
        | {"notified_seconds", "issue_opened_seconds", "issue_closed_seconds"},
    )
    return JournalEntry(
        key=f"drill/{result.failure_commit}",
        time=result.sent_at,
        actor=actor,
        action="drill",
        object=result.workflow_id,
        detail={**detail, "ok": result.ok},
    )


def _delivered(notice: PipelineNotice | None) -> bool:
    return notice is not None and any(d.outcome == "delivered" for d in notice.deliveries)


def _tracked(notice: PipelineNotice | None, action: str) -> str | None:
    """The issue's URL (or ``""``) once the notice's tracking ``action`` was delivered; None before."""
    if notice is None or notice.tracking != action:
        return None
    done = [d for d in notice.tracking_deliveries if d.outcome == "delivered"]
    return (done[0].url or "") if done else None


def _notice(state: PipelineState | None, commit: str) -> PipelineNotice | None:
    if state is None:
        return None
    return next((n for n in state.notices if n.commit == commit and n.workflow == DRILL_WORKFLOW), None)


async def _state(ctx: Context, wid: str) -> PipelineState | None:
    """The pipeline's state; None while it cannot answer (not started yet, no worker free): the drill waits."""
    try:
        return await ctx.client.get_workflow_handle(wid).query(
            pipeline.QUERY_STATE, result_type=PipelineState, rpc_timeout=timedelta(seconds=5)
        )
    except RPCError:
        return None


def _check(ctx: Context, repo: str, branch: str, timeout: timedelta) -> None:
    for field, value in (("--repo", repo), ("--branch", branch)):
        if not value.strip():
            raise BadInput(field, "must not be empty")
    if timeout <= timedelta(0):
        raise BadInput("--timeout", "must be more than zero")
    globs = ctx.config.pipelines.watch
    if not watched(branch, globs):
        raise BadInput(
            "--branch",
            f"{branch!r} is not watched (pipelines.watch: {', '.join(globs) or 'none'}): a failure there opens no "
            "tracking issue",
        )
    if not ctx.config.pipelines.tracking:
        raise BadInput("--branch", "pipelines.tracking is off: a failure opens no tracking issue to drill")


async def run_drill(
    ctx: Context, actor: Actor, repo: str, branch: str, timeout: timedelta = timedelta(seconds=120)
) -> DrillResult:
    """Send a synthetic failure and its recovery to ``pipeline/<repo>/<branch>`` and time what follows.

    Returns:
        The timings; ``missing`` lists what did not happen within ``timeout`` (the recovery is sent
        even then, so the drill never leaves its track red).

    Raises:
        BadInput: an empty ``--repo``/``--branch``, a branch that is not watched, tracking off.
        Conflict: the pipeline's tracking issue is open already.
        Refused: the actor may not send CI events (``builder``).
    """
    require_actor(actor)
    _check(ctx, repo, branch, timeout)
    wid = pipeline.pipeline_id(repo, branch)
    before = await _state(ctx, wid)
    if before is not None and (before.tracking or before.escalated):
        what = f"its tracking issue is open ({', '.join(before.tracking)})" if before.tracking else "it is escalated"
        raise Conflict(f"{wid} is red: {what}; a drill's recovery would close it — drill when the branch is green")
    deadline = time.monotonic() + timeout.total_seconds()
    failure = drill_commit("failure")
    event = BuildEvent(repo=repo, branch=branch, commit=failure, status="failure", workflow=DRILL_WORKFLOW)
    started = time.monotonic()
    result = DrillResult(repo=repo, branch=branch, workflow_id=wid, failure_commit=failure, sent_at=datetime.now(UTC))
    await send_build_event(ctx, actor, event)
    while time.monotonic() < deadline:
        notice = _notice(await _state(ctx, wid), failure)
        now = time.monotonic()
        if result.notified_seconds is None and _delivered(notice):
            result.notified_seconds = round(now - started, 3)
        url = _tracked(notice, "trigger")
        if result.issue_opened_seconds is None and url is not None:
            result.issue_opened_seconds = round(now - started, 3)
            result.issue_url = url or None
        if result.notified_seconds is not None and result.issue_opened_seconds is not None:
            break
        await asyncio.sleep(POLL_SECONDS)
    if result.notified_seconds is None:
        result.missing.append("the failure's notification was not delivered")
    if result.issue_opened_seconds is None:
        result.missing.append("the tracking issue did not open")
    recovery = drill_commit("recovery")
    result.recovery_commit = recovery
    result.recovery_sent_at = datetime.now(UTC)
    back = BuildEvent(repo=repo, branch=branch, commit=recovery, status="success", workflow=DRILL_WORKFLOW)
    recovered = time.monotonic()
    await send_build_event(ctx, actor, back)
    if result.issue_opened_seconds is None:
        result.missing.append("the tracking issue was not closed (it never opened)")
        return result
    while time.monotonic() < deadline:
        if _tracked(_notice(await _state(ctx, wid), recovery), "resolve") is not None:
            result.issue_closed_seconds = round(time.monotonic() - recovered, 3)
            return result
        await asyncio.sleep(POLL_SECONDS)
    result.missing.append("the tracking issue did not close after the recovery")
    return result
