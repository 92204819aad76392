"""Trends and thresholds of a branch's builds (workflows/policy/trends.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows.models import MessageField
from workflows.pipeline.health_models import BuildHealth, PipelineHealthConfig, TrendConfig
from workflows.policy.trends import TrendResult, record_build, trend_fields

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NO_RATE = TrendConfig(success_rate_min_builds=100)
"""For tests about other findings: no success-rate verdict in the way."""


class Branch:
    """Feeds builds to ``record_build``, ``step`` apart."""

    def __init__(self, config: TrendConfig | None = None, step: timedelta = timedelta(hours=1)) -> None:
        self.health = BuildHealth()
        self.config = config or TrendConfig()
        self.now = T0
        self.step = step
        self.n = 0

    def build(self, status: str, duration: float | None = None, coverage: float | None = None) -> TrendResult:
        self.n += 1
        self.now += self.step
        result = record_build(
            self.health,
            status=status,
            commit=f"{self.n:07d}abc",
            now=self.now,
            duration_seconds=duration,
            coverage_percent=coverage,
            config=self.config,
        )
        self.health = result.health
        return result


def _kinds(result: TrendResult) -> list[tuple[str, bool]]:
    return [(f.kind, f.new) for f in result.findings]


def test_three_consecutive_failures_are_critical_once_then_still_critical() -> None:
    b = Branch(NO_RATE)
    assert b.build("success").severity is None
    assert b.build("failure").findings == []
    assert b.build("timed_out").findings == []
    third = b.build("failure")
    assert _kinds(third) == [("failing_streak", True)]
    assert third.severity == "critical"
    assert third.findings[0].alertname == "BuildFailingStreak"
    assert third.findings[0].text == "3 failed builds in a row"
    fourth = b.build("failure")  # more than 3 failures in 24 h too
    assert _kinds(fourth) == [("failing_streak", False), ("failure_rate", True)]
    assert fourth.severity == "critical"
    assert b.build("cancelled").health.consecutive_failures == 4  # cancelled: neither
    fixed = b.build("success")
    assert fixed.health.consecutive_failures == 0
    assert ("failing_streak", False) not in _kinds(fixed) and "failing_streak" not in fixed.health.active


def test_more_than_three_failures_in_24_hours_is_an_alert_and_old_ones_expire() -> None:
    b = Branch(step=timedelta(hours=5))
    for _ in range(3):
        b.build("failure")
        b.build("success")
    result = b.build("failure")  # 4 failures within 24 h (at 5, 15, 25 and 35 h: the first is gone)
    assert result.failures_24h == 3 and "failure_rate" not in [f.kind for f in result.findings]
    b.step = timedelta(minutes=10)
    result = b.build("failure")
    assert result.failures_24h == 4
    assert ("failure_rate", True) in _kinds(result)
    assert next(f for f in result.findings if f.kind == "failure_rate").severity == "error"


def test_coverage_drop_of_five_points_is_a_warning_with_the_delta() -> None:
    b = Branch(NO_RATE)
    first = b.build("success", coverage=87.3)
    assert first.coverage_delta is None and first.findings == []
    small = b.build("success", coverage=83.0)
    assert small.coverage_delta == -4.3 and small.findings == []  # baseline is now 83.0
    drop = b.build("failure", coverage=78.0)
    assert drop.coverage_delta == -5.0
    assert _kinds(drop) == [("coverage_drop", True)]
    assert drop.findings[0].severity == "warning"
    assert drop.findings[0].text == "Coverage dropped 5.0 points: 83.0% → 78.0% (baseline from 0000002)"
    assert trend_fields(drop)[0] == MessageField(title="Coverage", value="78.0% (-5.0 vs 83.0%)")
    again = b.build("failure", coverage=78.0)  # a failed build does not move the baseline
    assert _kinds(again) == [("coverage_drop", False)]
    nocov = b.build("failure")
    assert nocov.coverage_delta is None and "coverage_drop" in nocov.health.active  # not re-evaluated
    recovered = b.build("success", coverage=84.0)
    assert recovered.findings == [] and recovered.health.coverage_baseline == 84.0


def test_coverage_below_minimum_and_configurable_drop() -> None:
    b = Branch(TrendConfig(coverage_min=80, coverage_drop_points=2))
    b.build("success", coverage=82.0)
    result = b.build("success", coverage=79.5)
    assert _kinds(result) == [("coverage_drop", True), ("coverage_below_min", True)]
    assert result.severity == "error"
    assert result.findings[1].text == "Coverage 79.5% is below the minimum 80.0%"


def test_duration_fifty_percent_over_the_median_is_a_performance_regression() -> None:
    b = Branch(NO_RATE)
    assert b.build("success", duration=100).duration_median is None
    b.build("success", duration=120)
    assert b.build("success", duration=500).findings == []  # only 2 durations known before it
    b.build("failure", duration=1000)  # failures never enter the baseline nor trigger
    steady = b.build("success", duration=170)  # median of 100, 120, 500 = 120; 170 < 180
    assert steady.duration_median == 120 and steady.findings == []
    slow = b.build("success", duration=217)  # median of 100, 120, 500, 170 = 145; 217.5 needed
    assert slow.findings == []
    slower = b.build("success", duration=300)  # median of 100, 120, 500, 170, 217 = 170; 255 needed
    assert _kinds(slower) == [("performance_regression", True)]
    assert slower.findings[0].text == (
        "Performance regression: 300s is +76% over the median 170s of the last 5 successful builds"
    )
    assert slower.findings[0].alertname == "BuildPerformanceRegression"
    assert len(b.health.durations) == 6


def test_durations_kept_are_the_last_k() -> None:
    b = Branch(TrendConfig(duration_baseline_runs=3, duration_min_samples=3))
    for d in (10, 10, 10, 100, 100):
        b.build("success", duration=d)
    assert b.health.durations == [10, 100, 100]
    assert b.build("success", duration=149).findings == []
    assert _kinds(b.build("success", duration=250)) == [("performance_regression", True)]


def test_success_rate_under_ninety_percent_over_seven_days() -> None:
    b = Branch(step=timedelta(hours=12))
    for _ in range(9):
        b.build("success")
    result = b.build("failure")
    assert result.success_rate == 0.9 and result.findings == []
    result = b.build("failure")
    assert result.success_rate == 0.818
    assert _kinds(result) == [("success_rate", True)]
    assert result.findings[0].text == "Success rate 82% over 7 days (9 of 11 builds), under 90%"
    # Eight days of successes later the failures have left the window.
    for _ in range(16):
        result = b.build("success")
    assert result.success_rate == 1.0 and "success_rate" not in result.health.active
    assert len(result.health.days) == 14  # tallies are kept 35 days for reports; the rule reads its 7
    for _ in range(80):
        result = b.build("success")
    assert len(result.health.days) == 35


def test_started_changes_nothing_and_inputs_are_not_changed() -> None:
    health = BuildHealth(consecutive_failures=2)
    assert record_build(health, status="started", commit="a", now=T0).health is health
    record_build(health, status="failure", commit="a", now=T0)
    assert health == BuildHealth(consecutive_failures=2)


def test_config_section_defaults() -> None:
    config = PipelineHealthConfig.model_validate({"trends": {"coverage_min": 75}})
    assert config.trends.coverage_drop_points == 5.0
    assert config.trends.coverage_min == 75
    assert config.flaky.window_runs == 20 and config.patterns.window_seconds == 300


def test_red_spells_are_kept_for_mttr_and_durations_of_every_finished_build_for_the_trend() -> None:
    branch = Branch(NO_RATE)
    branch.build("success", duration=100)
    branch.build("failure", duration=50)
    first_red = branch.now
    branch.build("cancelled")
    branch.build("timed_out", duration=900)
    assert branch.health.red_since == first_red
    branch.build("success", duration=110)
    assert branch.health.red_since is None
    [spell] = branch.health.recoveries
    assert (spell.failed_at, spell.fixed_at, spell.failures) == (first_red, branch.now, 2)
    assert [(s, st) for _, s, st in branch.health.durations_all] == [
        (100, "success"),
        (50, "failure"),
        (900, "timed_out"),
        (110, "success"),
    ]
    for _ in range(120):
        branch.build("failure", duration=1)
        branch.build("success", duration=1)
    assert len(branch.health.recoveries) == 50
    branch.build("success", duration=1, coverage=80.0)
    branch.build("failure", duration=1, coverage=10.0)  # only green builds' coverage is the trend
    assert [pct for _, pct in branch.health.coverage_history] == [80.0]
    assert len(branch.health.durations_all) == 100
