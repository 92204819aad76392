"""The pipeline health report of one repository (issue 14 item 7): pure, from what the pipelines remember.

Input: the ``(repo, branch, PipelineState)`` of a repository's pipeline entities (``pipeline/<repo>/<branch>``),
``now`` and a period. Output: a :class:`HealthReport` and, from it, one :class:`~workflows.models.Message`.

What each figure is made of (all bounded by what ``PipelineState.health`` keeps):

* **success rate**: the per-day tallies (``BuildHealth.days``, UTC days) of the last ``period`` days, today
  included, over every branch. The pipelines keep ``trends.success_rate_days`` + 1 days of tallies (8 by
  default), so a longer period counts what is kept; ``days_known`` says how many days that was.
* **build time**: the median duration of the successful builds finished in the period
  (``BuildHealth.durations_all``, the last 100 builds with a duration per branch); its **trend** compares it
  with the median of the previous period when builds of that period are known, else the second half of the
  period with its first half. ``+0.25`` is 25 % slower.
* **failures and MTTR of the watched branches** (``pipelines.watch`` globs): failed builds from the tallies;
  MTTR is the mean time from a branch turning red (its first failed build) to its next successful build, over
  the red spells that ended in the period (``BuildHealth.recoveries``); a branch still red is listed with
  ``red_since``.
* **top failing tests**: failures (final outcome ``F``) of each test in the runs of the period, from the
  tests' bounded histories (``TestHistory``: the last ``flaky.window_runs`` runs with test reports, tests that
  failed in them), summed over branches.
* **flaky tests**: :func:`workflows.policy.flaky.flaky_tests` of each branch, merged by test.
* **coverage**: per branch, the coverage baseline (the last successful build's), the last build's coverage
  with its delta, and the trend over the period: the first and last successful builds' coverage in it
  (``BuildHealth.coverage_history``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, Field

from workflows.models import Message, MessageField, Severity
from workflows.pipeline.health_models import FlakyConfig
from workflows.pipeline.models import PipelineState
from workflows.policy.durations import format_duration, parse_duration
from workflows.policy.flaky import flaky_tests

__all__ = [
    "TestFailures",
    "FlakyTest",
    "BranchHealth",
    "CoverageFigure",
    "HealthReport",
    "health_report",
    "report_message",
    "period_words",
    "watched",
    "build_time_text",
    "seconds_text",
    "percent_text",
    "report_lines",
    "TOP_TESTS",
]

TOP_TESTS = 10
"""Tests listed under top failing and flaky."""


class TestFailures(BaseModel):
    """How often one test failed in the period."""

    __test__ = False  # not a pytest test class

    nodeid: str
    failures: int
    runs: int
    """Runs of the period that reported the test."""
    branches: list[str] = Field(default_factory=list)


class FlakyTest(BaseModel):
    """One flaky (or quarantined) test."""

    nodeid: str
    reason: str = ""
    flip_rate: float = 0.0
    quarantined_by: str | None = None
    branches: list[str] = Field(default_factory=list)


class BranchHealth(BaseModel):
    """One watched branch over the period."""

    branch: str
    builds: int = 0
    failures: int = 0
    red_since: datetime | None = None
    """Red now: since its first failed build (None: green)."""
    recoveries: int = 0
    """Red spells that ended in the period."""
    mttr_seconds: float | None = None
    """Mean time to recovery over those spells."""


class CoverageFigure(BaseModel):
    """A branch's line coverage."""

    branch: str
    baseline: float | None = None
    """The last successful build's coverage."""
    baseline_commit: str | None = None
    last: float | None = None
    """The last finished build's coverage."""
    delta: float | None = None
    """``last`` − ``baseline`` (points), when the last build was not the baseline's."""
    period_first: float | None = None
    """Coverage of the first successful build in the period."""
    trend: float | None = None
    """``baseline`` − ``period_first`` (points): the change over the period's successful builds."""


class HealthReport(BaseModel):
    """A repository's pipeline health over a period."""

    repo: str
    period: str
    """As asked (``7d``)."""
    since: datetime
    until: datetime
    branches: list[str] = Field(default_factory=list)
    days_known: int = 0
    """Days of the period with tallies kept (see the module doc)."""
    builds: int = 0
    successes: int = 0
    failures: int = 0
    success_rate: float | None = None
    """successes / builds (None: no build)."""
    median_build_seconds: float | None = None
    build_time_baseline_seconds: float | None = None
    """The median the trend compares with."""
    build_time_trend: float | None = None
    """``median / baseline − 1`` (``+0.25``: a quarter slower)."""
    trend_basis: Literal["previous period", "first half"] | None = None
    watched: list[BranchHealth] = Field(default_factory=list)
    watched_failures: int = 0
    mttr_seconds: float | None = None
    """Mean time to recovery over every watched branch's red spells that ended in the period."""
    top_failing: list[TestFailures] = Field(default_factory=list)
    flaky: list[FlakyTest] = Field(default_factory=list)
    coverage: list[CoverageFigure] = Field(default_factory=list)
    unanswered: list[str] = Field(default_factory=list)
    """Branches whose pipeline did not answer when the report was made (left out of the figures)."""


def watched(branch: str, globs: Iterable[str]) -> bool:
    """Whether ``branch`` matches one of the ``pipelines.watch`` shell globs."""
    return any(fnmatchcase(branch, glob) for glob in globs)


def _window_days(now: datetime, period: timedelta) -> tuple[date, date]:
    """First and last UTC day of the period: the last ``ceil(period / 1d)`` days, today included."""
    days = max(1, -(-int(period.total_seconds()) // 86400))
    return (now - timedelta(days=days - 1)).date(), now.date()


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _trend(
    samples: list[tuple[datetime, float]], since: datetime, until: datetime
) -> tuple[float | None, float | None, Literal["previous period", "first half"] | None]:
    """(median of the period, the median compared with, its basis)."""
    period = until - since
    current = [s for t, s in samples if since <= t <= until]
    median = _median(current)
    previous = [s for t, s in samples if since - period <= t < since]
    if median is not None and previous:
        return median, _median(previous), "previous period"
    middle = since + period / 2
    first = [s for t, s in samples if since <= t < middle]
    second = [s for t, s in samples if middle <= t <= until]
    if first and second:
        return median, _median(first), "first half"
    return median, None, None


def _test_failures(
    pipelines: Sequence[tuple[str, PipelineState]], since: datetime, until: datetime
) -> list[TestFailures]:
    found: dict[str, TestFailures] = {}
    for branch, state in pipelines:
        history = state.health.tests
        for nodeid, record in history.tests.items():
            chars = record.outcomes
            runs = history.runs[-len(chars) :] if chars else []
            in_period = [c for c, ref in zip(chars, runs, strict=False) if since <= ref.at <= until]
            reported = sum(1 for c in in_period if c in "PFR")
            failures = sum(1 for c in in_period if c == "F")
            if not failures:
                continue
            entry = found.setdefault(nodeid, TestFailures(nodeid=nodeid, failures=0, runs=0))
            entry.failures += failures
            entry.runs += reported
            entry.branches.append(branch)
    ranked = sorted(found.values(), key=lambda t: (-t.failures, t.nodeid))
    return ranked[:TOP_TESTS]


def _flaky(pipelines: Sequence[tuple[str, PipelineState]], config: FlakyConfig | None) -> list[FlakyTest]:
    found: dict[str, FlakyTest] = {}
    for branch, state in pipelines:
        for verdict in flaky_tests(state.health.tests, config):
            entry = found.get(verdict.nodeid)
            if entry is None:
                entry = found[verdict.nodeid] = FlakyTest(
                    nodeid=verdict.nodeid,
                    reason=verdict.reason or ("quarantined" if verdict.quarantine else ""),
                    flip_rate=verdict.flip_rate,
                    quarantined_by=verdict.quarantine.by if verdict.quarantine else None,
                )
            entry.flip_rate = max(entry.flip_rate, verdict.flip_rate)
            entry.branches.append(branch)
    ranked = sorted(found.values(), key=lambda f: (-len(f.branches), -f.flip_rate, f.nodeid))
    return ranked[:TOP_TESTS]


def _branch(
    branch: str, state: PipelineState, first: date, last: date, since: datetime, until: datetime
) -> BranchHealth:
    builds = state.health.builds
    days = [d for d in builds.days if first <= d.day <= last]
    spells = [r for r in builds.recoveries if since <= r.fixed_at <= until]
    times = [(r.fixed_at - r.failed_at).total_seconds() for r in spells]
    return BranchHealth(
        branch=branch,
        builds=sum(d.successes + d.failures for d in days),
        failures=sum(d.failures for d in days),
        red_since=builds.red_since,
        recoveries=len(spells),
        mttr_seconds=sum(times) / len(times) if times else None,
    )


def _coverage(branch: str, state: PipelineState, since: datetime) -> CoverageFigure | None:
    builds = state.health.builds
    in_period = [pct for at, pct in builds.coverage_history if at >= since]
    last_event = state.last_event
    last = last_event.coverage.line_percent if last_event and last_event.coverage else None
    if builds.coverage_baseline is None and last is None:
        return None
    same = last_event is not None and last_event.commit == builds.coverage_baseline_commit
    delta = (
        round(last - builds.coverage_baseline, 1)
        if last is not None and builds.coverage_baseline is not None and not same
        else None
    )
    return CoverageFigure(
        branch=branch,
        baseline=builds.coverage_baseline,
        baseline_commit=builds.coverage_baseline_commit,
        last=last,
        delta=delta,
        period_first=in_period[0] if in_period else None,
        trend=round(in_period[-1] - in_period[0], 1) if len(in_period) > 1 else None,
    )


def health_report(
    repo: str,
    pipelines: Iterable[tuple[str, str, PipelineState]],
    now: datetime,
    period: timedelta,
    *,
    watch: Iterable[str] = ("main", "master"),
    flaky: FlakyConfig | None = None,
    period_text: str | None = None,
) -> HealthReport:
    """The health of ``repo``'s pipelines over the ``period`` before ``now`` (see the module doc).

    Args:
        repo: The repository; entries of other repositories are ignored.
        pipelines: ``(repo, branch, state)`` of each pipeline entity.
        now: The end of the period (aware).
        period: How far back the report looks.
        watch: ``pipelines.watch`` (branch globs) of the config.
        flaky: ``pipelines.health.flaky`` of the config.
        period_text: The period as asked (default: ``format_duration(period)``).
    """
    globs = list(watch)
    mine = sorted(((b, s) for r, b, s in pipelines if r == repo), key=lambda item: item[0])
    since = now - period
    first, last = _window_days(now, period)
    report = HealthReport(
        repo=repo, period=period_text or format_duration(period), since=since, until=now, branches=[b for b, _ in mine]
    )
    known_days: set[date] = set()
    samples: list[tuple[datetime, float]] = []
    for branch, state in mine:
        builds = state.health.builds
        for tally in builds.days:
            if first <= tally.day <= last:
                known_days.add(tally.day)
                report.successes += tally.successes
                report.failures += tally.failures
        samples += [(t, seconds) for t, seconds, status in builds.durations_all if status == "success"]
        if watched(branch, globs):
            report.watched.append(_branch(branch, state, first, last, since, now))
        figure = _coverage(branch, state, since)
        if figure is not None:
            report.coverage.append(figure)
    report.days_known = len(known_days)
    report.builds = report.successes + report.failures
    report.success_rate = round(report.successes / report.builds, 4) if report.builds else None
    median, baseline, basis = _trend(samples, since, now)
    report.median_build_seconds = median
    if baseline is not None and median is not None and baseline > 0:
        report.build_time_baseline_seconds = baseline
        report.build_time_trend = round(median / baseline - 1, 4)
        report.trend_basis = basis
    report.watched_failures = sum(b.failures for b in report.watched)
    spells = [
        (r.fixed_at - r.failed_at).total_seconds()
        for branch, state in mine
        if watched(branch, globs)
        for r in state.health.builds.recoveries
        if since <= r.fixed_at <= now
    ]
    report.mttr_seconds = sum(spells) / len(spells) if spells else None
    report.top_failing = _test_failures(mine, since, now)
    report.flaky = _flaky(mine, flaky)
    return report


def period_words(period: str) -> str:
    """``7d`` → ``last 7 days``, ``1d`` → ``last day``, ``12h`` → ``last 12h``, ``2w`` → ``last 14 days``."""
    seconds = int(parse_duration(period).total_seconds())
    if seconds and seconds % 86400 == 0:
        days = seconds // 86400
        return "last day" if days == 1 else f"last {days} days"
    return f"last {period}"


def seconds_text(value: float | None) -> str:
    """``1h``, ``2m30s``, ``0.4s``; ``—`` for None."""
    if value is None:
        return "—"
    return format_duration(timedelta(seconds=round(value))) if value >= 1 else f"{value:.1f}s"


def percent_text(value: float | None) -> str:
    """``61.5%``, ``100%``; ``—`` for None."""
    return "—" if value is None else f"{value * 100:.1f}".removesuffix(".0") + "%"


def build_time_text(report: HealthReport) -> str:
    """``6m30s (+25% vs previous period)``."""
    text = seconds_text(report.median_build_seconds)
    if report.build_time_trend is not None:
        text += f" ({report.build_time_trend:+.0%} vs {report.trend_basis})"
    return text


def report_lines(report: HealthReport) -> list[str]:
    """The report's body, one line per item (the message text and the CLI's table share it)."""
    lines: list[str] = ["Watched branches:"] if report.watched else []
    for b in report.watched:
        red = f", red since {b.red_since:%Y-%m-%d %H:%M} UTC" if b.red_since else ""
        mttr = f", MTTR {seconds_text(b.mttr_seconds)} over {b.recoveries} recovery(ies)" if b.recoveries else ""
        lines.append(f"• {b.branch}: {b.failures} failure(s) in {b.builds} build(s){mttr}{red}")
    if report.top_failing:
        lines.append("Top failing tests:")
        lines += [f"• {t.nodeid}: {t.failures} failure(s) in {t.runs} run(s)" for t in report.top_failing]
    if report.flaky:
        lines.append("Flaky tests:")
        for f in report.flaky:
            why = f"quarantined by {f.quarantined_by}" if f.quarantined_by else f.reason
            lines.append(f"• {f.nodeid}: {why}" + (f" ({', '.join(f.branches)})" if len(report.branches) > 1 else ""))
    if report.unanswered:
        lines.append(f"Left out (did not answer): {', '.join(report.unanswered)}")
    if report.coverage:
        lines.append("Coverage (last successful build):")
    for c in report.coverage:
        delta = f" (last build {c.last:.1f}%, {c.delta:+.1f})" if c.delta is not None and c.last is not None else ""
        base = f"{c.baseline:.1f}%" if c.baseline is not None else "—"
        trend = f", {c.trend:+.1f} over the period (from {c.period_first:.1f}%)" if c.trend is not None else ""
        lines.append(f"• {c.branch}: {base}{delta}{trend}")
    return lines


def report_message(report: HealthReport, source: str = "") -> Message:
    """The report as one message: ``Pipeline health: <repo> (last 7 days)``.

    Severity ``warning`` when a watched branch is red now or fewer than 90 % of the builds passed, else ``info``.
    """
    red = [b.branch for b in report.watched if b.red_since is not None]
    poor = report.success_rate is not None and report.success_rate < 0.9
    severity: Severity = "warning" if red or poor else "info"
    builds = f"{report.successes}/{report.builds}" if report.builds else "no builds"
    fields = [
        MessageField(title="Success rate", value=f"{percent_text(report.success_rate)} ({builds})"),
        MessageField(title="Median build time", value=build_time_text(report)),
        MessageField(title="Failures (watched)", value=str(report.watched_failures)),
        MessageField(title="MTTR (watched)", value=seconds_text(report.mttr_seconds)),
        MessageField(title="Flaky tests", value=str(len(report.flaky))),
    ]
    if red:
        fields.append(MessageField(title="Red now", value=", ".join(red)))
    return Message(
        title=f"Pipeline health: {report.repo} ({period_words(report.period)})",
        text="\n".join(report_lines(report)) or "No builds in the period.",
        severity=severity,
        fields=fields,
        labels={"kind": "report", "alertname": "PipelineHealthReport", "repo": report.repo},
        source=source,
    )
