"""Pipeline health: ``report`` (the health report on demand) and ``drill`` (an alert drill)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

import typer

from operations import Actor, BadInput
from operations.drill import DrillResult, drill_entry, run_drill
from operations.journal import dsn_from_env, open_journal
from operations.reports import parse_period, pipeline_report
from starters.cli.common import EXIT_BAD_INPUT, EXIT_ERROR, app, bad_input, fail, json_default, non_empty, run_op
from starters.cli.remote import enabled as remote_enabled
from workers.settings import Settings
from workflows.audit import JournalEntry
from workflows.policy.durations import DurationError, parse_duration
from workflows.policy.health_report import (
    HealthReport,
    build_time_text,
    percent_text,
    period_words,
    report_lines,
    seconds_text,
)

__all__: list[str] = []

_DRILL = Actor(name="tocsin-drill", via="cli")


def _print_report(report: HealthReport) -> None:
    rows = [
        ("Branches", ", ".join(report.branches) or "—"),
        ("Builds", f"{report.builds} ({report.successes} passed, {report.failures} failed)"),
        ("Success rate", percent_text(report.success_rate)),
        ("Median build time", build_time_text(report)),
        ("Failures (watched)", str(report.watched_failures)),
        ("MTTR (watched)", seconds_text(report.mttr_seconds)),
        ("Flaky tests", str(len(report.flaky))),
    ]
    typer.echo(f"Pipeline health: {report.repo} ({period_words(report.period)})")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"  {name.ljust(width)}  {value}")
    for line in report_lines(report):
        typer.echo(line if line.startswith("•") else f"\n{line}")


@app.command()
def report(
    repo: str = typer.Option(..., metavar="REPO", help="Repository, e.g. acme/payments."),
    period: str = typer.Option("7d", metavar="DURATION", help="How far back: 1d, 7d, 30d."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """A repository's pipeline health: success rate, build time, failures and MTTR, failing and flaky tests."""
    name = non_empty("--repo", repo)
    try:
        parse_period(period)
    except BadInput as exc:
        bad_input(exc.field, exc.message)
    found = run_op(lambda ctx: pipeline_report(ctx, name, period), remote=lambda api: api.report(name, period))
    if json_out:
        typer.echo(json.dumps(found.model_dump(mode="json"), default=json_default, indent=2))
        return
    _print_report(found)


async def _seal(entry: JournalEntry) -> None:
    """Append the drill's record to the audit journal (TOCSIN_AUDIT_DSN, else TOCSIN_HOME's); a warning when it cannot."""
    journal = None
    try:
        journal = await open_journal(dsn_from_env(), Settings().home)
        await journal.append([entry])
    except Exception as exc:
        logging.getLogger("tocsin.audit").warning(
            "drill not journaled: %s", (str(exc).splitlines() or [repr(exc)])[0][:200]
        )
    finally:
        if journal is not None:
            await journal.close()


def _timing(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}s"


def _print_drill(result: DrillResult) -> None:
    typer.echo(
        f"Drill on {result.workflow_id} (commits {result.failure_commit[:7]}, {(result.recovery_commit or '')[:7]})"
    )
    issue = f" {result.issue_url}" if result.issue_url else ""
    rows = [
        ("sent → notified", _timing(result.notified_seconds)),
        ("sent → issue opened", _timing(result.issue_opened_seconds) + issue),
        ("recovery → issue closed", _timing(result.issue_closed_seconds)),
    ]
    for name, value in rows:
        typer.echo(f"  {name.ljust(23)}  {value}")


@app.command()
def drill(
    repo: str = typer.Option(..., metavar="REPO", help="Repository, e.g. acme/payments."),
    branch: str = typer.Option(..., metavar="BRANCH", help="A watched branch (pipelines.watch)."),
    timeout: str = typer.Option("120s", metavar="DURATION", help="How long to wait for the whole drill."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Alert drill: a synthetic failure and recovery through the real path; times the tracking issue."""
    try:
        limit = parse_duration(timeout)
    except DurationError as exc:
        bad_input("--timeout", str(exc))
    if limit <= timedelta(0):
        bad_input("--timeout", "must be more than zero")
    name, where = non_empty("--repo", repo), non_empty("--branch", branch)
    if remote_enabled():
        fail("drill watches the pipeline's state through Temporal: run it without TOCSIN_URL", EXIT_BAD_INPUT)
    result = run_op(lambda ctx: run_drill(ctx, _DRILL, name, where, limit))
    asyncio.run(_seal(drill_entry(_DRILL, result)))
    if json_out:
        body = {**result.model_dump(mode="json"), "ok": result.ok}
        typer.echo(json.dumps(body, default=json_default, indent=2))
    else:
        _print_drill(result)
    if not result.ok:
        fail("drill failed: " + "; ".join(result.missing), EXIT_ERROR)
