"""CI events and notifications: ``build``, ``notify``."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

import typer

from operations import Actor, BadInput
from operations.builds import check_receiver, send_build_event, send_notification
from starters.cli.common import EXIT_BAD_INPUT, app, bad_input, check_url, fail, load_config_or_exit, run_op
from starters.cli.remote import enabled as remote_enabled
from starters.reports import (
    MAX_FAILURES,
    ReportError,
    parse_coverage,
    parse_flake_telemetry,
    parse_junit,
    parse_sarif,
    read_log_tail,
    with_outcomes,
)
from workflows.models import SEVERITIES, Link, Message
from workflows.pipeline import BUILD_STATUSES, BuildEvent, SecuritySummary
from workflows.pipeline.models import MAX_LOG_TAIL, TestFailure, TestOutcome, TestSummary

MAX_STEP = 200
"""Characters of ``--step``."""

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
    step: Optional[str] = None,
    queued: Optional[float] = None,
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
    if duration is not None and not math.isfinite(duration):
        bad_input("--duration", f"must be a number of seconds, got {duration}")
    if queued is not None and (not math.isfinite(queued) or queued < 0):
        bad_input("--queued-seconds", f"must be a number of seconds, 0 or more, got {queued}")
    if step is not None and (not step.strip() or len(step) > MAX_STEP):
        bad_input("--step", f"must be a step name of 1 to {MAX_STEP} characters")


def _telemetry_tests(tests: TestSummary | None, outcomes: list[TestOutcome]) -> TestSummary:
    """The JUnit summary with the flake telemetry's outcomes merged in, or a summary of the telemetry alone.

    The telemetry lists failing and rerun tests only: alone, its final failures are the summary's failures.
    """
    if tests is not None:
        return with_outcomes(tests, outcomes)
    failing = [o for o in outcomes if o.failed]
    return TestSummary(
        total=len(outcomes),
        failed=sum(1 for o in failing if o.outcome == "failed"),
        errors=sum(1 for o in failing if o.outcome == "error"),
        skipped=sum(1 for o in outcomes if o.outcome == "skipped"),
        duration_seconds=round(sum(o.duration_seconds for o in outcomes), 3),
        failures=[
            TestFailure(name=o.nodeid.rpartition("::")[2], classname=o.nodeid.rpartition("::")[0], message=o.message)
            for o in failing[:MAX_FAILURES]
        ],
        outcomes=outcomes,
    )


@app.command()
def build(
    repo: str = typer.Option(..., metavar="REPO", help="Repository, e.g. acme/payments."),
    branch: str = typer.Option(..., metavar="BRANCH", help="Branch name."),
    commit: str = typer.Option(..., metavar="SHA", help="Commit SHA."),
    status: str = typer.Option(..., metavar="STATUS", help="started|success|failure|cancelled|timed_out"),
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
    log: Optional[Path] = typer.Option(
        None, "--log", metavar="FILE", help=f"The run's log: its last {MAX_LOG_TAIL} characters go with a failure."
    ),
    step: Optional[str] = typer.Option(None, "--step", metavar="NAME", help="The failing step's name."),
    queued_seconds: Optional[float] = typer.Option(
        None, "--queued-seconds", metavar="SECONDS", help="How long the run waited for a runner."
    ),
    flake_telemetry: Optional[Path] = typer.Option(
        None,
        "--flake-telemetry",
        metavar="FILE",
        help="Pytest flake telemetry JSON (meta, events, history): its reruns mark flaky tests.",
    ),
) -> None:
    """Send one CI event to the pipeline's workflow (pipeline/<repo>/<branch>)."""
    _check_build(repo, branch, commit, status, workflow, url, pr, duration, step, queued_seconds)
    tests = cov = None
    scans: list[SecuritySummary] = []
    tail: str | None = None
    try:
        tests = parse_junit(list(junit)) if junit else None
        if flake_telemetry is not None:
            tests = _telemetry_tests(tests, parse_flake_telemetry(flake_telemetry).outcomes)
        cov = parse_coverage(coverage) if coverage else None
        scans = parse_sarif(list(sarif)) if sarif else []
        tail = read_log_tail(log) if log is not None else None
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
        log_tail=tail,
        step=step.strip() if step else None,
        queued_seconds=queued_seconds,
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
