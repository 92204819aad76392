"""CLI commands for incidents, silences and status: ``alert``, ``ack``, ``resolve``, ``silence``, ``status``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional

import typer

from workers.settings import Settings

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the incident commands to the ``tocsin`` app."""
    from starters.cli import EXIT_BAD_INPUT, _load_config_or_exit, bad_input, fail, run_async

    silence_app = typer.Typer(help="Maintenance windows (silences).", no_args_is_help=True, rich_markup_mode=None)
    app.add_typer(silence_app, name="silence")

    @app.command()
    def alert(
        name: str = typer.Option(..., help="Alert name (the alertname label)."),
        severity: str = typer.Option(..., help="info|warning|error|critical"),
        service: Optional[str] = typer.Option(None, help="Service label."),
        env: Optional[str] = typer.Option(None, help="Environment label."),
        label: list[str] = typer.Option(None, "--label", help="Extra label k=v (repeatable)."),
        summary: Optional[str] = typer.Option(None, help="Summary annotation."),
    ) -> None:
        """Raise an alert by hand (fires an incident); prints the incident id."""
        from starters.incidents import dispatch_alerts, fingerprint
        from workers.temporal import connect
        from workflows.incident.models import Alert

        if severity not in ("info", "warning", "error", "critical"):
            bad_input("--severity", f"must be one of info|warning|error|critical, got {severity!r}")
        if not name.strip():
            bad_input("--name", "must not be empty")
        labels = {"alertname": name, "severity": severity}
        if service:
            labels["service"] = service
        if env:
            labels["env"] = env
        for item in label or []:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                bad_input("--label", f"expected k=v, got {item!r}")
            labels[key.strip()] = value
        config = _load_config_or_exit(None)
        alert_obj = Alert(fingerprint=fingerprint(labels), labels=labels,
                          annotations={"summary": summary} if summary else {},
                          starts_at=datetime.now(timezone.utc))
        settings = Settings()

        async def go() -> list[str]:
            client = await connect(settings)
            return await dispatch_alerts(client, config, [alert_obj], settings.task_queue, source="cli")

        for wid in run_async(go):
            typer.echo(wid)

    def _act(update: str, wid: str, action: Any) -> None:
        from starters.incidents import ActionRefused, UnknownIncident, incident_action
        from workers.temporal import connect

        settings = Settings()

        async def go() -> Any:
            client = await connect(settings)
            return await incident_action(client, wid, update, action)

        try:
            result = run_async(go)
        except UnknownIncident as exc:
            fail(f"ID: {exc}", EXIT_BAD_INPUT)
        except ActionRefused as exc:
            fail(f"refused: {exc}")
        typer.echo(f"{wid}: {result.status}" + (f" ({result.detail})" if result.detail else ""))

    @app.command()
    def ack(incident: str = typer.Argument(..., metavar="ID", help="Incident id (incident/<hash>)."),
            by: str = typer.Option(..., "--by", help="Who acknowledges."),
            note: str = typer.Option("", help="Why / what you are doing.")) -> None:
        """Acknowledge an incident: its escalation stops."""
        from workflows.incident.models import HumanAction

        if not by.strip():
            bad_input("--by", "must not be empty")
        _act("acknowledge", incident, HumanAction(by=by, note=note, via="cli"))

    @app.command()
    def resolve(incident: str = typer.Argument(..., metavar="ID", help="Incident id."),
                by: str = typer.Option(..., "--by", help="Who resolves."),
                note: str = typer.Option("", help="Resolution note.")) -> None:
        """Resolve an incident; everyone notified is told."""
        from workflows.incident.models import HumanAction

        if not by.strip():
            bad_input("--by", "must not be empty")
        _act("resolve", incident, HumanAction(by=by, note=note, via="cli"))

    @silence_app.command("add")
    def silence_add(
        matcher: list[str] = typer.Option(..., "--matcher", help='Matcher, e.g. service="payments" (repeatable).'),
        duration: str = typer.Option(..., help="How long, e.g. 2h."),
        by: str = typer.Option(..., "--by", help="Who creates it."),
        comment: str = typer.Option(..., help="Why."),
    ) -> None:
        """Add a silence (maintenance window); prints its id."""
        from starters.silences import add_silence
        from workflows.policy.durations import DurationError, parse_duration
        from workflows.policy.matchers import MatcherError
        from workflows.policy.silences import silence_matchers

        try:
            silence_matchers(matcher)
        except MatcherError as exc:
            bad_input("--matcher", str(exc))
        try:
            if parse_duration(duration).total_seconds() <= 0:
                bad_input("--duration", "must be positive")
        except DurationError as exc:
            bad_input("--duration", str(exc))
        if not comment.strip():
            bad_input("--comment", "must not be empty")
        record = run_async(lambda: add_silence(Settings(), list(matcher), duration, by, comment))
        typer.echo(record.id)

    @silence_app.command("list")
    def silence_list(json_out: bool = typer.Option(False, "--json", help="JSON lines.")) -> None:
        """Active silences (and recently expired ones)."""
        from starters.silences import list_silences

        state = run_async(lambda: list_silences(Settings()))
        now = datetime.now(timezone.utc)
        for record in state.silences:
            active = record.active(now)
            if json_out:
                typer.echo(json.dumps({**record.model_dump(mode="json"), "active": active}))
            else:
                typer.echo(f"{record.id}  {'active ' if active else 'expired'}  until {record.ends_at.isoformat()}  "
                           f"{' '.join(record.matchers)}  by {record.created_by}: {record.comment}")

    @silence_app.command("expire")
    def silence_expire(silence_id: str = typer.Argument(..., metavar="ID"),
                       by: str = typer.Option("cli", "--by", help="Who expires it.")) -> None:
        """End a silence now."""
        from starters.silences import SilenceRefused, expire_silence

        try:
            record = run_async(lambda: expire_silence(Settings(), silence_id, by))
        except SilenceRefused as exc:
            fail(f"ID: {exc}", EXIT_BAD_INPUT)
        typer.echo(f"{record.id}: expired")

    @app.command()
    def status(service: Optional[str] = typer.Option(None, help="Only this service."),
               json_out: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
        """Open incidents, running deployments, pipeline health."""
        from starters.status import collect_status

        report = run_async(lambda: collect_status(Settings(), service))
        if json_out:
            typer.echo(json.dumps(report, default=str, indent=2))
            return
        typer.echo(f"Open incidents ({len(report['incidents'])}):")
        for inc in report["incidents"]:
            typer.echo(f"  {inc['id']}  {inc['status']:<12} {inc['severity']:<8} {inc['title']}"
                       + (f"  L{inc['level']}" if inc.get("level") else ""))
        typer.echo(f"Running deployments ({len(report['deployments'])}):")
        for dep in report["deployments"]:
            typer.echo(f"  {dep['id']}  {dep['status']}")
        typer.echo(f"Pipelines ({len(report['pipelines'])}):")
        for pipe in report["pipelines"]:
            typer.echo(f"  {pipe['id']}  {pipe['status']}")
        if report["mtta_seconds"]["count"]:
            typer.echo(f"MTTA avg {report['mtta_seconds']['avg']:.0f}s, MTTR avg {report['mttr_seconds']['avg']:.0f}s "
                       f"over {report['mttr_seconds']['count']} resolved incident(s)")
