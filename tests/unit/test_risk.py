"""Risk score, market hours and freeze windows: pure functions with the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflows.environments import EnvironmentConfig, environment_issues, environment_of, render_query
from workflows.policy.risk import (
    RiskInput,
    active_intervals,
    in_market_hours,
    is_friday_evening,
    score_risk,
)

SEOUL = ZoneInfo("Asia/Seoul")


def seoul(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SEOUL)


# 2024-06-03 is a Monday; 2024-06-07 a Friday; 2024-06-08 a Saturday.
MONDAY_NOON = seoul(2024, 6, 3, 12)
SUNDAY_NOON = seoul(2024, 6, 9, 12)


@pytest.mark.parametrize(
    "when,expected",
    [
        (seoul(2024, 6, 3, 8, 29), False),
        (seoul(2024, 6, 3, 8, 30), True),
        (seoul(2024, 6, 3, 16, 59), True),
        (seoul(2024, 6, 3, 17, 0), False),
        (seoul(2024, 6, 8, 10), False),  # Saturday
        (datetime(2024, 6, 3, 1, 0, tzinfo=UTC), True),  # 10:00 in Seoul
    ],
)
def test_market_hours_are_seoul_weekdays(when: datetime, expected: bool) -> None:
    assert in_market_hours(when) is expected


def test_friday_evening() -> None:
    assert is_friday_evening(seoul(2024, 6, 7, 18))
    assert not is_friday_evening(seoul(2024, 6, 7, 16))
    assert not is_friday_evening(seoul(2024, 6, 6, 18))


def test_quiet_staging_deploy_is_low_and_explained() -> None:
    risk = score_risk(RiskInput(env="staging", last_deploy_at=SUNDAY_NOON - timedelta(days=2)), SUNDAY_NOON)
    assert risk.score == 1 and risk.level == "low"
    assert [(f.name, f.points) for f in risk.factors] == [("environment", 1)]
    assert "+1 environment: staging is pre-production" in risk.explain()


def test_every_factor_listed_and_capped_at_ten() -> None:
    risk = score_risk(
        RiskInput(
            env="prod",
            production=True,
            change_size=5000,
            recent_pipeline_failures=10,
            recent_rollbacks=5,
            last_deploy_at=None,
        ),
        MONDAY_NOON,
    )
    names = [f.name for f in risk.factors]
    assert names == ["environment", "change size", "timing", "pipeline", "rollbacks", "last deploy"]
    assert sum(f.points for f in risk.factors) == 3 + 2 + 2 + 2 + 2 + 0.5
    assert risk.score == 10 and risk.level == "high"


def test_change_size_only_when_known() -> None:
    base = dict(env="dev", last_deploy_at=SUNDAY_NOON - timedelta(days=1))
    assert score_risk(RiskInput(**base), SUNDAY_NOON).score == 0
    assert score_risk(RiskInput(**base, change_size=400), SUNDAY_NOON).score == 1
    assert score_risk(RiskInput(**base, change_size=50), SUNDAY_NOON).score == 0


def test_time_since_last_deploy() -> None:
    stale = score_risk(RiskInput(env="dev", last_deploy_at=SUNDAY_NOON - timedelta(days=45)), SUNDAY_NOON)
    assert [(f.name, f.points) for f in stale.factors] == [("last deploy", 1)]
    busy = score_risk(RiskInput(env="dev", last_deploy_at=SUNDAY_NOON - timedelta(minutes=10)), SUNDAY_NOON)
    assert busy.factors[0].detail == "another 10 min ago"


def test_friday_evening_counts_outside_market_hours() -> None:
    risk = score_risk(RiskInput(env="dev", last_deploy_at=seoul(2024, 6, 6, 12)), seoul(2024, 6, 7, 19))
    assert [(f.name, f.points) for f in risk.factors] == [("timing", 1.5)]


@given(
    env=st.sampled_from(["prod", "staging", "dev"]),
    size=st.none() | st.integers(0, 10**6),
    failures=st.integers(0, 100),
    rollbacks=st.integers(0, 100),
    hours=st.integers(0, 24 * 7 * 8),
    last=st.none() | st.integers(0, 24 * 400),
)
def test_score_is_always_within_0_and_10(
    env: str, size: int | None, failures: int, rollbacks: int, hours: int, last: int | None
) -> None:
    now = MONDAY_NOON + timedelta(hours=hours)
    risk = score_risk(
        RiskInput(
            env=env,
            production=env == "prod",
            change_size=size,
            recent_pipeline_failures=failures,
            recent_rollbacks=rollbacks,
            last_deploy_at=None if last is None else now - timedelta(hours=last),
        ),
        now,
    )
    assert 0 <= risk.score <= 10
    assert risk.score == round(min(10, sum(f.points for f in risk.factors)), 1)


# ---------------------------------------------------------------- freeze windows

MARKET = {
    "name": "market-hours",
    "time_intervals": [
        {
            "weekdays": ["monday:friday"],
            "times": [{"start_time": "08:30", "end_time": "17:00"}],
            "location": "Asia/Seoul",
        }
    ],
}
YEAR_END = {"name": "year-end", "time_intervals": [{"months": ["december"], "days_of_month": ["20:-1"]}]}


def test_freeze_windows_use_alertmanager_time_intervals() -> None:
    intervals = [MARKET, YEAR_END]
    assert active_intervals(intervals, ["market-hours"], MONDAY_NOON) == ["market-hours"]
    assert active_intervals(intervals, ["market-hours"], SUNDAY_NOON) == []
    assert active_intervals(intervals, ["year-end"], datetime(2024, 12, 31, 23, tzinfo=UTC)) == ["year-end"]
    assert active_intervals(intervals, ["year-end"], datetime(2024, 12, 19, tzinfo=UTC)) == []
    assert active_intervals(intervals, ["market-hours", "year-end"], MONDAY_NOON) == ["market-hours"]
    assert active_intervals(intervals, ["unknown"], MONDAY_NOON) == []


# ---------------------------------------------------------------- environment config


def test_environment_config_defaults_and_validation() -> None:
    env = environment_of({}, "prod")
    assert env.required_approvals == 1 and env.four_eyes and env.concurrency == "wait"
    assert env.is_production("prod") and not env.is_production("qa")
    assert env.canary.weights() == [100]
    full = EnvironmentConfig.model_validate(
        {
            "approvers": ["a", "b"],
            "canary": {
                "steps": [5, 25],
                "analysis": {"prometheus_url": "http://p:9090", "metrics": [{"name": "e", "query": "x", "max": 1}]},
            },
        }
    )
    assert full.canary.weights() == [5, 25, 100]
    for bad in (
        {"approvers": ["a"], "required_approvals": 2},
        {"canary": {"steps": [50, 10]}},
        {"canary": {"steps": [0]}},
        {"approval_timeout": "soon"},
        {"concurrency": "maybe"},
        {"canary": {"analysis": {"prometheus_url": "x", "metrics": [{"name": "e", "query": "x"}]}}},
        {"surprise": 1},
    ):
        with pytest.raises(ValueError):
            EnvironmentConfig.model_validate(bad)


def test_environment_references_are_checked() -> None:
    issues = environment_issues({"prod": {"receiver": "nobody", "freeze": ["never"]}}, {"default"}, {"market"})
    assert issues == [
        ("environments.prod.receiver", "unknown receiver 'nobody'"),
        ("environments.prod.freeze[0]", "unknown time interval 'never'"),
    ]


def test_query_templates_fill_only_known_names() -> None:
    query = 'sum(rate(http_requests_total{service="{service}",env="{env}",code=~"5.."}[1m]))'
    assert render_query(query, service="api", env="prod", version="v1") == (
        'sum(rate(http_requests_total{service="api",env="prod",code=~"5.."}[1m]))'
    )
