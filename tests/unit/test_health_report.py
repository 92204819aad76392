"""The pipeline health report on a known history: exact figures, and the message made of them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from workflows.pipeline.health_models import (
    BuildHealth,
    DayTally,
    PipelineHealthState,
    Quarantine,
    Recovery,
    RunRef,
    TestHistory,
    TestRecord,
)
from workflows.pipeline.models import BuildEvent, CoverageSummary, PipelineState
from workflows.policy.health_report import health_report, period_words, report_lines, report_message

REPO = "acme/payments"
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday; the 7-day period starts 2026-11-23 09:00


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def main_state() -> PipelineState:
    runs = [
        RunRef(run="r1", commit="c1", at=at(22)),  # before the period
        RunRef(run="r2", commit="c2", at=at(24)),
        RunRef(run="r3", commit="c3", at=at(26)),
        RunRef(run="r4", commit="c4", at=at(29)),
    ]
    tests = {
        "t::flaky": TestRecord(outcomes="PFPF", last_seen=at(29), last_failure=at(29)),
        "t::broken": TestRecord(outcomes="PFFF", last_seen=at(29), last_failure=at(29)),
    }
    builds = BuildHealth(
        days=[
            DayTally(day=date(2026, 11, 22), successes=5, failures=5),  # before the period
            DayTally(day=date(2026, 11, 24), successes=4, failures=1),
            DayTally(day=date(2026, 11, 26), successes=3, failures=2),
            DayTally(day=date(2026, 11, 30), successes=1),
        ],
        recoveries=[
            Recovery(failed_at=at(20, 10), fixed_at=at(20, 11)),  # before the period
            Recovery(failed_at=at(24, 10), fixed_at=at(24, 10, 30)),  # 30 min
            Recovery(failed_at=at(26, 8), fixed_at=at(26, 9, 30), failures=2),  # 90 min
        ],
        durations_all=[
            (at(17), 100.0, "success"),  # previous period: median 110
            (at(19), 120.0, "success"),
            (at(20), 10.0, "failure"),  # failures are not build times
            (at(21), 110.0, "success"),
            (at(24), 130.0, "success"),
            (at(25), 150.0, "success"),
            (at(26), 5.0, "failure"),
            (at(27), 140.0, "success"),
            (at(29), 160.0, "success"),
        ],
        coverage_baseline=81.5,
        coverage_baseline_commit="c4",
        coverage_history=[(at(17), 70.0), (at(24), 78.0), (at(29), 81.5)],  # the first is before the period
    )
    last = BuildEvent(
        repo=REPO,
        branch="main",
        commit="c4",
        status="success",
        coverage=CoverageSummary(format="cobertura", line_percent=81.5),
    )
    return PipelineState(
        health=PipelineHealthState(tests=TestHistory(runs=runs, tests=tests), builds=builds), last_event=last
    )


def feature_state() -> PipelineState:
    quarantined = Quarantine(by="alice", since=at(25))
    tests = {
        "t::broken": TestRecord(outcomes="F", last_seen=at(25), last_failure=at(25)),
        "t::quarantined": TestRecord(outcomes="F", last_seen=at(25), last_failure=at(25), quarantine=quarantined),
    }
    builds = BuildHealth(
        days=[DayTally(day=date(2026, 11, 25), failures=2)],
        red_since=at(25, 12),
        durations_all=[(at(25), 200.0, "success")],
        coverage_baseline=80.0,
        coverage_baseline_commit="f0",
    )
    last = BuildEvent(
        repo=REPO,
        branch="feature/x",
        commit="f1",
        status="failure",
        coverage=CoverageSummary(format="lcov", line_percent=74.0),
    )
    history = TestHistory(runs=[RunRef(run="f", commit="f1", at=at(25))], tests=tests)
    return PipelineState(health=PipelineHealthState(tests=history, builds=builds), last_event=last)


def other_repo() -> PipelineState:
    return PipelineState(health=PipelineHealthState(builds=BuildHealth(days=[DayTally(day=date(2026, 11, 29))])))


PIPELINES = [
    (REPO, "main", main_state()),
    (REPO, "feature/x", feature_state()),
    ("acme/other", "main", other_repo()),
]


def test_report_figures_on_a_known_history() -> None:
    report = health_report(REPO, PIPELINES, NOW, timedelta(days=7), period_text="7d")

    assert report.branches == ["feature/x", "main"]
    assert (report.since, report.until) == (NOW - timedelta(days=7), NOW)
    # Tallies of 2026-11-24..30 (the 22nd is before the period), both branches.
    assert (report.successes, report.failures, report.builds) == (8, 5, 13)
    assert report.success_rate == round(8 / 13, 4) == 0.6154
    assert report.days_known == 4
    # Successful builds of the period: 130, 150, 140, 160 (main) and 200 (feature/x) → 150;
    # the previous period's 100, 120, 110 → 110.
    assert report.median_build_seconds == 150.0
    assert report.build_time_baseline_seconds == 110.0
    assert report.trend_basis == "previous period"
    assert report.build_time_trend == round(150 / 110 - 1, 4) == 0.3636
    # Only main is watched (the default globs); two red spells ended in the period: 30 and 90 minutes.
    assert [b.branch for b in report.watched] == ["main"]
    main = report.watched[0]
    assert (main.builds, main.failures, main.recoveries, main.red_since) == (11, 3, 2, None)
    assert main.mttr_seconds == report.mttr_seconds == 3600.0
    assert report.watched_failures == 3
    # Failures in the period's runs: broken FFF on main + F on feature/x, flaky F.P.F → 2, quarantined 1.
    assert [(t.nodeid, t.failures, t.runs, t.branches) for t in report.top_failing] == [
        ("t::broken", 4, 4, ["feature/x", "main"]),
        ("t::flaky", 2, 3, ["main"]),
        ("t::quarantined", 1, 1, ["feature/x"]),
    ]
    flaky = {f.nodeid: f for f in report.flaky}
    assert sorted(flaky) == ["t::flaky", "t::quarantined"], "a test failing in a row is broken, not flaky"
    assert flaky["t::flaky"].reason == "flipped 3 times in its last 4 runs (100%)"
    assert flaky["t::flaky"].branches == ["main"]
    assert flaky["t::quarantined"].quarantined_by == "alice"
    cov = {c.branch: c for c in report.coverage}
    assert (cov["main"].baseline, cov["main"].last, cov["main"].delta) == (81.5, 81.5, None)
    assert (cov["feature/x"].baseline, cov["feature/x"].last, cov["feature/x"].delta) == (80.0, 74.0, -6.0)
    assert (cov["main"].period_first, cov["main"].trend) == (78.0, 3.5)
    assert cov["feature/x"].trend is None  # no successful build with coverage in the period


def test_report_message() -> None:
    report = health_report(REPO, PIPELINES, NOW, timedelta(days=7), period_text="7d")
    message = report_message(report, source="report/health-acme-payments-weekly")

    assert message.title == "Pipeline health: acme/payments (last 7 days)"
    assert message.labels == {"kind": "report", "alertname": "PipelineHealthReport", "repo": REPO}
    assert message.source == "report/health-acme-payments-weekly"
    assert message.severity == "warning", "61.5% of the builds passed (under 90%)"
    assert {f.title: f.value for f in message.fields} == {
        "Success rate": "61.5% (8/13)",
        "Median build time": "2m30s (+36% vs previous period)",
        "Failures (watched)": "3",
        "MTTR (watched)": "1h",
        "Flaky tests": "2",
    }
    assert message.text.splitlines() == report_lines(report)
    assert "• main: 3 failure(s) in 11 build(s), MTTR 1h over 2 recovery(ies)" in message.text
    assert "• t::broken: 4 failure(s) in 4 run(s)" in message.text
    assert "• t::quarantined: quarantined by alice (feature/x)" in message.text
    assert message.text.splitlines()[0] == "Watched branches:"
    assert (
        "Coverage (last successful build):\n• feature/x: 80.0% (last build 74.0%, -6.0)\n• main: 81.5%" in message.text
    )


def test_watched_globs_red_branch_and_first_half_trend() -> None:
    feature = feature_state()
    feature.health.builds.durations_all = [
        (at(24), 100.0, "success"),
        (at(25), 100.0, "success"),
        (at(28), 80.0, "success"),
        (at(29), 70.0, "success"),
    ]
    report = health_report(
        REPO, [(REPO, "feature/x", feature)], NOW, timedelta(days=7), watch=["feature/*"], period_text="7d"
    )
    # No build of the previous period: the second half (from 11-26 21:00) against the first half.
    assert report.trend_basis == "first half"
    assert report.median_build_seconds == 90.0
    assert report.build_time_baseline_seconds == 100.0
    assert report.build_time_trend == -0.1
    (branch,) = report.watched
    assert (branch.branch, branch.failures, branch.red_since, branch.mttr_seconds) == ("feature/x", 2, at(25, 12), None)
    message = report_message(report)
    assert message.severity == "warning"
    assert {f.title: f.value for f in message.fields}["Red now"] == "feature/x"
    assert {f.title: f.value for f in message.fields}["MTTR (watched)"] == "—"


def test_quiet_repo_and_short_period() -> None:
    report = health_report("acme/quiet", PIPELINES, NOW, timedelta(days=1), period_text="1d")
    assert report.branches == [] and report.builds == 0 and report.success_rate is None
    assert report.median_build_seconds is None and report.build_time_trend is None
    message = report_message(report)
    assert message.title == "Pipeline health: acme/quiet (last day)"
    assert message.severity == "info"
    assert message.text == "No builds in the period."
    # One day: today's tally only (main's one success on 11-30).
    today = health_report(REPO, PIPELINES, NOW, timedelta(days=1), period_text="1d")
    assert (today.successes, today.failures, today.days_known) == (1, 0, 1)


def test_period_words() -> None:
    assert period_words("7d") == "last 7 days"
    assert period_words("1w") == "last 7 days"
    assert period_words("1d") == "last day"
    assert period_words("12h") == "last 12h"
