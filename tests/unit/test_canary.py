"""Canary verdicts: readings against bounds, inconclusive never passes, Argo-style limits."""

from __future__ import annotations

import math

from workflows.environments import MetricCheck
from workflows.policy.canary import (
    Measurement,
    MetricReading,
    analysis_verdict,
    judge_measurement,
    judge_reading,
)

ERRORS = MetricCheck(name="errors", query="q", max=1.0)
SUCCESS = MetricCheck(name="success", query="q", min=0.99)


def m(outcome: str) -> Measurement:
    return Measurement(outcome=outcome)  # type: ignore[arg-type]


def test_bounds() -> None:
    assert judge_reading(ERRORS, MetricReading(name="errors", value=0.5)).outcome == "pass"
    assert judge_reading(ERRORS, MetricReading(name="errors", value=1.0)).outcome == "pass"
    over = judge_reading(ERRORS, MetricReading(name="errors", value=1.5))
    assert (over.outcome, over.detail, over.bound) == ("fail", "above 1", "<= 1")
    assert judge_reading(SUCCESS, MetricReading(name="success", value=0.5)).outcome == "fail"
    both = MetricCheck(name="b", query="q", min=1, max=2)
    assert [judge_reading(both, MetricReading(name="b", value=v)).outcome for v in (0.5, 1.5, 2.5)] == [
        "fail",
        "pass",
        "fail",
    ]


def test_errors_empty_and_nan_are_inconclusive_not_pass() -> None:
    for reading in (
        MetricReading(name="errors", error="query error: bad_data"),
        MetricReading(name="errors"),
        MetricReading(name="errors", value=math.nan),
        None,
    ):
        assert judge_reading(ERRORS, reading).outcome == "inconclusive"


def test_measurement_fail_beats_inconclusive_beats_pass() -> None:
    checks = [ERRORS, SUCCESS]
    assert (
        judge_measurement(
            checks, [MetricReading(name="errors", value=0), MetricReading(name="success", value=1)]
        ).outcome
        == "pass"
    )
    assert (
        judge_measurement(
            checks, [MetricReading(name="errors", value=0), MetricReading(name="success", error="empty result")]
        ).outcome
        == "inconclusive"
    )
    failed = judge_measurement(
        checks, [MetricReading(name="errors", value=5), MetricReading(name="success", error="empty result")]
    )
    assert failed.outcome == "fail"
    assert failed.summary() == ("errors=5 <= 1 (fail: above 1), success=n/a >= 0.99 (inconclusive: empty result)")
    assert judge_measurement(checks, []).outcome == "inconclusive"  # a missing reading is not a pass


def test_analysis_verdicts() -> None:
    assert analysis_verdict([], 3, 0).outcome == "running"
    assert analysis_verdict([m("pass"), m("pass")], 3, 0).outcome == "running"
    assert analysis_verdict([m("pass")] * 3, 3, 0).outcome == "passed"
    assert analysis_verdict([m("fail")], 3, 0).outcome == "failed"
    assert analysis_verdict([m("fail"), m("pass"), m("pass")], 3, 1).outcome == "passed"
    verdict = analysis_verdict([m("fail"), m("pass"), m("fail")], 3, 1)
    assert (verdict.outcome, verdict.failures) == ("failed", 2)
    assert analysis_verdict([m("pass"), m("inconclusive")], 3, 0).outcome == "inconclusive"
    # an inconclusive last measurement is never a pass, even at count
    assert analysis_verdict([m("pass"), m("pass"), m("inconclusive")], 3, 0).outcome == "inconclusive"
