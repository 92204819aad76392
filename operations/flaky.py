"""Flaky tests: ``tocsin flaky list``, ``tocsin flaky quarantine``, ``tocsin flaky release``.

Each pipeline entity (``pipeline/<repo>/<branch>``) keeps the bounded test history it judges flakiness by
(``PipelineState.health.tests``). The list asks every running pipeline of a repository (found through
visibility: ``TocsinKind = 'pipeline'``, ``TocsinService = <repo>``) for its state and applies
:func:`workflows.policy.flaky.flaky_tests` with the config's thresholds; quarantine and release are signals
(``flaky_quarantine``, ``flaky_release``) to every running pipeline of the repository, so a test muted on
``main`` is muted on its branches too.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from operations.auth import authorize
from operations.context import Context, require_actor, temporal_errors
from operations.errors import BadInput, NotFound, Unavailable
from workflows import search
from workflows.identity import Actor
from workflows.pipeline import pipeline_id
from workflows.pipeline.models import (
    QUERY_STATE,
    SIGNAL_FLAKY_QUARANTINE,
    SIGNAL_FLAKY_RELEASE,
    FlakyQuarantine,
    FlakyRelease,
    PipelineState,
)
from workflows.policy.durations import DurationError, parse_duration
from workflows.policy.flaky import flaky_tests
from workflows.policy.redact import redactor_for

__all__ = [
    "ROLE",
    "FlakyRow",
    "FlakyList",
    "Signalled",
    "list_flaky",
    "quarantine_test",
    "release_test",
    "parse_until",
    "MAX_TEST_NAME",
    "MAX_REASON",
]

ROLE = "builder"
"""What quarantining or releasing a test needs."""
MAX_TEST_NAME = 500
MAX_REASON = 500
MAX_PIPELINES = 200
"""Pipelines of one repository asked or signalled (branches beyond are left out, and said so)."""
QUERY_TIMEOUT = timedelta(seconds=10)


class FlakyRow(BaseModel):
    """One flaky or quarantined test of one pipeline."""

    test: str
    """The test's node id (``classname::name``)."""
    repo: str
    branch: str
    flaky: bool
    """Flaky by the pipeline's history (False: only quarantined)."""
    reason: str = ""
    """Why it is flaky (a rerun, a failure and a pass on one commit, or its flip rate)."""
    flips: int = 0
    flip_rate: float = 0.0
    failures: int = 0
    passes: int = 0
    last_failure: datetime | None = None
    quarantined_by: str | None = None
    quarantined_since: datetime | None = None
    quarantined_until: datetime | None = None
    """None while quarantined: until released (by hand, or after passing enough runs in a row)."""
    quarantine_reason: str = ""


class FlakyList(BaseModel):
    """``tocsin flaky list``: the rows, most recently failed first, and the pipelines that did not answer."""

    tests: list[FlakyRow] = Field(default_factory=list)
    pipelines: list[str] = Field(default_factory=list)
    """The pipelines asked."""
    unanswered: list[str] = Field(default_factory=list)
    """Pipelines whose state query failed (no worker running, say): their tests are missing from the list."""
    more: bool = False
    """More pipelines run than were asked (``MAX_PIPELINES``): narrow the list with a repository."""


class Signalled(BaseModel):
    """What a quarantine or a release was sent to."""

    test: str
    repo: str
    pipelines: list[str]
    until: datetime | None = None


def parse_until(text: str | None, now: datetime | None = None, field: str = "--until") -> datetime | None:
    """``--until``: an ISO-8601 time (UTC when it has no zone) or a duration from now (``7d``, ``12h``).

    Raises:
        BadInput: neither, or not in the future (names ``field``).
    """
    if text is None or not text.strip():
        return None
    now = now or datetime.now(UTC)
    value = text.strip()
    try:
        when = now + parse_duration(value)
    except DurationError:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BadInput(field, f"not an ISO-8601 time or a duration such as 7d: {value!r}") from None
        when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    if when <= now:
        raise BadInput(field, f"must be in the future, got {when.isoformat()}")
    return when


def _check_test(test: str, field: str = "TEST") -> str:
    name = test.strip()
    if not name:
        raise BadInput(field, "must not be empty: the test's id, classname::name as `tocsin flaky list` shows it")
    if len(name) > MAX_TEST_NAME:
        raise BadInput(field, f"longer than {MAX_TEST_NAME} characters")
    return name


def _check_repo(repo: str | None, field: str = "--repo") -> str:
    if repo is None or not repo.strip():
        raise BadInput(field, "must not be empty")
    return repo.strip()


async def _pipelines(ctx: Context, repo: str | None) -> tuple[list[tuple[str, str, str]], bool]:
    """``(workflow id, repo, branch)`` of the running pipelines (of ``repo``, or all), at most ``MAX_PIPELINES``;
    and whether there were more."""
    found: dict[str, tuple[str, str, str]] = {}
    more = False
    with temporal_errors():
        query = search.query("pipeline", service=repo, running=True)
        async for wf in ctx.client.list_workflows(query, limit=MAX_PIPELINES + 1):
            name = wf.typed_search_attributes.get(search.SERVICE) or ""
            prefix = pipeline_id(name, "")
            if not name or not wf.id.startswith(prefix) or wf.id in found:
                continue
            if len(found) >= MAX_PIPELINES:
                more = True
                break
            found[wf.id] = (wf.id, name, wf.id[len(prefix) :])
    return sorted(found.values()), more


async def _state(ctx: Context, wid: str) -> PipelineState | None:
    """The pipeline's state, or None when its query fails (no worker, or the workflow just closed)."""
    try:
        with temporal_errors():
            state: PipelineState = await ctx.client.get_workflow_handle(wid).query(
                QUERY_STATE, result_type=PipelineState, rpc_timeout=QUERY_TIMEOUT
            )
            return state
    except (RPCError, WorkflowQueryFailedError, Unavailable):
        return None


def _rows(ctx: Context, repo: str, branch: str, state: PipelineState) -> list[FlakyRow]:
    rows: list[FlakyRow] = []
    for found in flaky_tests(state.health.tests, ctx.config.pipelines.health.flaky):
        q = found.quarantine
        rows.append(
            FlakyRow(
                test=found.nodeid,
                repo=repo,
                branch=branch,
                flaky=found.flaky,
                reason=found.reason,
                flips=found.flips,
                flip_rate=found.flip_rate,
                failures=found.failures,
                passes=found.passes,
                last_failure=found.last_failure,
                quarantined_by=q.by if q else None,
                quarantined_since=q.since if q else None,
                quarantined_until=q.until if q else None,
                quarantine_reason=q.reason if q else "",
            )
        )
    return rows


def _recency(row: FlakyRow) -> float:
    return row.last_failure.timestamp() if row.last_failure else 0.0


async def list_flaky(ctx: Context, repo: str | None = None) -> FlakyList:
    """The flaky and quarantined tests of every running pipeline (of ``repo``), most recently failed first.

    Raises:
        Unavailable: Temporal did not answer the visibility query.
    """
    repo = repo.strip() if repo and repo.strip() else None
    pipelines, more = await _pipelines(ctx, repo)
    states = await asyncio.gather(*(_state(ctx, wid) for wid, _, _ in pipelines))
    rows: list[FlakyRow] = []
    unanswered: list[str] = []
    for (wid, name, branch), state in zip(pipelines, states, strict=True):
        if state is None:
            unanswered.append(wid)
            continue
        rows.extend(_rows(ctx, name, branch, state))
    rows.sort(key=lambda r: (-_recency(r), r.test, r.repo, r.branch))
    return FlakyList(tests=rows, pipelines=[wid for wid, _, _ in pipelines], unanswered=unanswered, more=more)


async def _repo_pipelines(ctx: Context, repo: str) -> list[str]:
    pipelines, _ = await _pipelines(ctx, repo)
    ids = [wid for wid, name, _ in pipelines if name == repo]
    if not ids:
        raise NotFound(f"no running pipeline of repository {repo!r} (pipeline/{repo}/*): send a build first")
    return ids


async def _signal(ctx: Context, ids: list[str], name: str, arg: FlakyQuarantine | FlakyRelease) -> None:
    with temporal_errors():
        await asyncio.gather(*(ctx.client.get_workflow_handle(wid).signal(name, arg) for wid in ids))


async def quarantine_test(
    ctx: Context,
    actor: Actor,
    repo: str,
    test: str,
    until: datetime | None = None,
    reason: str = "",
) -> Signalled:
    """Mute ``test`` in every running pipeline of ``repo`` until ``until`` (or until released).

    Raises:
        BadInput: an empty test or repo, a reason too long, ``until`` not in the future.
        Refused: the actor lacks the ``builder`` role.
        NotFound: the repository has no running pipeline.
    """
    require_actor(actor)
    authorize(ctx.config, actor, ROLE)
    name, repo = _check_test(test), _check_repo(repo)
    if until is not None:
        until = until if until.tzinfo is not None else until.replace(tzinfo=UTC)
        if until <= datetime.now(UTC):
            raise BadInput("--until", f"must be in the future, got {until.isoformat()}")
    if len(reason) > MAX_REASON:
        raise BadInput("--reason", f"longer than {MAX_REASON} characters")
    text = redactor_for(ctx.config.redact_patterns)(reason.strip()) if reason.strip() else ""
    ids = await _repo_pipelines(ctx, repo)
    await _signal(ctx, ids, SIGNAL_FLAKY_QUARANTINE, FlakyQuarantine(test=name, actor=actor, until=until, reason=text))
    return Signalled(test=name, repo=repo, pipelines=ids, until=until)


async def release_test(ctx: Context, actor: Actor, repo: str, test: str) -> Signalled:
    """Lift the quarantine of ``test`` in the pipelines of ``repo`` that hold it.

    Pipelines whose state cannot be asked (no worker answering) are signalled anyway: a release of a test
    not quarantined there changes nothing.

    Raises:
        BadInput: an empty test or repo.
        Refused: the actor lacks the ``builder`` role.
        NotFound: the repository has no running pipeline, or none of them has the test quarantined.
    """
    require_actor(actor)
    authorize(ctx.config, actor, ROLE)
    name, repo = _check_test(test), _check_repo(repo)
    ids = await _repo_pipelines(ctx, repo)
    states = await asyncio.gather(*(_state(ctx, wid) for wid in ids))
    held = [
        wid
        for wid, state in zip(ids, states, strict=True)
        if state is None or (name in state.health.tests.tests and state.health.tests.tests[name].quarantine is not None)
    ]
    if not held:
        raise NotFound(f"test {name!r} is not quarantined in any pipeline of {repo!r} (see `tocsin flaky list`)")
    await _signal(ctx, held, SIGNAL_FLAKY_RELEASE, FlakyRelease(test=name, actor=actor))
    return Signalled(test=name, repo=repo, pipelines=held)
