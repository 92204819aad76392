"""Incidents, silences and status: ``alert``, ``ack``, ``resolve``, ``escalate``, ``snooze``, ``silence``, ``status``."""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Optional

import typer

from operations import Actor, BadInput, Context
from operations.alerts import raise_alert
from operations.incidents import acknowledge
from operations.incidents import escalate as escalate_incident
from operations.incidents import resolve as resolve_incident
from operations.incidents import snooze as snooze_incident
from operations.silences import add_silence, check_silence, expire_silence, list_silences
from operations.status import collect_status
from starters.cli.common import (
    EXIT_ERROR,
    actor_from,
    app,
    bad_input,
    json_default,
    load_config_or_exit,
    non_empty,
    run_async,
    run_op,
)
from workers.settings import Settings
from workers.temporal import connect
from workflows.incident import ActionResult
from workflows.policy.durations import DurationError, parse_duration

__all__ = ["silence_app"]

silence_app = typer.Typer(help="Maintenance windows (silences).", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(silence_app, name="silence")

_INCIDENT_REFUSED = ("refused", EXIT_ERROR)


@app.command()
def alert(
    name: str = typer.Option(..., metavar="NAME", help="Alert name (the alertname label)."),
    severity: str = typer.Option(..., metavar="SEVERITY", help="info|warning|error|critical"),
    service: Optional[str] = typer.Option(None, metavar="SERVICE", help="Service label."),
    env: Optional[str] = typer.Option(None, metavar="ENV", help="Environment label."),
    label: list[str] = typer.Option(None, "--label", metavar="K=V", help="Extra label k=v (repeatable)."),
    summary: Optional[str] = typer.Option(None, metavar="TEXT", help="Summary annotation."),
    by: Optional[str] = typer.Option(None, "--by", metavar="USER", help="Who raises it (default: the OS user)."),
) -> None:
    """Raise an alert by hand (fires an incident); prints the incident id."""
    actor = actor_from(_os_user() if by is None else by)
    labels: dict[str, str] = {}
    if service:
        labels["service"] = service
    if env:
        labels["env"] = env
    for item in label or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            bad_input("--label", f"expected k=v, got {item!r}")
        labels[key.strip()] = value
    settings = Settings()

    async def go() -> list[str]:
        # The alert's signal-with-start carries the client's identity: the audit shows who raised it.
        cfg = load_config_or_exit(None)
        client = await connect(settings, identity=actor.name)
        return await raise_alert(Context(client, cfg, settings.task_queue), actor, name, severity, labels, summary)

    for wid in run_async(go, remote=lambda api: api.alert(by, name, severity, labels, summary)):
        typer.echo(wid)


def _os_user() -> str:
    """The OS user running the CLI (``--by`` of ``tocsin alert`` when not given)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return "cli"


def _show(wid: str, result: ActionResult) -> None:
    typer.echo(f"{wid}: {result.status}" + (f" ({result.detail})" if result.detail else ""))


def _incident_action(
    name: str, op: Callable[[Context, Actor, str, str], Awaitable[ActionResult]], incident: str, by: str, note: str
) -> None:
    """One incident action (``ack``, ``resolve``, ``escalate``) in direct or remote mode, and its answer."""
    actor = actor_from(by)
    incident = non_empty("ID", incident)
    _show(
        incident,
        run_op(
            lambda ctx: op(ctx, actor, incident, note),
            refused=_INCIDENT_REFUSED,
            remote=lambda api: api.incident(name, incident, by, note),
        ),
    )


@app.command()
def ack(
    incident: str = typer.Argument(..., metavar="ID", help="Incident id (incident/<hash>)."),
    by: str = typer.Option(..., "--by", metavar="USER", help="Who acknowledges."),
    note: str = typer.Option("", metavar="TEXT", help="Why / what you are doing."),
) -> None:
    """Acknowledge an incident: its escalation stops."""
    _incident_action("ack", acknowledge, incident, by, note)


@app.command()
def resolve(
    incident: str = typer.Argument(..., metavar="ID", help="Incident id."),
    by: str = typer.Option(..., "--by", metavar="USER", help="Who resolves."),
    note: str = typer.Option("", metavar="TEXT", help="Resolution note."),
) -> None:
    """Resolve an incident; everyone notified is told."""
    _incident_action("resolve", resolve_incident, incident, by, note)


@app.command()
def escalate(
    incident: str = typer.Argument(..., metavar="ID", help="Incident id."),
    by: str = typer.Option(..., "--by", metavar="USER", help="Who escalates."),
    note: str = typer.Option("", metavar="TEXT", help="Why."),
) -> None:
    """Notify the incident's next escalation level now."""
    _incident_action("escalate", escalate_incident, incident, by, note)


@app.command()
def snooze(
    incident: str = typer.Argument(..., metavar="ID", help="Incident id."),
    for_: str = typer.Option(..., "--for", metavar="D", help="How long, e.g. 30m."),
    by: str = typer.Option(..., "--by", metavar="USER", help="Who snoozes."),
    note: str = typer.Option("", metavar="TEXT", help="Why."),
) -> None:
    """Hold the incident's escalation for a while; the ladder then resumes where it was."""
    actor = actor_from(by)
    incident = non_empty("ID", incident)
    try:
        duration = parse_duration(for_)
    except DurationError as exc:
        bad_input("--for", str(exc))
    if duration.total_seconds() <= 0:
        bad_input("--for", "must be positive")
    _show(
        incident,
        run_op(
            lambda ctx: snooze_incident(ctx, actor, incident, duration, note),
            refused=_INCIDENT_REFUSED,
            remote=lambda api: api.incident("snooze", incident, by, note, duration=for_),
        ),
    )


@silence_app.command("add")
def silence_add(
    matcher: list[str] = typer.Option(
        ..., "--matcher", metavar="M", help='Matcher, e.g. service="payments" (repeatable).'
    ),
    duration: str = typer.Option(..., metavar="D", help="How long, e.g. 2h."),
    by: str = typer.Option(..., "--by", metavar="USER", help="Who creates it."),
    comment: str = typer.Option(..., metavar="TEXT", help="Why."),
) -> None:
    """Add a silence (maintenance window); prints its id."""
    actor = actor_from(by)
    try:
        check_silence(list(matcher), duration, comment)
    except BadInput as exc:
        bad_input(exc.field, exc.message)
    record = run_op(
        lambda ctx: add_silence(ctx, actor, list(matcher), duration, comment),
        remote=lambda api: api.add_silence(by, list(matcher), duration, comment),
    )
    typer.echo(record.id)


@silence_app.command("list")
def silence_list(json_out: bool = typer.Option(False, "--json", help="JSON lines.")) -> None:
    """Active silences (and recently expired ones)."""
    state = run_op(list_silences, remote=lambda api: api.silences())
    now = datetime.now(UTC)
    for record in state.silences:
        active = record.active(now)
        if json_out:
            typer.echo(json.dumps({**record.model_dump(mode="json"), "active": active}))
        else:
            typer.echo(
                f"{record.id}  {'active ' if active else 'expired'}  until {record.ends_at.isoformat()}  "
                f"{' '.join(record.matchers)}  by {record.created_by}: {record.comment}"
            )


@silence_app.command("expire")
def silence_expire(
    silence_id: str = typer.Argument(..., metavar="ID"),
    by: Optional[str] = typer.Option(None, "--by", metavar="USER", help="Who expires it (default: cli)."),
) -> None:
    """End a silence now."""
    actor = actor_from("cli" if by is None else by)
    record = run_op(
        lambda ctx: expire_silence(ctx, actor, silence_id),
        refused=("ID", 2),
        remote=lambda api: api.expire_silence(silence_id, by),
    )
    typer.echo(f"{record.id}: expired")


def _retention_line(retention: dict[str, Any] | None) -> str | None:
    """``Retention: 90d (namespace default; audit.history_retention 90d)``, or None (an older gateway)."""
    if not retention:
        return None
    have = retention.get("workflow_execution_retention") or "unknown"
    line = f"Retention: {have} (namespace {retention.get('namespace')}; audit.history_retention {retention.get('history_retention')})"
    if retention.get("error"):
        line += f"; cannot read it: {retention['error']}"
    return line


def _print_status(report: dict[str, Any]) -> None:
    retention = _retention_line(report.get("retention"))
    if retention:
        typer.echo(retention)
    typer.echo(f"Open incidents ({len(report['incidents'])}):")
    for inc in report["incidents"]:
        typer.echo(
            f"  {inc['id']}  {inc['status']:<12} {inc['severity']:<8} {inc['title']}"
            + (f"  L{inc['level']}" if inc.get("level") else "")
        )
    typer.echo(f"Running deployments ({len(report['deployments'])}):")
    for dep in report["deployments"]:
        typer.echo(f"  {dep['id']}  {dep['status']}")
    typer.echo(f"Pipelines ({len(report['pipelines'])}):")
    for pipe in report["pipelines"]:
        typer.echo(f"  {pipe['id']}  {pipe['status']}")
    if report["mtta_seconds"]["count"]:
        typer.echo(
            f"MTTA avg {report['mtta_seconds']['avg']:.0f}s, MTTR avg {report['mttr_seconds']['avg']:.0f}s "
            f"over {report['mttr_seconds']['count']} resolved incident(s)"
        )


@app.command()
def status(
    service: Optional[str] = typer.Option(None, metavar="SERVICE", help="Only this service."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Open incidents, running deployments, pipeline health."""
    report = run_op(lambda ctx: collect_status(ctx, service), remote=lambda api: api.status(service))
    if json_out:
        typer.echo(json.dumps(report, default=json_default, indent=2))
        return
    _print_status(report)
