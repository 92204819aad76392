"""Flaky tests: ``tocsin flaky list``, ``tocsin flaky quarantine``, ``tocsin flaky release``."""

from __future__ import annotations

import json
from typing import Optional

import typer

from operations import BadInput
from operations.flaky import FlakyList, FlakyRow, Signalled, list_flaky, parse_until, quarantine_test, release_test
from starters.cli.common import actor_from, app, bad_input, json_default, non_empty, run_op
from starters.cli.incidents import _os_user

__all__ = ["flaky_app"]

flaky_app = typer.Typer(
    help="Flaky tests, from each pipeline's own history: list, quarantine, release.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(flaky_app, name="flaky")


def _when(row: FlakyRow) -> str:
    return row.last_failure.strftime("%Y-%m-%d %H:%M") if row.last_failure else "-"


def _quarantine(row: FlakyRow) -> str:
    if row.quarantined_by is None:
        return ""
    until = f" until {row.quarantined_until:%Y-%m-%d %H:%M} UTC" if row.quarantined_until else ""
    why = f": {row.quarantine_reason}" if row.quarantine_reason else ""
    return f"quarantined by {row.quarantined_by}{until}{why}"


def _show_list(found: FlakyList) -> None:
    for wid in found.unanswered:
        typer.echo(f"tocsin: {wid} did not answer (is a worker running?); its tests are not listed", err=True)
    if found.more:
        typer.echo(f"tocsin: only {len(found.pipelines)} pipelines were asked; narrow the list with --repo", err=True)
    if not found.tests:
        typer.echo("no flaky or quarantined tests" + ("" if found.pipelines else " (no running pipeline)"))
        return
    for row in found.tests:
        why = row.reason or "quarantined"
        parts = [row.test, f"{row.repo}@{row.branch}", why, f"last failure {_when(row)}", _quarantine(row)]
        typer.echo("  ".join(p for p in parts if p))


def _show_signalled(done: Signalled, what: str) -> None:
    until = f" until {done.until.isoformat()}" if done.until else ""
    typer.echo(f"{done.test}: {what}{until} in {', '.join(done.pipelines)}")


@flaky_app.command("list")
def list_command(
    repo: Optional[str] = typer.Option(None, "--repo", metavar="REPO", help="Only this repository's pipelines."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (tests, pipelines asked, unanswered)."),
) -> None:
    """Flaky and quarantined tests, most recently failed first.

    One line each: test, repo@branch, why it is flaky, last failure, quarantine (by, until, reason).
    """
    if repo is not None:
        repo = non_empty("--repo", repo)
    found = run_op(lambda ctx: list_flaky(ctx, repo), remote=lambda api: api.flaky(repo))
    if as_json:
        typer.echo(json.dumps(found.model_dump(mode="json"), indent=2, default=json_default))
    else:
        _show_list(found)


@flaky_app.command("quarantine")
def quarantine_command(
    test: str = typer.Argument(..., metavar="TEST", help="The test's id, classname::name as `flaky list` shows it."),
    repo: str = typer.Option(..., "--repo", metavar="REPO", help="Repository: every running pipeline of it."),
    by: str = typer.Option(..., "--by", metavar="USER", help="Who quarantines it (told when it is released)."),
    until: Optional[str] = typer.Option(
        None, "--until", metavar="TIME", help="ISO-8601 time or a duration such as 7d (default: until released)."
    ),
    reason: str = typer.Option("", "--reason", metavar="TEXT", help="Why."),
) -> None:
    """Mute a test's failures: a build failing only on it is info, not a failure page."""
    actor = actor_from(by)
    name = non_empty("TEST", test)
    where = non_empty("--repo", repo)
    try:
        when = parse_until(until)
    except BadInput as exc:
        bad_input(exc.field, exc.message)
    done = run_op(
        lambda ctx: quarantine_test(ctx, actor, where, name, when, reason),
        remote=lambda api: api.flaky_quarantine(by, where, name, until, reason),
    )
    _show_signalled(done, "quarantined")


@flaky_app.command("release")
def release_command(
    test: str = typer.Argument(..., metavar="TEST", help="The test's id, classname::name."),
    repo: str = typer.Option(..., "--repo", metavar="REPO", help="Repository."),
    by: Optional[str] = typer.Option(None, "--by", metavar="USER", help="Who releases it (default: the OS user)."),
) -> None:
    """Lift a test's quarantine: its failures fail builds again."""
    actor = actor_from(by if by is not None else _os_user())
    name = non_empty("TEST", test)
    where = non_empty("--repo", repo)
    done = run_op(
        lambda ctx: release_test(ctx, actor, where, name),
        remote=lambda api: api.flaky_release(by, where, name),
    )
    _show_signalled(done, "released")
