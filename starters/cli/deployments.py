"""Deployments and the audit trail: ``deploy`` (and its controls), ``approve``, ``reject``, ``rollback``, ``audit``.

``tocsin deploy --service S --env E --version V --by USER`` starts a deployment;
``tocsin deploy pause|resume|promote|abort ID --by USER`` steer one in progress
(``deploy`` is a command group whose callback starts a deployment when no
subcommand is given).

Exit codes follow the contract: 0 success (deployed, decision accepted); 1
operational error; 2 bad input or a refused decision (the reason is printed);
3 rolled back; 4 rejected or approval expired.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Optional

import typer
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import WorkflowFailureError

from operations import BadInput, Conflict, Context, OperationError, Unavailable
from operations.audit import export_audit, verify_lines
from operations.deployments import Control, check_environment, control, deployment_state, start_deployment
from operations.deployments import approve as approve_deployment
from operations.deployments import reject as reject_deployment
from operations.deployments import rollback as rollback_deployment
from operations.journal import VerifyResult, dsn_from_env, open_journal
from starters.cli.common import (
    EXIT_BAD_INPUT,
    actor_from,
    app,
    bad_input,
    check_url,
    fail,
    load_config_or_exit,
    non_empty,
    run_async,
    run_op,
)
from starters.cli.remote import Api
from starters.cli.remote import enabled as remote_enabled
from workers.settings import Settings
from workflows.deployment import OUTCOME_EXIT_CODES, DeployInput, DeploymentState, DeployResult
from workflows.policy.durations import DurationError, parse_duration
from workflows.policy.gates import NO_DEPLOY_HOOK

__all__ = ["audit_app", "deploy_app", "parse_since"]

audit_app = typer.Typer(help="Export and verify the audit trail.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(audit_app, name="audit")
deploy_app = typer.Typer(
    help="Start a deployment: tocsin deploy --service S --env E --version V --by USER [...]. "
    "Or steer one in progress: tocsin deploy pause|resume|promote|abort ID --by USER.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
)
app.add_typer(deploy_app, name="deploy")

_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+@-]*$")


def parse_since(text: str) -> datetime:
    """``--since``: an ISO-8601 instant (UTC when no zone) or a duration ago (``24h``, ``7d``).

    Raises:
        ValueError: neither.
    """
    try:
        return datetime.now(UTC) - parse_duration(text)
    except DurationError:
        pass
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _name(field: str, value: str) -> str:
    value = non_empty(field, value)
    if not _NAME.match(value):
        bad_input(field, f"letters, digits and . _ : + @ - only, got {value!r}")
    return value


def _echo_err(text: str) -> None:
    typer.echo(text, err=True)
    sys.stderr.flush()


def _check_deploy(
    commit: Optional[str],
    changes_url: Optional[str],
    change_size: Optional[int],
    emergency: bool,
    reason: Optional[str],
) -> None:
    if commit is not None and not _SHA.match(commit):
        bad_input("--commit", f"not a commit SHA (7-64 hex digits): {commit!r}")
    check_url("--changes-url", changes_url)
    if change_size is not None and change_size < 0:
        bad_input("--change-size", f"must not be negative, got {change_size}")
    if emergency and not (reason or "").strip():
        bad_input("--reason", "an --emergency deployment needs a reason")
    if reason is not None and not emergency:
        bad_input("--reason", "only with --emergency")


@deploy_app.callback()
def deploy(
    ctx: typer.Context,
    service: Optional[str] = typer.Option(None, metavar="S", help="Service to deploy."),
    env: Optional[str] = typer.Option(None, "--env", metavar="E", help="Environment (a key of environments:)."),
    version: Optional[str] = typer.Option(None, metavar="V", help="Version to deploy."),
    by: Optional[str] = typer.Option(None, metavar="USER", help="Who is deploying."),
    commit: Optional[str] = typer.Option(
        None, metavar="SHA", help="Commit SHA (its pipeline must be green when known)."
    ),
    changes_url: Optional[str] = typer.Option(None, "--changes-url", metavar="URL", help="Link to the changes."),
    change_size: Optional[int] = typer.Option(
        None, "--change-size", metavar="LINES", help="Lines changed (a risk factor)."
    ),
    emergency: bool = typer.Option(False, "--emergency", help="Override freeze windows (needs --reason)."),
    reason: Optional[str] = typer.Option(None, metavar="TEXT", help="Why: required with --emergency."),
    wait: bool = typer.Option(
        False, "--wait", help="Follow the deployment; exit 0 deployed, 3 rolled back, 4 rejected or expired."
    ),
) -> None:
    """Start a deployment (--service S --env E --version V --by USER); prints its id first, at once.

    Or steer one in progress: tocsin deploy pause|resume|promote|abort ID --by USER.
    """
    given = {
        "--service": service,
        "--env": env,
        "--version": version,
        "--by": by,
        "--commit": commit,
        "--changes-url": changes_url,
        "--change-size": change_size,
        "--reason": reason,
    }
    if ctx.invoked_subcommand is not None:
        extra = [name for name, value in given.items() if value is not None]
        extra += [name for name, flag in (("--emergency", emergency), ("--wait", wait)) if flag]
        if extra:
            bad_input(extra[0], f"starts a deployment: not with 'tocsin deploy {ctx.invoked_subcommand}'")
        return
    for field in ("--service", "--env", "--version", "--by"):
        if given[field] is None:
            bad_input(field, "required to start a deployment (tocsin deploy --service S --env E --version V --by USER)")
    assert service is not None and env is not None and version is not None
    _start(
        DeployInput(
            service=_name("--service", service),
            env=_name("--env", env),
            version=_name("--version", version),
            by=actor_from(by).name,
            commit=commit,
            changes_url=changes_url,
            change_size=change_size,
            emergency=emergency,
            reason=reason,
        ),
        wait,
    )


def _start(request: DeployInput, wait: bool) -> None:
    """Check a deployment request, start it, print its id; with ``wait`` follow it to its exit code."""
    actor = actor_from(request.by)
    _check_deploy(request.commit, request.changes_url, request.change_size, request.emergency, request.reason)
    request.reason = (request.reason or "").strip() or None
    cfg = None if remote_enabled() else load_config_or_exit(None)  # remote: the gateway's config decides
    try:
        if cfg is not None:
            check_environment(cfg, request.env)
    except BadInput as exc:
        bad_input(exc.field, exc.message)

    async def go(ctx: Context) -> int:
        handle, started = await start_deployment(ctx, actor, request)
        _started(handle.id, started, wait)
        if not wait:
            return 0
        task = asyncio.ensure_future(handle.result())

        async def result(seconds: float) -> DeployResult | None:
            await asyncio.wait({task}, timeout=seconds)
            return task.result() if task.done() else None

        return await _follow(lambda: deployment_state(ctx, handle.id), result)

    async def go_remote(api: Api) -> int:
        wid, started = await api.deploy(request)
        _started(wid, started, wait)
        if not wait:
            return 0
        return await _follow(lambda: api.deployment_state(wid), lambda seconds: api.deployment_result(wid, seconds))

    raise typer.Exit(run_op(go, cfg, remote=go_remote))


def _started(wid: str, started: bool, wait: bool) -> None:
    """Print the deployment's id at once (and say so on stderr when it was already running)."""
    typer.echo(wid)
    sys.stdout.flush()
    if not started:
        _echo_err(f"tocsin: {wid} is already running; following it" if wait else f"tocsin: {wid} is already running")


def _control(what: Control, deployment: str, by: str, reason: Optional[str]) -> None:
    actor = actor_from(by)
    wid = non_empty("ID", deployment)
    why = (reason or "").strip()
    run_op(
        lambda ctx: control(ctx, actor, wid, what, why),
        refused=(f"{what} refused", EXIT_BAD_INPUT),
        remote=lambda api: api.control(wid, what, by, why),
    )
    typer.echo(f"{wid}: {what} sent by {actor.name}")


@deploy_app.command("pause")
def deploy_pause(
    deployment: str = typer.Argument(..., metavar="ID", help="Deployment id (deploy/<service>/<env>/<version>)."),
    by: str = typer.Option(..., "--by", metavar="USER", help="Who pauses."),
    reason: Optional[str] = typer.Option(None, metavar="TEXT", help="Why (optional)."),
) -> None:
    """Hold a canary at its current weight (its bake timer stops)."""
    _control("pause", deployment, by, reason)


@deploy_app.command("resume")
def deploy_resume(
    deployment: str = typer.Argument(..., metavar="ID", help="Deployment id."),
    by: str = typer.Option(..., "--by", metavar="USER", help="Who resumes."),
    reason: Optional[str] = typer.Option(None, metavar="TEXT", help="Why (optional)."),
) -> None:
    """Continue a paused canary (an inconclusive analysis measures again)."""
    _control("resume", deployment, by, reason)


@deploy_app.command("promote")
def deploy_promote(
    deployment: str = typer.Argument(..., metavar="ID", help="Deployment id."),
    by: str = typer.Option(..., "--by", metavar="USER", help="Who promotes."),
    reason: Optional[str] = typer.Option(None, metavar="TEXT", help="Why (optional)."),
) -> None:
    """Skip the remaining canary steps and analysis: go to 100% now."""
    _control("promote", deployment, by, reason)


@deploy_app.command("abort")
def deploy_abort(
    deployment: str = typer.Argument(..., metavar="ID", help="Deployment id."),
    by: str = typer.Option(..., "--by", metavar="USER", help="Who aborts."),
    reason: Optional[str] = typer.Option(None, metavar="TEXT", help="Why (optional)."),
) -> None:
    """Stop: roll back a rollout in progress, or withdraw one not yet rolling out."""
    _control("abort", deployment, by, reason)


@app.command()
def approve(
    deployment: str = typer.Argument(..., metavar="ID", help="Deployment id (deploy/<service>/<env>/<version>)."),
    by: str = typer.Option(..., metavar="USER", help="Who approves."),
    comment: Optional[str] = typer.Option(None, metavar="TEXT", help="Why (optional)."),
) -> None:
    """Approve a deployment; answers at once whether the approval was accepted."""
    actor = actor_from(by)
    note = comment.strip() if comment and comment.strip() else None
    answer = run_op(
        lambda ctx: approve_deployment(ctx, actor, deployment, note),
        refused=("approve refused", 2),
        remote=lambda api: api.decide(deployment, "approve", by, comment=note),
    )
    typer.echo(f"{deployment}: approved by {actor.name} ({answer.approvals}/{answer.required} approvals)")


@app.command()
def reject(
    deployment: str = typer.Argument(..., metavar="ID", help="Deployment id."),
    by: str = typer.Option(..., metavar="USER", help="Who rejects."),
    reason: str = typer.Option(..., metavar="TEXT", help="Why."),
) -> None:
    """Reject a deployment; answers at once whether the rejection was accepted."""
    actor = actor_from(by)
    why = non_empty("--reason", reason)
    run_op(
        lambda ctx: reject_deployment(ctx, actor, deployment, why),
        refused=("reject refused", 2),
        remote=lambda api: api.decide(deployment, "reject", by, reason=why),
    )
    typer.echo(f"{deployment}: rejected by {actor.name}")


@app.command()
def rollback(
    service: str = typer.Option(..., metavar="SERVICE", help="Service."),
    env: str = typer.Option(..., "--env", metavar="ENV", help="Environment."),
    by: str = typer.Option(..., metavar="USER", help="Who rolls back."),
    reason: str = typer.Option(..., metavar="TEXT", help="Why."),
) -> None:
    """Roll back what is going out (a canary), else the last deployment that went out."""
    service, env = _name("--service", service), _name("--env", env)
    actor = actor_from(by)
    why = non_empty("--reason", reason)
    outcome = run_op(
        lambda ctx: rollback_deployment(ctx, actor, service, env, why),
        remote=lambda api: api.rollback(service, env, by, why),
    )
    if outcome.action == "nothing":
        fail(f"nothing to roll back: {outcome.detail}")
    typer.echo(outcome.workflow_id)
    _echo_err(
        f"tocsin: {'rollback signalled to' if outcome.action == 'signalled' else 'rollback started as'} "
        f"{outcome.workflow_id}"
    )


def _instant(field: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_since(text)
    except ValueError:
        bad_input(field, f"not an ISO-8601 time or a duration: {text!r}")


async def _journal_export(ctx: Context, **filters: Any) -> list[str]:
    try:
        journal = await open_journal(dsn_from_env(), Settings().home)
    except (OSError, SQLAlchemyError, ValueError) as exc:
        raise Unavailable(f"audit journal unavailable: {str(exc).splitlines()[0][:200]}") from None
    try:
        return await export_audit(ctx, journal=journal, **filters)
    finally:
        await journal.close()


@audit_app.command("export")
def audit_export(
    since: Optional[str] = typer.Option(None, metavar="T", help="ISO-8601 instant, or a duration ago (24h, 7d)."),
    until: Optional[str] = typer.Option(None, metavar="T", help="Before this instant (ISO-8601, or a duration ago)."),
    service: Optional[str] = typer.Option(None, metavar="SERVICE", help="Only this service."),
    env: Optional[str] = typer.Option(None, "--env", metavar="ENV", help="Only this environment."),
    actor: Optional[str] = typer.Option(None, "--actor", metavar="NAME", help="Only what this actor did."),
    action: Optional[str] = typer.Option(
        None, "--action", metavar="ACTION", help="Only this action (deployment.approved, refused, access.changed…)."
    ),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write here instead of stdout."),
) -> None:
    """JSON lines {time, workflow_id, kind, actor, identity, action, detail, journal, prev_sha256} from the
    audit journal (TOCSIN_AUDIT_DSN), and from Temporal's histories for what is older than the journal."""
    when, end = _instant("--since", since), _instant("--until", until)
    filters: dict[str, Any] = {"since": when, "until": end, "service": service, "env": env}
    filters.update(actor=actor, action=action)
    lines = run_op(
        lambda ctx: _journal_export(ctx, **filters),
        remote=lambda api: api.audit(when, service, env, until=end, actor=actor, action=action),
    )
    text = "".join(line + "\n" for line in lines)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    tip = hashlib.sha256(lines[-1].encode("utf-8")).hexdigest() if lines else "none"
    _echo_err(f"tocsin: {len(lines)} records; chain tip sha256 {tip}")


async def _verify_journal() -> VerifyResult:
    try:
        journal = await open_journal(dsn_from_env(), Settings().home)
    except (OSError, SQLAlchemyError, ValueError) as exc:
        raise Unavailable(f"audit journal unavailable: {str(exc).splitlines()[0][:300]}") from None
    try:
        return await journal.verify()
    finally:
        await journal.close()


async def _verify_remote(api: Api) -> VerifyResult:
    verdict = await api.audit_verify()
    return VerifyResult(bool(verdict["ok"]), int(verdict["count"]), verdict.get("seq"), verdict.get("reason"))


@audit_app.command("verify")
def audit_verify(
    file: Optional[Path] = typer.Argument(
        None, metavar="[FILE]", help="An export (JSON lines); without it, the live journal (TOCSIN_AUDIT_DSN)."
    ),
) -> None:
    """Check an export's chain and journal seals (exit 2 naming the first broken line), or the live
    journal's chain (exit 1 naming the first broken record; through the gateway in remote mode)."""
    if file is None:
        result = run_async(_verify_journal, remote=_verify_remote)
        if not result.ok:
            fail(f"journal broken at seq {result.seq}: {result.reason} ({result.count} records intact before it)")
        typer.echo(f"journal: {result.count} records, chain intact")
        return
    if not file.exists():
        bad_input("FILE", f"no such file: {file}")
    lines = file.read_text(encoding="utf-8").splitlines()
    broken = verify_lines(lines)
    if broken is not None:
        at = f" (journal seq {broken.seq})" if broken.seq is not None else ""
        fail(f"{file}: chain broken at line {broken.line}{at}: {broken.reason}", EXIT_BAD_INPUT)
    tip = hashlib.sha256(lines[-1].encode("utf-8")).hexdigest() if lines else "none"
    typer.echo(f"{file}: {len([ln for ln in lines if ln.strip()])} records, chain intact; tip sha256 {tip}")


async def _follow(
    state_of: Callable[[], Awaitable[DeploymentState]], result_of: Callable[[float], Awaitable[DeployResult | None]]
) -> int:
    """Print the deployment's timeline on stderr as it grows; return the exit code of its outcome.

    ``result_of(seconds)`` waits that long for the result (None: still running); ``state_of`` queries
    the state. Directly they are the workflow handle's; in remote mode the API's.
    """
    shown, last_stage = 0, ""
    while True:
        try:
            result = await result_of(0.5)
        except (WorkflowFailureError, Conflict) as exc:
            _echo_err(f"tocsin: deployment failed: {getattr(exc, 'cause', None) or exc}")
            return 1
        try:
            state: DeploymentState | None = await asyncio.wait_for(state_of(), timeout=5)
        except (OperationError, Exception):
            state = None
        if state is not None:
            # the timeline is capped: show what is new since the last poll
            for entry in state.timeline[shown:] if len(state.timeline) >= shown else state.timeline:
                _echo_err(
                    f"{entry.at:%H:%M:%S} {entry.actor}: {entry.action}"
                    + (f" — {entry.detail}" if entry.detail else "")
                )
            shown = len(state.timeline)
            if state.stage != last_stage:
                last_stage = state.stage
                _echo_err(f"stage: {_stage_line(state)}")
        if result is not None:
            break
    # recorded only: the reason says so first, and never that anything is live
    _echo_err(result.reason if result.recorded_only else f"{result.outcome}: {result.reason}")
    return OUTCOME_EXIT_CODES.get(result.outcome, 1)


def _stage_line(state: DeploymentState) -> str:
    """A stage as ``--wait`` prints it."""
    if state.stage == "canary":
        return f"canary ({state.weight}%" + (f", {NO_DEPLOY_HOOK})" if state.recorded_only else ")")
    if state.stage == "deployed" and state.recorded_only:
        return NO_DEPLOY_HOOK
    return state.stage
