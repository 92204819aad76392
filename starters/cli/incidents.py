"""Incidents, silences and status: ``alert``, ``ack``, ``resolve``, ``silence``, ``status``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Optional

import typer

from operations import Actor, BadInput
from operations.alerts import raise_alert
from operations.incidents import acknowledge
from operations.incidents import resolve as resolve_incident
from operations.silences import add_silence, check_silence, expire_silence, list_silences
from operations.status import collect_status
from starters.cli.common import EXIT_ERROR, actor_from, app, bad_input, json_default, run_op
from workflows.incident import ActionResult

__all__ = ["silence_app"]

silence_app = typer.Typer(help="Maintenance windows (silences).", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(silence_app, name="silence")

_INCIDENT_REFUSED = ("refused", EXIT_ERROR)


@app.command()
def alert(
    name: str = typer.Option(..., help="Alert name (the alertname label)."),
    severity: str = typer.Option(..., help="info|warning|error|critical"),
    service: Optional[str] = typer.Option(None, help="Service label."),
    env: Optional[str] = typer.Option(None, help="Environment label."),
    label: list[str] = typer.Option(None, "--label", metavar="K=V", help="Extra label k=v (repeatable)."),
    summary: Optional[str] = typer.Option(None, metavar="TEXT", help="Summary annotation."),
) -> None:
    """Raise an alert by hand (fires an incident); prints the incident id."""
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
    actor = Actor(name="cli", via="cli")
    for wid in run_op(lambda ctx: raise_alert(ctx, actor, name, severity, labels, summary)):
        typer.echo(wid)


def _show(wid: str, result: ActionResult) -> None:
    typer.echo(f"{wid}: {result.status}" + (f" ({result.detail})" if result.detail else ""))


@app.command()
def ack(
    incident: str = typer.Argument(..., metavar="ID", help="Incident id (incident/<hash>)."),
    by: str = typer.Option(..., "--by", metavar="USER", help="Who acknowledges."),
    note: str = typer.Option("", metavar="TEXT", help="Why / what you are doing."),
) -> None:
    """Acknowledge an incident: its escalation stops."""
    actor = actor_from(by)
    _show(incident, run_op(lambda ctx: acknowledge(ctx, actor, incident, note), refused=_INCIDENT_REFUSED))


@app.command()
def resolve(
    incident: str = typer.Argument(..., metavar="ID", help="Incident id."),
    by: str = typer.Option(..., "--by", metavar="USER", help="Who resolves."),
    note: str = typer.Option("", metavar="TEXT", help="Resolution note."),
) -> None:
    """Resolve an incident; everyone notified is told."""
    actor = actor_from(by)
    _show(incident, run_op(lambda ctx: resolve_incident(ctx, actor, incident, note), refused=_INCIDENT_REFUSED))


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
    record = run_op(lambda ctx: add_silence(ctx, actor, list(matcher), duration, comment))
    typer.echo(record.id)


@silence_app.command("list")
def silence_list(json_out: bool = typer.Option(False, "--json", help="JSON lines.")) -> None:
    """Active silences (and recently expired ones)."""
    state = run_op(list_silences)
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
    by: str = typer.Option("cli", "--by", metavar="USER", help="Who expires it."),
) -> None:
    """End a silence now."""
    actor = actor_from(by)
    record = run_op(lambda ctx: expire_silence(ctx, actor, silence_id), refused=("ID", 2))
    typer.echo(f"{record.id}: expired")


def _print_status(report: dict[str, Any]) -> None:
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
    service: Optional[str] = typer.Option(None, help="Only this service."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Open incidents, running deployments, pipeline health."""
    report = run_op(lambda ctx: collect_status(ctx, service))
    if json_out:
        typer.echo(json.dumps(report, default=json_default, indent=2))
        return
    _print_status(report)
