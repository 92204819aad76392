"""Trends and thresholds of one branch's builds (issue 14, items 2 and 5; seed 002's alerting strategy).

One call per finished build, :func:`record_build`, updates the bounded :class:`BuildHealth` and returns the
findings; the thresholds are :class:`~workflows.pipeline.health_models.TrendConfig`:

=========================  ===========================================================  ========  ===========================
kind                       when                                                         severity  alertname
=========================  ===========================================================  ========  ===========================
``coverage_drop``          coverage ≤ baseline − ``coverage_drop_points`` (default 5)   warning   ``CoverageDropped``
``coverage_below_min``     coverage < ``coverage_min`` (when set)                       error     ``CoverageBelowMinimum``
``performance_regression`` a successful build ≥ (1 + 0.5) × median of the last K (10)   warning   ``BuildPerformanceRegression``
                           successful builds (after at least 3)
``failing_streak``         ≥ 3 failed builds in a row                                   critical  ``BuildFailingStreak``
``failure_rate``           more than 3 failures in the last 24 h                        error     ``BuildFailureRate``
``success_rate``           under 90 % successes over 7 days (at least 5 builds)         warning   ``BuildSuccessRateLow``
=========================  ===========================================================  ========  ===========================

A finding is reported on every build for which it holds (so messages show it) and is ``new`` only on the
build where it starts to hold: notify on ``new``, not on every build. A finding is re-evaluated only by a
build that carries what it needs (coverage findings by builds with coverage, the regression by successful
builds with a duration); otherwise it keeps its state.

Statuses: ``failure`` and ``timed_out`` are failures; ``success`` is a success; ``cancelled`` counts as
neither (a cancelled run says nothing about the code) and ``started`` changes nothing. The coverage baseline
is the coverage of the branch's last successful build that reported one.

Pure: ``now`` is passed in; inputs are never changed.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from workflows.models import SEVERITIES, MessageField, Severity
from workflows.pipeline.health_models import (
    MAX_DURATION_SAMPLES,
    MAX_RECOVERIES,
    TALLY_DAYS,
    BuildHealth,
    DayTally,
    Recovery,
    TrendConfig,
)

__all__ = ["FindingKind", "Finding", "TrendResult", "FAILED_STATUSES", "record_build", "trend_fields"]

FindingKind = Literal[
    "coverage_drop",
    "coverage_below_min",
    "performance_regression",
    "failing_streak",
    "failure_rate",
    "success_rate",
]
FAILED_STATUSES = frozenset({"failure", "timed_out"})
_MAX_FAILURE_TIMES = 100
_ALERTNAMES: dict[str, str] = {
    "coverage_drop": "CoverageDropped",
    "coverage_below_min": "CoverageBelowMinimum",
    "performance_regression": "BuildPerformanceRegression",
    "failing_streak": "BuildFailingStreak",
    "failure_rate": "BuildFailureRate",
    "success_rate": "BuildSuccessRateLow",
}
_SEVERITY: dict[str, Severity] = {
    "coverage_drop": "warning",
    "coverage_below_min": "error",
    "performance_regression": "warning",
    "failing_streak": "critical",
    "failure_rate": "error",
    "success_rate": "warning",
}


class Finding(BaseModel):
    """One threshold crossed by a branch."""

    kind: FindingKind
    alertname: str
    severity: Severity
    text: str
    new: bool
    """True on the build where it starts to hold (notify then), False while it keeps holding."""


class TrendResult(BaseModel):
    """A build against its branch's history."""

    health: BuildHealth
    findings: list[Finding] = Field(default_factory=list)
    severity: Severity | None = None
    """The highest severity among the findings (``critical`` while the failing streak holds)."""
    coverage: float | None = None
    coverage_baseline: float | None = None
    """The baseline this build was compared with (before it was updated)."""
    coverage_delta: float | None = None
    """coverage − baseline, in percentage points (rounded to 0.1)."""
    duration_median: float | None = None
    """The median of the last successful durations this build was compared with."""
    success_rate: float | None = None
    failures_24h: int = 0


def _prune(health: BuildHealth, now: datetime, config: TrendConfig) -> tuple[list[DayTally], list[datetime]]:
    first_day = (now - timedelta(days=max(config.success_rate_days, TALLY_DAYS) - 1)).date()
    days = [d for d in health.days if d.day >= first_day]
    failures = [t for t in health.failures_24h if t > now - timedelta(hours=24)]
    return days, failures


def _tally(days: list[DayTally], now: datetime, success: bool) -> list[DayTally]:
    today = now.date()
    current = next((d for d in days if d.day == today), DayTally(day=today))
    bumped = current.model_copy(
        update={"successes": current.successes + int(success), "failures": current.failures + int(not success)}
    )
    return [*(d for d in days if d.day != today), bumped]


def _coverage(
    health: BuildHealth, coverage: float | None, config: TrendConfig, checks: dict[str, str | None]
) -> float | None:
    if coverage is None:
        return None
    baseline = health.coverage_baseline
    delta = round(coverage - baseline, 1) if baseline is not None else None
    dropped = delta is not None and -delta >= config.coverage_drop_points
    checks["coverage_drop"] = (
        f"Coverage dropped {-delta:.1f} points: {baseline:.1f}% → {coverage:.1f}% "
        f"(baseline from {(health.coverage_baseline_commit or '?')[:7]})"
        if dropped and delta is not None and baseline is not None
        else None
    )
    if config.coverage_min is not None:
        below = coverage < config.coverage_min
        checks["coverage_below_min"] = (
            f"Coverage {coverage:.1f}% is below the minimum {config.coverage_min:.1f}%" if below else None
        )
    return delta


def _duration(
    health: BuildHealth, duration: float | None, config: TrendConfig, checks: dict[str, str | None]
) -> float | None:
    if duration is None:
        return None
    known = health.durations[-config.duration_baseline_runs :]
    if len(known) < config.duration_min_samples:
        return None
    median = statistics.median(known)
    regressed = median > 0 and duration >= (1 + config.duration_regression) * median
    checks["performance_regression"] = (
        f"Performance regression: {duration:.0f}s is +{(duration / median - 1):.0%} over the median "
        f"{median:.0f}s of the last {len(known)} successful builds"
        if regressed
        else None
    )
    return median


def _rates(
    days: list[DayTally],
    failures: list[datetime],
    streak: int,
    now: datetime,
    config: TrendConfig,
    checks: dict[str, str | None],
) -> float | None:
    checks["failing_streak"] = (
        f"{streak} failed builds in a row" if streak >= config.consecutive_failures_critical else None
    )
    checks["failure_rate"] = (
        f"{len(failures)} failures in the last 24 h" if len(failures) > config.failures_per_day else None
    )
    first_day = (now - timedelta(days=config.success_rate_days - 1)).date()
    window = [d for d in days if d.day >= first_day]
    ok = sum(d.successes for d in window)
    total = ok + sum(d.failures for d in window)
    if total < config.success_rate_min_builds:
        checks["success_rate"] = None
        return None
    rate = ok / total
    checks["success_rate"] = (
        f"Success rate {rate:.0%} over {config.success_rate_days} days ({ok} of {total} builds), "
        f"under {config.success_rate_min:.0%}"
        if rate < config.success_rate_min
        else None
    )
    return rate


def _history(
    health: BuildHealth, status: str, now: datetime, duration: float | None, coverage: float | None
) -> dict[str, object]:
    """The red spells (MTTR), durations of finished builds and coverage of green ones (the trends), after one build."""
    failed, success = status in FAILED_STATUSES, status == "success"
    update: dict[str, object] = {}
    if failed and health.red_since is None:
        update["red_since"] = now
    if success and health.red_since is not None:
        spell = Recovery(failed_at=health.red_since, fixed_at=now, failures=max(health.consecutive_failures, 1))
        update["red_since"] = None
        update["recoveries"] = [*health.recoveries, spell][-MAX_RECOVERIES:]
    if (failed or success) and duration is not None:
        update["durations_all"] = [*health.durations_all, (now, duration, status)][-MAX_DURATION_SAMPLES:]
    if success and coverage is not None:
        update["coverage_history"] = [*health.coverage_history, (now, coverage)][-MAX_DURATION_SAMPLES:]
    return update


def record_build(
    health: BuildHealth,
    *,
    status: str,
    commit: str,
    now: datetime,
    duration_seconds: float | None = None,
    coverage_percent: float | None = None,
    config: TrendConfig | None = None,
) -> TrendResult:
    """Adds one finished build to the branch's health and reports the thresholds it crosses.

    Args:
        health: The branch's health before the build.
        status: ``success``, ``failure``, ``timed_out``, ``cancelled`` (``started`` changes nothing).
        commit: The build's commit (recorded with a new coverage baseline).
        now: The event's time (``workflow.now()``).
        duration_seconds: The build's duration, when known.
        coverage_percent: The build's line coverage, when reported.
        config: Thresholds (defaults: :class:`TrendConfig`).

    Returns:
        The new health, the findings (see the module doc) and the figures for the message.
    """
    config = config or TrendConfig()
    if status == "started":
        return TrendResult(health=health)
    days, failures = _prune(health, now, config)
    failed, success = status in FAILED_STATUSES, status == "success"
    streak = health.consecutive_failures + 1 if failed else 0 if success else health.consecutive_failures
    if failed:
        failures = [*failures, now][-_MAX_FAILURE_TIMES:]
    if failed or success:
        days = _tally(days, now, success)
    checks: dict[str, str | None] = {}
    delta = _coverage(health, coverage_percent, config, checks)
    median = _duration(health, duration_seconds, config, checks) if success else None
    rate = _rates(days, failures, streak, now, config, checks)
    active = [k for k in health.active if k not in checks] + [k for k, text in checks.items() if text]
    findings = [
        Finding(
            kind=kind,
            alertname=_ALERTNAMES[kind],
            severity=_SEVERITY[kind],
            text=text,
            new=kind not in health.active,
        )
        for kind, text in checks.items()
        if text
    ]
    update: dict[str, object] = {
        "days": days,
        "failures_24h": failures,
        "consecutive_failures": streak,
        "active": active,
    }
    update.update(_history(health, status, now, duration_seconds, coverage_percent))
    if success and duration_seconds is not None:
        update["durations"] = [*health.durations, duration_seconds][-config.duration_baseline_runs :]
    if success and coverage_percent is not None:
        update["coverage_baseline"] = coverage_percent
        update["coverage_baseline_commit"] = commit
    severities = [f.severity for f in findings]
    return TrendResult(
        health=health.model_copy(update=update),
        findings=findings,
        severity=max(severities, key=SEVERITIES.index) if severities else None,
        coverage=coverage_percent,
        coverage_baseline=health.coverage_baseline if coverage_percent is not None else None,
        coverage_delta=delta,
        duration_median=median,
        success_rate=round(rate, 3) if rate is not None else None,
        failures_24h=len(failures),
    )


def trend_fields(result: TrendResult) -> list[MessageField]:
    """Fields for the build message: coverage with its delta, the duration's median, the 7-day success rate."""
    fields: list[MessageField] = []
    if result.coverage is not None:
        delta = (
            f" ({result.coverage_delta:+.1f} vs {result.coverage_baseline:.1f}%)"
            if result.coverage_delta is not None and result.coverage_baseline is not None
            else ""
        )
        fields.append(MessageField(title="Coverage", value=f"{result.coverage:.1f}%{delta}"))
    if result.duration_median is not None:
        fields.append(MessageField(title="Median build time", value=f"{result.duration_median:.0f}s"))
    if result.success_rate is not None:
        fields.append(MessageField(title="Success rate", value=f"{result.success_rate:.0%}"))
    return fields
