"""Deployment risk score and freeze windows: pure functions, clock passed in.

The score is 0–10 and explainable: every factor that contributed is listed
with its points and why. Factors:

- **environment** — production 3, staging-like 1, others 0;
- **change size** — lines changed, when known (>1000: 2, >300: 1);
- **timing** — Seoul market hours (08:30–17:00 Asia/Seoul, weekdays): 2;
  Friday evening (after 17:00 Seoul): 1.5;
- **pipeline** — the service's CI failing now: 0.5 per consecutive failure, up to 2;
- **rollbacks** — the service's rollbacks in the last 7 days: 1 each, up to 2;
- **last deploy** — first deploy here: 0.5; none for 30+ days: 1;
  another less than an hour ago: 0.5.

Freeze windows reuse the config's Alertmanager-style ``time_intervals``
(:func:`active_intervals`), evaluated by :mod:`workflows.policy.timeintervals`
exactly as routes' mute and active time intervals are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from workflows.policy import timeintervals

__all__ = [
    "RiskFactor",
    "RiskInput",
    "RiskScore",
    "score_risk",
    "in_market_hours",
    "is_friday_evening",
    "active_intervals",
    "MARKET_TZ",
]

MARKET_TZ = "Asia/Seoul"
MARKET_OPEN = time(8, 30)
MARKET_CLOSE = time(17, 0)
STAGING_NAMES = ("staging", "stage", "stg", "preprod", "pre-prod", "uat")


class RiskFactor(BaseModel):
    """One contribution to the score."""

    name: str
    points: float
    detail: str


class RiskInput(BaseModel):
    """What the score is computed from (gathered before approval)."""

    env: str
    production: bool = False
    change_size: int | None = None
    """Lines changed, when known."""
    recent_pipeline_failures: int = 0
    """Consecutive CI failures of the service's pipelines right now."""
    recent_rollbacks: int = 0
    """Rollbacks of the service in the last 7 days."""
    last_deploy_at: datetime | None = None
    """When the service last finished deploying to this environment."""


class RiskScore(BaseModel):
    """A 0–10 score with its reasons."""

    score: float = 0.0
    level: str = "low"
    """``low`` (<4), ``medium`` (<7) or ``high``."""
    factors: list[RiskFactor] = Field(default_factory=list)

    def explain(self) -> str:
        """One line per factor, for messages."""
        if not self.factors:
            return "no risk factors"
        return "\n".join(f"+{f.points:g} {f.name}: {f.detail}" for f in self.factors)


def in_market_hours(when: datetime) -> bool:
    """Weekdays 08:30–17:00 Asia/Seoul."""
    local = when.astimezone(ZoneInfo(MARKET_TZ))
    return local.weekday() < 5 and MARKET_OPEN <= local.time() < MARKET_CLOSE


def is_friday_evening(when: datetime) -> bool:
    """Friday from 17:00 Asia/Seoul to midnight."""
    local = when.astimezone(ZoneInfo(MARKET_TZ))
    return local.weekday() == 4 and local.time() >= MARKET_CLOSE


def score_risk(data: RiskInput, now: datetime) -> RiskScore:
    """Score a deployment.

    Args:
        data: the facts about the deployment.
        now: the current time (``workflow.now()`` in a workflow).

    Returns:
        The score (0–10, one decimal), its level and every contributing factor.
    """
    factors: list[RiskFactor] = []
    env = data.env.lower()
    if data.production:
        factors.append(RiskFactor(name="environment", points=3, detail=f"{data.env} is production"))
    elif env in STAGING_NAMES:
        factors.append(RiskFactor(name="environment", points=1, detail=f"{data.env} is pre-production"))
    if data.change_size is not None:
        if data.change_size > 1000:
            factors.append(RiskFactor(name="change size", points=2, detail=f"{data.change_size} lines changed"))
        elif data.change_size > 300:
            factors.append(RiskFactor(name="change size", points=1, detail=f"{data.change_size} lines changed"))
    if in_market_hours(now):
        factors.append(RiskFactor(name="timing", points=2, detail="during market hours (08:30-17:00 Asia/Seoul)"))
    elif is_friday_evening(now):
        factors.append(RiskFactor(name="timing", points=1.5, detail="Friday evening"))
    if data.recent_pipeline_failures > 0:
        points = min(2.0, 0.5 * data.recent_pipeline_failures)
        factors.append(
            RiskFactor(
                name="pipeline", points=points, detail=f"{data.recent_pipeline_failures} consecutive CI failure(s)"
            )
        )
    if data.recent_rollbacks > 0:
        factors.append(
            RiskFactor(
                name="rollbacks",
                points=float(min(2, data.recent_rollbacks)),
                detail=f"{data.recent_rollbacks} rollback(s) in the last 7 days",
            )
        )
    if data.last_deploy_at is None:
        factors.append(RiskFactor(name="last deploy", points=0.5, detail=f"first deploy to {data.env}"))
    else:
        since = now - data.last_deploy_at
        if since >= timedelta(days=30):
            factors.append(RiskFactor(name="last deploy", points=1, detail=f"none for {since.days} days"))
        elif since < timedelta(hours=1):
            minutes = max(0, int(since.total_seconds() // 60))
            factors.append(RiskFactor(name="last deploy", points=0.5, detail=f"another {minutes} min ago"))
    score = round(min(10.0, sum(f.points for f in factors)), 1)
    level = "low" if score < 4 else ("medium" if score < 7 else "high")
    return RiskScore(score=score, level=level, factors=factors)


# ---------------------------------------------------------------- freeze windows


def active_intervals(time_intervals: Iterable[Any], names: Iterable[str], when: datetime) -> list[str]:
    """Which of the named time intervals contain ``when`` (Alertmanager semantics).

    Each interval is evaluated by :func:`workflows.policy.timeintervals.active`,
    the evaluator routes use for ``mute_time_intervals``.

    Args:
        time_intervals: the config's ``time_intervals`` entries (models or
            mappings with ``name`` and ``time_intervals``).
        names: the intervals to check (e.g. an environment's ``freeze``).
        when: the instant to test.

    Returns:
        The names, among ``names``, of intervals active at ``when``, in the
        order of ``time_intervals`` and without repeats; an unknown name is
        never active.

    Raises:
        TimeIntervalError: a checked interval has an invalid spec (a validated
            config never has one).
    """
    wanted = list(names)
    found: list[str] = []
    for interval in time_intervals:
        name = interval.get("name") if isinstance(interval, Mapping) else getattr(interval, "name", None)
        if name in wanted and name not in found and timeintervals.active(interval, when):
            found.append(name)
    return found
