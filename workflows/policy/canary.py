"""Canary analysis verdicts: pure functions over metric readings.

One *measurement* is one round of Prometheus instant queries, one reading per
configured metric. A reading that errored, came back empty or is NaN is
**inconclusive** — never a pass. A measurement fails when any reading breaks
its bound; it is inconclusive when none failed but one could not be judged.

The analysis of a step (Argo Rollouts semantics) fails as soon as more than
``failure_limit`` measurements failed, is inconclusive as soon as one
measurement is, and passes after ``count`` measurements otherwise.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

from pydantic import BaseModel, Field

__all__ = [
    "MetricBounds",
    "MetricReading",
    "MetricVerdict",
    "Measurement",
    "AnalysisVerdict",
    "judge_reading",
    "judge_measurement",
    "analysis_verdict",
]

Outcome = Literal["pass", "fail", "inconclusive"]


class MetricBounds(Protocol):
    """What a verdict reads from a metric check (``workflows.environments.MetricCheck``)."""

    @property
    def name(self) -> str: ...
    @property
    def max(self) -> float | None: ...
    @property
    def min(self) -> float | None: ...


class MetricReading(BaseModel):
    """The value of one metric's query (or why there is none)."""

    name: str
    value: float | None = None
    error: str | None = None
    """Query error, HTTP failure, or "empty result"."""


class MetricVerdict(BaseModel):
    """One reading judged against its bound."""

    name: str
    value: float | None = None
    bound: str = ""
    """E.g. ``<= 0.5``."""
    outcome: Outcome
    detail: str = ""


class Measurement(BaseModel):
    """One round of readings and their verdicts."""

    outcome: Outcome
    verdicts: list[MetricVerdict] = Field(default_factory=list)

    def summary(self) -> str:
        """``name=value (outcome)`` per metric, comma-separated."""
        parts = []
        for v in self.verdicts:
            value = "n/a" if v.value is None else f"{v.value:g}"
            parts.append(f"{v.name}={value} {v.bound} ({v.outcome}{': ' + v.detail if v.detail else ''})")
        return ", ".join(parts)


class AnalysisVerdict(BaseModel):
    """Where a step's analysis stands."""

    outcome: Literal["running", "passed", "failed", "inconclusive"]
    measurements: int = 0
    failures: int = 0
    detail: str = ""


def _bound(check: MetricBounds) -> str:
    parts = []
    if check.min is not None:
        parts.append(f">= {check.min:g}")
    if check.max is not None:
        parts.append(f"<= {check.max:g}")
    return " and ".join(parts)


def judge_reading(check: MetricBounds, reading: MetricReading | None) -> MetricVerdict:
    """Judge one reading against its check's ``min``/``max``."""
    bound = _bound(check)
    if reading is None:
        return MetricVerdict(name=check.name, bound=bound, outcome="inconclusive", detail="no reading")
    if reading.error is not None or reading.value is None:
        return MetricVerdict(
            name=check.name, bound=bound, outcome="inconclusive", detail=reading.error or "empty result"
        )
    value = reading.value
    if math.isnan(value):
        return MetricVerdict(name=check.name, value=None, bound=bound, outcome="inconclusive", detail="NaN")
    if check.max is not None and value > check.max:
        return MetricVerdict(name=check.name, value=value, bound=bound, outcome="fail", detail=f"above {check.max:g}")
    if check.min is not None and value < check.min:
        return MetricVerdict(name=check.name, value=value, bound=bound, outcome="fail", detail=f"below {check.min:g}")
    return MetricVerdict(name=check.name, value=value, bound=bound, outcome="pass")


def judge_measurement(checks: list[MetricBounds], readings: list[MetricReading]) -> Measurement:
    """Judge one round: fail if any metric fails, else inconclusive if any is, else pass."""
    by_name = {r.name: r for r in readings}
    verdicts = [judge_reading(check, by_name.get(check.name)) for check in checks]
    outcomes = {v.outcome for v in verdicts}
    outcome: Outcome = "fail" if "fail" in outcomes else ("inconclusive" if "inconclusive" in outcomes else "pass")
    return Measurement(outcome=outcome, verdicts=verdicts)


def analysis_verdict(measurements: list[Measurement], count: int, failure_limit: int) -> AnalysisVerdict:
    """The state of a step's analysis after some measurements.

    Args:
        measurements: this step's measurements so far, oldest first.
        count: measurements a passing step needs.
        failure_limit: failed measurements tolerated.

    Returns:
        ``failed`` once failures exceed the limit; ``inconclusive`` when the
        latest measurement is; ``passed`` after ``count``; else ``running``.
    """
    failures = sum(1 for m in measurements if m.outcome == "fail")
    done = len(measurements)
    if failures > failure_limit:
        last_fail = next(m for m in reversed(measurements) if m.outcome == "fail")
        return AnalysisVerdict(
            outcome="failed",
            measurements=done,
            failures=failures,
            detail=f"{failures} of {done} measurements failed (limit {failure_limit}): {last_fail.summary()}",
        )
    if measurements and measurements[-1].outcome == "inconclusive":
        return AnalysisVerdict(
            outcome="inconclusive", measurements=done, failures=failures, detail=measurements[-1].summary()
        )
    if done >= count:
        return AnalysisVerdict(
            outcome="passed",
            measurements=done,
            failures=failures,
            detail=f"{done - failures} of {done} measurements passed",
        )
    return AnalysisVerdict(outcome="running", measurements=done, failures=failures)
