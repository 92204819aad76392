"""The pipeline flow's one call (workflows/policy/pipeline_health.py): builds from JUnit fixtures, end to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from starters.reports import parse_junit
from workflows.models import Message
from workflows.pipeline.health_models import PipelineHealthState
from workflows.pipeline.models import BuildEvent, CoverageSummary, Track
from workflows.policy.builds import Classified, build_message
from workflows.policy.pipeline_health import Assessment, apply, assess

DATA = Path(__file__).parent / "data" / "flaky"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RECONNECT = "tests.test_feed::test_reconnect"


class Pipeline:
    def __init__(self) -> None:
        self.state = PipelineHealthState()
        self.n = 0

    def build(
        self, status: str, commit: str, junit: str | None = None, coverage: float | None = None, log: str = ""
    ) -> tuple[BuildEvent, Assessment]:
        self.n += 1
        event = BuildEvent.model_validate(
            {
                "repo": "acme/trader",
                "branch": "main",
                "commit": commit,
                "status": status,
                "url": f"https://ci/runs/{self.n}",
                "tests": parse_junit([DATA / junit]) if junit else None,
                "coverage": CoverageSummary(format="cobertura", line_percent=coverage) if coverage else None,
                "duration_seconds": 100.0,
            }
        )
        result = assess(self.state, event, now=T0 + timedelta(hours=self.n), run=event.url or "", log_tail=log)
        self.state = result.state
        return event, result


def _message(event: BuildEvent, result: Assessment) -> Message:
    alert = "BuildFailed" if event.status == "failure" else "BuildSucceeded"
    return apply(build_message(event, Classified(alertname=alert, notify=True, track=Track()), "pipeline/x"), result)


def test_flaky_then_info_not_a_page() -> None:
    p = Pipeline()
    _, first = p.build("failure", "aaaaaaa1", "run1-fail.xml")
    assert first.flakiness is not None and first.flakiness.verdict == "failed"
    assert first.signature is not None and first.signature.category == "timeout/infra"
    assert first.labels["category"] == "timeout/infra" and "flaky" not in first.labels
    _, second = p.build("success", "aaaaaaa1", "run2-pass.xml")
    assert [n.kind for n in second.notices] == ["detected"]
    event, third = p.build("failure", "bbbbbbb2", "run3-fail-reconnect.xml")
    assert third.severity == "info" and third.labels == {"flaky": "true", "severity": "info"}
    assert third.signature is None and third.alerts == []
    message = _message(event, third)
    assert message.severity == "info"
    assert message.labels["flaky"] == "true" and message.labels["severity"] == "info"
    assert f"Only known-flaky tests failed: {RECONNECT}." in message.text
    # The flaky build is neither a failure nor a success in the trends.
    assert p.state.builds.consecutive_failures == 0


def test_three_real_failures_in_a_row_are_critical() -> None:
    p = Pipeline()
    results = [p.build("failure", f"c{i:07d}", "broken-cancel.xml")[1] for i in range(3)]
    assert [r.severity for r in results] == [None, None, "critical"]
    assert [a.alertname for a in results[2].alerts] == ["BuildFailingStreak"]
    assert results[2].labels["severity"] == "critical"
    assert "⚠ 3 failed builds in a row" in results[2].lines


def test_coverage_delta_in_the_message_and_a_log_signature() -> None:
    p = Pipeline()
    p.build("success", "a0000001", coverage=88.0)
    event, result = p.build("failure", "a0000002", coverage=80.5, log="npm ERR! code ERESOLVE\n")
    assert result.signature is not None and result.signature.summary == "build: ERESOLVE"
    assert [a.alertname for a in result.alerts] == ["CoverageDropped"]
    message = _message(event, result)
    assert [f.value for f in message.fields if f.title == "Coverage"] == ["80.5% (-7.5 vs 88.0%)"]
    assert "Failure (dependency): build: ERESOLVE" in message.text
    assert message.severity == "error"  # no override


def test_started_changes_nothing() -> None:
    p = Pipeline()
    before = p.state
    _, result = p.build("started", "a0000001")
    assert result.state is before and result.trends is None and result.lines == []
