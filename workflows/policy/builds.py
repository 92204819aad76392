"""CI pipeline events: classification, routing labels and the message.

``classify`` is the whole state machine of a pipeline track (one per CI
workflow name on a branch): failure → ``BuildFailed``; the first success after
failures → ``BuildFixed``; cancelled → ``BuildCancelled``; a plain success →
``BuildSucceeded`` and ``started`` → ``BuildStarted`` (quiet by default). A run that
timed out is a failure (``BuildFailed`` with ``status="timed_out"``). A failed run whose
only failing tests are known-flaky is ``BuildFlaky`` (see :func:`flaky_build`): severity
``info``, and the track stays as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from pydantic import BaseModel

from workflows.models import Link, Message, MessageField, Severity
from workflows.pipeline.models import BuildEvent, Track

__all__ = [
    "pipeline_status",
    "Track",
    "Classified",
    "PipelineSettings",
    "classify",
    "flaky_build",
    "build_labels",
    "build_message",
    "format_duration_s",
]

_SEVERITY: dict[str, Severity] = {
    "failure": "error",
    "timed_out": "error",
    "cancelled": "warning",
    "success": "info",
    "started": "info",
}


class PipelineSettings(Protocol):
    """What :func:`classify` reads from the config's ``pipelines`` section (``workflows.config.PipelinesConfig``)."""

    @property
    def notify_success(self) -> bool: ...
    @property
    def notify_started(self) -> bool: ...


class Classified(BaseModel):
    """The outcome of one event against a track."""

    alertname: str
    notify: bool
    track: Track
    previous_failures: int = 0


def classify(track: Track, event: BuildEvent, settings: PipelineSettings) -> Classified:
    """Apply one event to a track.

    Args:
        track: the state before the event.
        event: the CI event.
        settings: the config's ``pipelines`` section.

    Returns:
        The alert name, whether it notifies, and the new track state.
    """
    new = track.model_copy()
    new.last_commit = event.commit
    previous = track.consecutive_failures
    if event.status == "started":
        return Classified(alertname="BuildStarted", notify=settings.notify_started, track=new)
    new.last_status = event.status
    if event.status in ("failure", "timed_out"):
        new.consecutive_failures += 1
        if new.failing_since is None:
            new.failing_since = event.commit
        return Classified(alertname="BuildFailed", notify=True, track=new, previous_failures=previous)
    if event.status == "cancelled":
        return Classified(alertname="BuildCancelled", notify=True, track=new, previous_failures=previous)
    new.consecutive_failures = 0
    new.failing_since = None
    if previous > 0:
        return Classified(alertname="BuildFixed", notify=True, track=new, previous_failures=previous)
    return Classified(alertname="BuildSucceeded", notify=settings.notify_success, track=new)


def flaky_build(track: Track, event: BuildEvent) -> Classified:
    """A failed run whose failures are all known-flaky tests: reported as ``info``, the track unchanged."""
    new = track.model_copy(update={"last_commit": event.commit})
    return Classified(alertname="BuildFlaky", notify=True, track=new, previous_failures=track.consecutive_failures)


def build_labels(event: BuildEvent, alertname: str) -> dict[str, str]:
    """The routing labels of a CI event."""
    labels = {
        "alertname": alertname,
        "kind": "build",
        "repo": event.repo,
        "branch": event.branch,
        "workflow": event.workflow,
        "status": event.status,
        "severity": _SEVERITY[event.status],
        "service": event.repo.rsplit("/", 1)[-1],
    }
    if event.author:
        labels["author"] = event.author
    # Identify the build for channels that act on it (GitHub commit status, sticky PR comment).
    labels["commit"] = event.commit
    if event.pr is not None:
        labels["pr"] = str(event.pr)
    if event.url:
        labels["url"] = event.url
    return labels


def format_duration_s(seconds: float) -> str:
    """``754`` → ``12m 34s``."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


_TITLES = {
    "BuildFailed": "Build failed",
    "BuildFixed": "Build fixed",
    "BuildCancelled": "Build cancelled",
    "BuildSucceeded": "Build succeeded",
    "BuildStarted": "Build started",
    "BuildFlaky": "Build failed on flaky tests",
}
_MSG_SEVERITY: dict[str, Severity] = {
    "BuildFailed": "error",
    "BuildFixed": "success",
    "BuildCancelled": "warning",
    "BuildSucceeded": "success",
    "BuildStarted": "info",
    "BuildFlaky": "info",
}


def build_message(event: BuildEvent, result: Classified, source: str) -> Message:
    """Render a CI event as a channel-neutral message."""
    name = "Build timed out" if event.status == "timed_out" and result.alertname == "BuildFailed" else None
    title = f"{name or _TITLES[result.alertname]}: {event.repo}@{event.branch} ({event.workflow})"
    lines: list[str] = []
    if result.alertname == "BuildFailed" and result.track.consecutive_failures > 1:
        lines.append(
            f"Failing for {result.track.consecutive_failures} builds in a row "
            f"(since {(result.track.failing_since or '')[:7]})."
        )
    if result.alertname == "BuildFixed":
        lines.append(f"Green again after {result.previous_failures} failed build(s).")
    fields = [
        MessageField(title="Repository", value=event.repo),
        MessageField(title="Branch", value=event.branch),
        MessageField(title="Commit", value=event.commit[:7]),
        MessageField(title="Status", value=event.status),
    ]
    if event.author:
        fields.append(MessageField(title="Author", value=event.author))
    if event.duration_seconds is not None:
        fields.append(MessageField(title="Duration", value=format_duration_s(event.duration_seconds)))
    if event.pr is not None:
        fields.append(MessageField(title="Pull request", value=f"#{event.pr}"))
    if event.tests is not None:
        t = event.tests
        passed = t.total - t.failed - t.errors - t.skipped
        fields.append(
            MessageField(title="Tests", value=f"{passed} passed, {t.failed + t.errors} failed, {t.skipped} skipped")
        )
        for failure in t.failures[:5]:
            name = f"{failure.classname}.{failure.name}" if failure.classname else failure.name
            lines.append(f"✗ {name}" + (f": {failure.message[:200]}" if failure.message else ""))
    if event.coverage is not None:
        fields.append(MessageField(title="Coverage", value=f"{event.coverage.line_percent:.1f}%"))
    for scan in event.security:
        fields.append(
            MessageField(
                title=f"Security ({scan.tool})", value=f"{scan.error} error, {scan.warning} warning, {scan.note} note"
            )
        )
        lines.extend(f"⚠ {item}" for item in scan.top[:3])
    links = [Link(text="View run", url=event.url)] if event.url else []
    return Message(
        title=title,
        text="\n".join(lines),
        severity=_MSG_SEVERITY[result.alertname],
        fields=fields,
        links=links,
        labels=build_labels(event, result.alertname),
        source=source,
    )


def pipeline_status(tracks: Iterable[Track]) -> str:
    """``TocsinStatus`` of a pipeline: ``failing`` when a track is red, ``passing`` when one has finished
    a run and none is red, ``running`` while only ``started`` events have arrived."""
    known = list(tracks)
    if any(t.consecutive_failures for t in known):
        return "failing"
    if any(t.last_status is not None for t in known):
        return "passing"
    return "running"
