"""The dashboard's pure parts: a pipeline's badge and row from its state, the badge SVG, the page's escaping."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from defusedxml import ElementTree

from operations.dashboard import (
    MAX_TREND_POINTS,
    Dashboard,
    IncidentView,
    PipelineView,
    RecentFailure,
    TrendPoint,
    badge_status,
    pipeline_view,
)
from starters.dashboard import badge_svg, render_page
from workflows.models import DeliveryRecord
from workflows.pipeline import BuildEvent, PipelineNotice, PipelineState, Track
from workflows.pipeline.health_models import BuildHealth, DayTally, PipelineHealthState

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def notice(seq: int, alertname: str, commit: str = "c1", **extra: object) -> PipelineNotice:
    return PipelineNotice(seq=seq, alertname=alertname, commit=commit, workflow="ci", notified=True, **extra)  # type: ignore[arg-type]


def state(*notices: PipelineNotice, failures: int = 0, last: str | None = "success", **extra: object) -> PipelineState:
    track = Track(last_status=last, consecutive_failures=failures)
    return PipelineState(tracks={"ci": track}, notices=list(notices), **extra)  # type: ignore[arg-type]


def test_badge_unknown_without_state_or_finished_build() -> None:
    assert badge_status(None) == "unknown"
    assert badge_status(PipelineState()) == "unknown"
    assert badge_status(state(notice(1, "BuildStarted"), last=None)) == "unknown"


def test_badge_passing_and_failing_follow_the_tracks() -> None:
    assert badge_status(state(notice(1, "BuildSucceeded"))) == "passing"
    assert badge_status(state(notice(1, "BuildFailed"), failures=1, last="failure")) == "failing"
    red = PipelineState(
        tracks={"ci": Track(last_status="success"), "lint": Track(last_status="failure", consecutive_failures=2)},
        notices=[notice(1, "BuildFailed"), notice(2, "BuildSucceeded")],
    )
    assert badge_status(red) == "failing"  # one red CI workflow makes the branch red
    assert badge_status(state(notice(1, "BuildFixed"), notice(2, "BuildStarted", "c2"))) == "passing"


def test_badge_flaky_when_the_last_finished_build_failed_on_flaky_tests_only() -> None:
    assert badge_status(state(notice(1, "BuildSucceeded"), notice(2, "BuildFlaky", "c2"))) == "flaky"
    assert badge_status(state(notice(1, "BuildFailed", flaky=True), failures=1, last="failure")) == "flaky"
    assert badge_status(state(notice(1, "BuildFlaky"), notice(2, "BuildStarted", "c2"))) == "flaky"
    assert badge_status(state(notice(1, "BuildFlaky"), notice(2, "BuildSucceeded", "c2"))) == "passing"


def test_badge_from_the_last_event_when_there_is_no_track() -> None:
    event = BuildEvent(repo="a/b", branch="main", commit="c1", status="failure")
    assert badge_status(PipelineState(last_event=event)) == "failing"
    assert badge_status(PipelineState(last_event=event.model_copy(update={"status": "success"}))) == "passing"
    assert badge_status(PipelineState(last_event=event.model_copy(update={"status": "cancelled"}))) == "unknown"


def _health(**builds: object) -> PipelineHealthState:
    return PipelineHealthState(builds=BuildHealth(**builds))  # type: ignore[arg-type]


def test_row_success_rate_counts_the_last_seven_utc_days_only() -> None:
    today = NOW.date()
    days = [
        DayTally(day=today - timedelta(days=7), successes=0, failures=9),  # eight days ago: outside
        DayTally(day=today - timedelta(days=6), successes=3, failures=1),
        DayTally(day=today, successes=2, failures=2),
    ]
    view = pipeline_view("acme/shop", "main", state(health=_health(days=days)), NOW)
    assert view.builds_7d == 8 and view.success_rate_7d == pytest.approx(5 / 8)
    assert view.failures_today == 2
    empty = pipeline_view("acme/shop", "main", state(health=_health(days=[DayTally(day=date(2020, 1, 1))])), NOW)
    assert empty.success_rate_7d is None and empty.builds_7d == 0 and empty.failures_today == 0


def test_row_average_and_trend_are_bounded() -> None:
    samples = [(NOW - timedelta(minutes=200 - i), float(i), "success" if i % 3 else "failure") for i in range(100)]
    view = pipeline_view("acme/shop", "main", state(health=_health(durations_all=samples)), NOW)
    assert view.avg_build_seconds == pytest.approx(49.5)
    assert len(view.trend) == MAX_TREND_POINTS
    assert view.trend[-1] == TrendPoint(at=samples[-1][0], seconds=99.0, status="failure")
    assert view.trend[0].seconds == 100 - MAX_TREND_POINTS
    only_green = pipeline_view("acme/shop", "main", state(health=_health(durations=[10.0, 20.0])), NOW)
    assert only_green.avg_build_seconds == 15.0 and only_green.trend == []


def test_row_recent_failures_newest_first_with_links() -> None:
    issue = DeliveryRecord(
        receiver="gh", channel="github", outcome="delivered", url="https://github.test/acme/shop/issues/7"
    )
    last = BuildEvent(repo="acme/shop", branch="main", commit="c3", status="failure", url="https://ci.test/3")
    st = state(
        notice(1, "BuildFailed", "c1", tracking_deliveries=[issue]),
        notice(2, "BuildSucceeded", "c2"),
        notice(3, "BuildFailed", "c3"),
        notice(4, "BuildFlaky", "c4"),
        failures=1,
        last="failure",
        last_event=last,
    )
    view = pipeline_view("acme/shop", "main", st, NOW)
    assert [(f.commit, f.flaky, f.url) for f in view.failures] == [
        ("c4", True, None),
        ("c3", False, "https://ci.test/3"),  # the last build's link
        ("c1", False, "https://github.test/acme/shop/issues/7"),  # the CI failure tracking issue
    ]
    assert view.last_commit == "c3" and view.last_url == "https://ci.test/3" and view.status == "flaky"


def test_row_without_state_is_unanswered() -> None:
    view = pipeline_view("acme/shop", "feature/x", None, NOW)
    assert view.id == "pipeline/acme/shop/feature/x" and not view.answered and view.status == "unknown"


def test_badge_svg_is_well_formed_and_escaped() -> None:
    svg = badge_svg("build", 'pass<ing>&"', "#4c1")
    root = ElementTree.fromstring(svg)
    assert root.tag.endswith("svg") and int(root.get("width")) > 0
    assert root.find("{http://www.w3.org/2000/svg}title").text == 'build: pass<ing>&"'
    assert "<ing>" not in svg
    assert int(ElementTree.fromstring(badge_svg("build", "failing", "#e05d44")).get("width")) > int(
        ElementTree.fromstring(badge_svg("build", "ok", "#4c1")).get("width")
    )


def test_page_escapes_what_ci_and_alerts_sent() -> None:
    row = PipelineView(
        id="pipeline/x/<b>",
        repo="acme/<script>alert(1)</script>",
        branch="main",
        status="failing",
        last_commit="c1",
        last_url="javascript:alert(1)",
        trend=[TrendPoint(at=NOW, seconds=1.0, status="x'><img src=x onerror=alert(1)>")],
    )
    failure = RecentFailure(repo="acme/x", branch="main", commit="c1", workflow="ci", url="data:text/html,<b>")
    incident = IncidentView(id="incident/1", title="<img src=x onerror=alert(2)>", level=2, age_seconds=90)
    html = render_page(Dashboard(generated_at=NOW, pipelines=[row], recent_failures=[failure], incidents=[incident]))
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html
    assert "javascript:" not in html and "data:text/html" not in html  # only http(s) links are linked
    points = re.search(r"data-points='([^']*)'", html)
    assert points and "\\u0027" in points.group(1) and "<" not in points.group(1)
    assert ">L2<" in html and ">1m30s<" in html


def test_page_without_a_view_says_why() -> None:
    html = render_page(None, "Temporal unavailable: connection refused")
    assert 'id="problem"' in html and "Temporal unavailable: connection refused" in html
    assert 'id="pipelines"' not in html
