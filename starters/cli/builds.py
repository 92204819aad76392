"""CI events and notifications: ``build``, ``notify``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from operations import Actor, BadInput
from operations.builds import check_receiver, send_build_event, send_notification
from starters.cli.common import EXIT_BAD_INPUT, app, bad_input, check_url, fail, load_config_or_exit, run_op
from starters.cli.remote import enabled as remote_enabled
from starters.reports import ReportError, parse_coverage, parse_junit, parse_sarif
from workflows.models import SEVERITIES, Link, Message
from workflows.pipeline import BUILD_STATUSES, BuildEvent, SecuritySummary

__all__: list[str] = []

_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
_CI = Actor(name="ci", via="cli")


def _check_build(
    repo: str,
    branch: str,
    commit: str,
    status: str,
    workflow: str,
    url: Optional[str],
    pr: Optional[int],
    duration: Optional[float],
) -> None:
    if status not in BUILD_STATUSES:
        bad_input("--status", f"must be one of {'|'.join(BUILD_STATUSES)}, got {status!r}")
    for field, value in (("--repo", repo), ("--branch", branch), ("--workflow", workflow)):
        if not value.strip():
            bad_input(field, "must not be empty")
    if not _SHA.match(commit):
        bad_input("--commit", f"not a commit SHA (7-64 hex digits): {commit!r}")
    check_url("--url", url)
    if pr is not None and pr <= 0:
        bad_input("--pr", f"must be a positive number, got {pr}")
    if duration is not None and duration < 0:
        bad_input("--duration", f"must not be negative, got {duration}")


@app.command()
def build(
    repo: str = typer.Option(..., metavar="REPO", help="Repository, e.g. acme/payments."),
    branch: str = typer.Option(..., metavar="BRANCH", help="Branch name."),
    commit: str = typer.Option(..., metavar="SHA", help="Commit SHA."),
    status: str = typer.Option(..., metavar="STATUS", help="started|success|failure|cancelled"),
    workflow: str = typer.Option("ci", "--workflow", metavar="NAME", help="CI workflow name (one track per name)."),
    url: Optional[str] = typer.Option(None, metavar="URL", help="Link to the CI run."),
    pr: Optional[int] = typer.Option(None, metavar="N", help="Pull request number."),
    author: Optional[str] = typer.Option(None, metavar="NAME", help="Commit author."),
    duration: Optional[float] = typer.Option(None, metavar="SECONDS", help="Build duration in seconds."),
    junit: list[Path] = typer.Option(None, "--junit", metavar="FILE", help="JUnit XML report (repeatable)."),
    coverage: Optional[Path] = typer.Option(
        None, "--coverage", metavar="FILE", help="Cobertura XML, LCOV or coverage.py JSON."
    ),
    sarif: list[Path] = typer.Option(None, "--sarif", metavar="FILE", help="SARIF report (repeatable)."),
) -> None:
    """Send one CI event to the pipeline's workflow (pipeline/<repo>/<branch>)."""
    _check_build(repo, branch, commit, status, workflow, url, pr, duration)
    tests = cov = None
    scans: list[SecuritySummary] = []
    try:
        tests = parse_junit(list(junit)) if junit else None
        cov = parse_coverage(coverage) if coverage else None
        scans = parse_sarif(list(sarif)) if sarif else []
    except ReportError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    event = BuildEvent(
        repo=repo,
        branch=branch,
        commit=commit,
        status=status,
        workflow=workflow,
        url=url,
        pr=pr,
        author=author,
        duration_seconds=duration,
        tests=tests,
        coverage=cov,
        security=scans,
    )
    typer.echo(run_op(lambda ctx: send_build_event(ctx, _CI, event), remote=lambda api: api.build(event)))


@app.command()
def notify(
    receiver: str = typer.Option(..., metavar="RECEIVER", help="Receiver name from the config."),
    title: str = typer.Option(..., metavar="TEXT", help="Message title."),
    text: str = typer.Option("", metavar="TEXT", help="Message body."),
    severity: str = typer.Option("info", metavar="SEVERITY", help="info|success|warning|error|critical"),
    link: Optional[str] = typer.Option(None, metavar="URL", help="A link to show with the message."),
) -> None:
    """One durable notification to one receiver; prints its workflow id."""
    if severity not in SEVERITIES:
        bad_input("--severity", f"must be one of {'|'.join(SEVERITIES)}, got {severity!r}")
    if not title.strip():
        bad_input("--title", "must not be empty")
    check_url("--link", link)
    message = Message(
        title=title,
        text=text,
        severity=severity,
        links=[Link(text="Link", url=link)] if link else [],
    )
    config = None if remote_enabled() else load_config_or_exit(None)  # remote: the gateway's config decides
    try:
        if config is not None:
            check_receiver(config, receiver)
    except BadInput as exc:
        bad_input(exc.field, exc.message)
    typer.echo(
        run_op(
            lambda ctx: send_notification(ctx, _CI, receiver, message),
            config,
            remote=lambda api: api.notify(receiver, message),
        )
    )
