"""One call per CI event for the pipeline flow: flaky tests, trends and the failure signature together.

:func:`assess` runs, in order, :func:`workflows.policy.flaky.observe` and ``classify`` (when the event carries
per-test outcomes), :func:`workflows.policy.trends.record_build`, and, for a real failure,
:func:`workflows.policy.failure_patterns.signature`; :func:`apply` puts the result into the build's message
and :func:`routing_labels` into its routing labels.

A **flaky build** (failed, and only known-flaky or quarantined tests failed) is recorded in the trends as
neither a failure nor a success (like a cancelled run: it says nothing about the code), so it neither extends
the failing streak nor pages; its message gets ``flaky="true"`` and severity ``info``. Otherwise a failing
streak at the critical threshold raises the build's severity to ``critical``.

Pure: ``now`` and the run id are passed in; nothing is changed in place.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from workflows.models import Message, Severity
from workflows.pipeline.health_models import PipelineHealthConfig, PipelineHealthState
from workflows.pipeline.models import BuildEvent
from workflows.policy.failure_patterns import Signature, signature
from workflows.policy.flaky import BuildFlakiness, FlakyNotice, classify, observe
from workflows.policy.trends import FAILED_STATUSES, Finding, TrendResult, record_build, trend_fields

__all__ = ["Assessment", "assess", "apply", "routing_labels"]


class Assessment(BaseModel):
    """What the pipeline's memory says about one event."""

    state: PipelineHealthState
    flakiness: BuildFlakiness | None = None
    """None when the event carried no per-test outcomes."""
    trends: TrendResult | None = None
    """None for a ``started`` event."""
    signature: Signature | None = None
    """For a failed (``failure``/``timed_out``), not flaky, build with a failing test, a log tail or a step."""
    notices: list[FlakyNotice] = Field(default_factory=list)
    """Tests newly flaky, quarantines released or expired: tell the owner (``FlakyNotice.owner``)."""
    alerts: list[Finding] = Field(default_factory=list)
    """Findings that start to hold with this build: each is worth its own alert (``Finding.alertname``)."""
    severity: Severity | None = None
    """The build message's severity instead of the status's: ``info`` when flaky, ``critical`` on a streak."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Routing labels to add: ``flaky``, ``severity``, ``category``, ``signature``."""
    lines: list[str] = Field(default_factory=list)
    """Lines for the message text."""


def assess(
    state: PipelineHealthState,
    event: BuildEvent,
    *,
    now: datetime,
    run: str,
    config: PipelineHealthConfig | None = None,
    log_tail: str = "",
    step: str | None = None,
) -> Assessment:
    """Adds one CI event to the pipeline's health memory.

    Args:
        state: The pipeline's health state before the event.
        event: The event (its ``tests.outcomes``, ``duration_seconds``, ``coverage``).
        now: ``workflow.now()``.
        run: The run's id or link (``event.url``, else the event's sequence number).
        config: The ``pipelines.health`` snapshot (defaults: :class:`PipelineHealthConfig`).
        log_tail: The end of the run's log, for a failure without failing tests.
        step: The failing step's name, when known.

    Returns:
        The new state and everything the message, the labels and further notifications need.
    """
    config = config or PipelineHealthConfig()
    if event.status == "started":
        return Assessment(state=state)
    outcomes = event.tests.outcomes if event.tests is not None else []
    tests, flakiness, notices = state.tests, None, []
    if outcomes:
        observed = observe(tests, outcomes, commit=event.commit, run=run, now=now, config=config.flaky)
        tests, notices = observed.history, observed.notices
        flakiness = classify(tests, outcomes, config.flaky)
    flaky_build = event.status in FAILED_STATUSES and flakiness is not None and flakiness.verdict == "flaky"
    trends = record_build(
        state.builds,
        status="flaky" if flaky_build else event.status,
        commit=event.commit,
        now=now,
        duration_seconds=event.duration_seconds,
        coverage_percent=event.coverage.line_percent if event.coverage is not None else None,
        config=config.trends,
    )
    evidence = any(o.failed for o in outcomes) or bool(log_tail.strip()) or bool(step)
    # Without a failing test, a log or a step there is nothing to tell this failure from any other.
    sig = (
        signature(outcomes, log_tail, step)
        if event.status in FAILED_STATUSES and not flaky_build and evidence
        else None
    )
    labels: dict[str, str] = {}
    severity: Severity | None = None
    lines: list[str] = []
    if flaky_build and flakiness is not None:
        labels.update(flakiness.labels)
        severity = "info"
    elif trends.severity == "critical" and event.status in FAILED_STATUSES:
        severity = "critical"
    if severity is not None:
        labels["severity"] = severity
    if flakiness is not None and flakiness.text:
        lines.append(flakiness.text)
    if sig is not None:
        labels.update({"category": sig.category, "signature": sig.key})
        lines.append(f"Failure ({sig.category}): {sig.summary}")
    lines.extend(f"⚠ {finding.text}" for finding in trends.findings)
    lines.extend(notice.text for notice in notices)
    return Assessment(
        state=PipelineHealthState(tests=tests, builds=trends.health),
        flakiness=flakiness,
        trends=trends,
        signature=sig,
        notices=notices,
        alerts=[f for f in trends.findings if f.new],
        severity=severity,
        labels=labels,
        lines=lines,
    )


def routing_labels(labels: dict[str, str], assessment: Assessment) -> dict[str, str]:
    """The build's routing labels with the assessment's (``flaky``, ``severity``, ``category``, ``signature``)."""
    return {**labels, **assessment.labels}


def apply(message: Message, assessment: Assessment) -> Message:
    """The build's message with the assessment: severity, labels, lines, and the trend fields.

    A trend field replaces the message's field of the same title (``Coverage`` gains its delta).
    """
    extra = trend_fields(assessment.trends) if assessment.trends is not None else []
    titles = {f.title for f in extra}
    text = "\n".join([t for t in (message.text, *assessment.lines) if t])
    update: dict[str, object] = {
        "text": text,
        "fields": [f for f in message.fields if f.title not in titles] + extra,
        "labels": routing_labels(message.labels, assessment),
    }
    if assessment.severity is not None:
        update["severity"] = assessment.severity
    return message.model_copy(update=update)
