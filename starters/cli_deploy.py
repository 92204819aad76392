"""CLI commands for deployments: ``deploy``, ``approve``, ``reject``, ``rollback``, ``audit export``.

``starters.cli`` calls :func:`register` once. Exit codes follow the contract:
0 success (deployed, decision accepted); 1 operational error; 2 bad input or
a refused decision (the reason is printed); 3 rolled back; 4 rejected or
approval expired.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["register", "parse_since"]

EXIT_ROLLED_BACK, EXIT_REJECTED = 3, 4
_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+@-]*$")


def parse_since(text: str) -> datetime:
    """``--since``: an ISO-8601 instant (UTC when no zone) or a duration ago (``24h``, ``7d``).

    Raises:
        ValueError: neither.
    """
    from workflows.policy.durations import DurationError, parse_duration

    try:
        return datetime.now(timezone.utc) - parse_duration(text)
    except DurationError:
        pass
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _ui() -> Any:
    """The shared CLI helpers (imported late: ``starters.cli`` imports this module)."""
    from starters import cli

    return cli


def _name(field: str, value: str) -> str:
    value = value.strip()
    if not value:
        _ui().bad_input(field, "must not be empty")
    if not _NAME.match(value):
        _ui().bad_input(field, f"letters, digits and . _ : + @ - only, got {value!r}")
    return value


def _text(field: str, value: Optional[str], required: bool = True) -> Optional[str]:
    if value is None or not value.strip():
        if required:
            _ui().bad_input(field, "must not be empty")
        return None
    return value.strip()


def _echo_err(text: str) -> None:
    typer.echo(text, err=True)
    sys.stderr.flush()


def register(app: typer.Typer) -> None:
    """Add the deployment commands and the ``audit`` group to ``app``."""
    audit_app = typer.Typer(help="Export and verify the audit trail.", no_args_is_help=True,
                            rich_markup_mode=None)
    app.add_typer(audit_app, name="audit")

    @app.command()
    def deploy(
        service: str = typer.Option(..., help="Service to deploy."),
        env: str = typer.Option(..., "--env", help="Environment (a key of environments: in the config)."),
        version: str = typer.Option(..., help="Version to deploy."),
        by: str = typer.Option(..., help="Who is deploying."),
        commit: Optional[str] = typer.Option(None, help="Commit SHA (its pipeline must be green when known)."),
        changes_url: Optional[str] = typer.Option(None, "--changes-url", help="Link to the changes."),
        change_size: Optional[int] = typer.Option(None, "--change-size", help="Lines changed (a risk factor)."),
        emergency: bool = typer.Option(False, "--emergency", help="Override freeze windows (needs --reason)."),
        reason: Optional[str] = typer.Option(None, help="Why: required with --emergency."),
        wait: bool = typer.Option(False, "--wait", help="Follow the deployment; exit 0 deployed, 3 rolled back, "
                                                        "4 rejected or expired."),
    ) -> None:
        """Start a deployment; prints its id first, at once."""
        from workflows.deployment import DeployInput

        ui = _ui()
        service, env, version, by = (_name("--service", service), _name("--env", env),
                                     _name("--version", version), _text("--by", by))  # type: ignore[assignment]
        if commit is not None and not _SHA.match(commit):
            ui.bad_input("--commit", f"not a commit SHA (7-64 hex digits): {commit!r}")
        ui._check_url("--changes-url", changes_url)
        if change_size is not None and change_size < 0:
            ui.bad_input("--change-size", f"must not be negative, got {change_size}")
        if emergency and not (reason or "").strip():
            ui.bad_input("--reason", "an --emergency deployment needs a reason")
        if reason is not None and not emergency:
            ui.bad_input("--reason", "only with --emergency")
        cfg = ui._load_config_or_exit(None)
        _check_environment(cfg, env)
        request = DeployInput(service=service, env=env, version=version, by=by, commit=commit,  # type: ignore[arg-type]
                              changes_url=changes_url, change_size=change_size, emergency=emergency,
                              reason=(reason or "").strip() or None)
        settings = ui.Settings()

        async def go() -> int:
            from starters.deployments import start_deployment
            from workers.temporal import connect

            client = await connect(settings)
            handle, started = await start_deployment(client, request, settings.task_queue)
            typer.echo(handle.id)
            sys.stdout.flush()
            if not started:
                _echo_err(f"tocsin: {handle.id} is already running; following it" if wait
                          else f"tocsin: {handle.id} is already running")
            if not wait:
                return 0
            return await _follow(handle)

        raise typer.Exit(ui.run_async(go))

    @app.command()
    def approve(
        deployment: str = typer.Argument(..., metavar="ID", help="Deployment id (deploy/<service>/<env>/<version>)."),
        by: str = typer.Option(..., help="Who approves."),
        comment: Optional[str] = typer.Option(None, help="Why (optional)."),
    ) -> None:
        """Approve a deployment; answers at once whether the approval was accepted."""
        _decide("approve", deployment, _text("--by", by), comment=_text("--comment", comment, required=False))

    @app.command()
    def reject(
        deployment: str = typer.Argument(..., metavar="ID", help="Deployment id."),
        by: str = typer.Option(..., help="Who rejects."),
        reason: str = typer.Option(..., help="Why."),
    ) -> None:
        """Reject a deployment; answers at once whether the rejection was accepted."""
        _decide("reject", deployment, _text("--by", by), reason=_text("--reason", reason))

    @app.command()
    def rollback(
        service: str = typer.Option(..., help="Service."),
        env: str = typer.Option(..., "--env", help="Environment."),
        by: str = typer.Option(..., help="Who rolls back."),
        reason: str = typer.Option(..., help="Why."),
    ) -> None:
        """Abort the running deployment of SERVICE to ENV, or roll back the last one."""
        from workflows.deployment import RollbackRequest

        ui = _ui()
        service, env = _name("--service", service), _name("--env", env)
        request = RollbackRequest(by=_text("--by", by), reason=_text("--reason", reason), source="cli")  # type: ignore[arg-type]
        settings = ui.Settings()

        async def go() -> Any:
            from starters.deployments import request_rollback
            from workers.temporal import connect

            client = await connect(settings)
            return await request_rollback(client, service, env, request, settings.task_queue)

        outcome = ui.run_async(go)
        if outcome.action == "nothing":
            ui.fail(f"nothing to roll back: {outcome.detail}")
        typer.echo(outcome.workflow_id)
        _echo_err(f"tocsin: {'rollback signalled to' if outcome.action == 'signalled' else 'rollback started as'} "
                  f"{outcome.workflow_id}")

    @audit_app.command("export")
    def audit_export(
        since: Optional[str] = typer.Option(None, help="ISO-8601 instant, or a duration ago (24h, 7d)."),
        service: Optional[str] = typer.Option(None, help="Only this service."),
        env: Optional[str] = typer.Option(None, "--env", help="Only this environment."),
        output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    ) -> None:
        """JSON lines {time, workflow_id, kind, actor, action, detail, prev_sha256} from Temporal's histories."""
        ui = _ui()
        when = None
        if since is not None:
            try:
                when = parse_since(since)
            except ValueError:
                ui.bad_input("--since", f"not an ISO-8601 time or a duration: {since!r}")
        settings = ui.Settings()

        async def go() -> list[str]:
            from starters.audit import audit_records, chain_lines
            from workers.temporal import connect

            client = await connect(settings)
            return chain_lines(await audit_records(client, when, service, env))

        lines = ui.run_async(go)
        text = "".join(line + "\n" for line in lines)
        if output is not None:
            output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
        tip = hashlib.sha256(lines[-1].encode("utf-8")).hexdigest() if lines else "none"
        _echo_err(f"tocsin: {len(lines)} records; chain tip sha256 {tip}")

    @audit_app.command("verify")
    def audit_verify(
        file: Path = typer.Argument(..., help="An export (JSON lines)."),
    ) -> None:
        """Check an export's sha256 chain; exit 2 naming the first broken line."""
        from starters.audit import verify_chain

        ui = _ui()
        if not file.exists():
            ui.bad_input("FILE", f"no such file: {file}")
        lines = file.read_text(encoding="utf-8").splitlines()
        broken = verify_chain(lines)
        if broken is not None:
            ui.fail(f"{file}: chain broken at line {broken}", ui.EXIT_BAD_INPUT)
        tip = hashlib.sha256(lines[-1].encode("utf-8")).hexdigest() if lines else "none"
        typer.echo(f"{file}: {len([ln for ln in lines if ln.strip()])} records, chain intact; tip sha256 {tip}")


def _check_environment(cfg: Any, env: str) -> None:
    from pydantic import ValidationError

    from workflows.environments import environment_of

    ui = _ui()
    known = list(cfg.environments)
    if known and env not in cfg.environments:
        ui.bad_input("--env", f"unknown environment {env!r} (known: {', '.join(known)})")
    try:
        environment_of(cfg.environments, env)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        ui.bad_input("--env", f"environments.{env}{'.' + where if where else ''}: {first['msg']}")


def _decide(kind: str, deployment: str, by: Optional[str], **fields: Optional[str]) -> None:
    from workflows.deployment import Decision

    ui = _ui()
    if not deployment.strip():
        ui.bad_input("ID", "must not be empty")
    decision = Decision(by=by or "", **fields)
    settings = ui.Settings()

    async def go() -> Any:
        from starters.deployments import DecisionRefused, decide
        from workers.temporal import connect

        client = await connect(settings)
        try:
            return await decide(client, deployment, kind, decision)
        except DecisionRefused as exc:
            return exc

    answer = ui.run_async(go)
    if isinstance(answer, Exception):
        ui.fail(f"{kind} refused: {answer}", ui.EXIT_BAD_INPUT)
    if kind == "approve":
        typer.echo(f"{deployment}: approved by {decision.by} ({answer.approvals}/{answer.required} approvals)")
    else:
        typer.echo(f"{deployment}: rejected by {decision.by}")


async def _follow(handle: Any) -> int:
    """Print the deployment's timeline on stderr as it grows; return the exit code of its outcome."""
    from temporalio.client import WorkflowFailureError
    from temporalio.service import RPCError

    from workflows.deployment import OUTCOME_EXIT_CODES, DeploymentWorkflow

    result_task = asyncio.ensure_future(handle.result())
    shown = 0
    last_stage = ""
    while True:
        await asyncio.wait({result_task}, timeout=0.5)
        try:
            state = await handle.query(DeploymentWorkflow.state, rpc_timeout=timedelta(seconds=5))
        except (RPCError, Exception):  # noqa: BLE001 - progress is best effort; the result decides
            state = None
        if state is not None:
            # the timeline is capped: show what is new since the last poll
            fresh = state.timeline[shown:] if len(state.timeline) >= shown else state.timeline
            for entry in fresh:
                _echo_err(f"{entry.at:%H:%M:%S} {entry.actor}: {entry.action}"
                          + (f" — {entry.detail}" if entry.detail else ""))
            shown = len(state.timeline)
            if state.stage != last_stage:
                last_stage = state.stage
                weight = f" ({state.weight}%)" if state.stage == "canary" else ""
                _echo_err(f"stage: {state.stage}{weight}")
        if result_task.done():
            break
    try:
        result = result_task.result()
    except WorkflowFailureError as exc:
        _echo_err(f"tocsin: deployment failed: {exc.cause or exc}")
        return 1
    _echo_err(f"{result.outcome}: {result.reason}")
    return OUTCOME_EXIT_CODES.get(result.outcome, 1)
