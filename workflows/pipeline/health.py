"""The pipeline's memory at work (issue 14): what one CI event does beyond its own message.

Mixed into :class:`~workflows.pipeline.workflow.PipelineWorkflow`; runs with the ``pipeline-health``
patch marker. For each event, :meth:`PipelineHealth._assess` adds it to the bounded health state
(flaky tests, trends, failure signature: :mod:`workflows.policy.pipeline_health`); after the event's
own message, :meth:`PipelineHealth._follow_up` starts, beside the event loop (never holding up the
next event):

* the **CI failure tracking issue** of a watched branch (``pipelines.watch``, ``pipelines.tracking``):
  a failed, cancelled or timed-out run opens one GitHub issue per pipeline ("CI failure alerts:
  <repo>@<branch>", dedup key ``ci/<repo>/<branch>``) or comments on it; the next success, once no
  CI workflow of the branch is red, closes it. It goes to the GitHub channels of the receivers the
  event routes to (and of those that got the open issue), so a route decides where it lives;
* an **alert per new finding** (``BuildFailureRate``, ``CoverageDropped``,
  ``BuildPerformanceRegression``…), routed by its labels;
* **flaky-test notices** (detected, quarantine released or expired; ``owner`` label: who quarantined);
* **serious security findings** (SARIF level error or CVSS ≥ 7) not reported before: one critical
  message labelled ``kind="security"``;
* the **escalation ladder** (``pipelines.escalation``): a failure on a watched branch raises the alert
  ``BuildFailing`` (an incident on that policy, acknowledged like any other); the next green build
  resolves it;
* the **failure signature** to the cross-pipeline grouping entity (``report/failure-patterns``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.config import Config
from workflows.delivery import deliver
from workflows.entity import Entity
from workflows.incident.models import Alert, AlertBatch
from workflows.journal import Journal
from workflows.models import Link, Message, MessageField
from workflows.notify.models import DeadLetter
from workflows.patterns import FailureSeen, Occurrence
from workflows.pipeline.models import (
    DRILL_WORKFLOW,
    FAILED_STATUSES,
    BuildEvent,
    FlakyQuarantine,
    FlakyRelease,
    PipelineNotice,
    PipelineState,
)
from workflows.policy.builds import pipeline_status
from workflows.policy.flaky import quarantine, release
from workflows.policy.pipeline_health import Assessment, assess
from workflows.policy.routing import receivers_for

__all__ = ["PipelineHealth", "HEALTH_PATCH", "tracking_message", "security_message"]

HEALTH_PATCH = "pipeline-health"
SECURITY_SEEN = 200
"""Serious findings remembered per pipeline (a finding notifies once, when first seen)."""
_LOG_LINES = 60
_ACTIVITY_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=20)


def alert_labels(event: BuildEvent, alertname: str, severity: str, **extra: str) -> dict[str, str]:
    """Routing labels of a message the pipeline sends besides the build's own."""
    labels = {
        "alertname": alertname,
        "kind": "build",
        "repo": event.repo,
        "branch": event.branch,
        "service": event.repo.rsplit("/", 1)[-1],
        "severity": severity,
    }
    return {**labels, **extra}


def watched(config: Config, branch: str) -> bool:
    """The branch matches a ``pipelines.watch`` glob."""
    return any(fnmatchcase(branch, pattern) for pattern in config.pipelines.watch)


def tracking_message(event: BuildEvent, source: str) -> Message:
    """The tracking issue's body for a failed run, or its closing comment for a green one."""
    failed = event.status in FAILED_STATUSES
    lines = [
        f"Run {event.status.replace('_', ' ')} on `{event.commit[:12]}`"
        + (f" by {event.author}" if event.author else "")
        + (f" ({event.workflow})" if event.workflow else "")
        + "."
    ]
    if event.url:
        lines.append(f"Run: {event.url}")
    if failed and event.tests is not None and event.tests.failures:
        lines.append("Failed tests:")
        for failure in event.tests.failures[:10]:
            name = f"{failure.classname}.{failure.name}" if failure.classname else failure.name
            lines.append(f"- {name}" + (f": {failure.message[:200]}" if failure.message else ""))
    if failed and event.step:
        lines.append(f"Failing step: {event.step}")
    if failed and event.log_tail:
        tail = "\n".join(event.log_tail.splitlines()[-_LOG_LINES:])
        lines.append("Log tail:\n```\n" + tail.replace("```", "'''") + "\n```")
    if not failed:
        lines.append("The pipeline is green again; closing.")
    labels = {
        "alertname": "CIFailureTracking",
        "kind": "build",
        "repo": event.repo,
        "branch": event.branch,
        "workflow": event.workflow,
        "status": event.status,
    }
    return Message(
        title=f"CI failure alerts: {event.repo}@{event.branch}",
        text="\n".join(lines),
        severity="error" if failed else "success",
        links=[Link(text="View run", url=event.url)] if event.url else [],
        labels=labels,
        source=source,
    )


def security_message(event: BuildEvent, findings: list[str], source: str) -> Message:
    """One critical ``kind="security"`` message listing the serious findings first seen in this build."""
    return Message(
        title=f"Security: {len(findings)} serious finding(s) in {event.repo}@{event.branch}",
        text="\n".join(f"• {line}" for line in findings),
        severity="critical",
        fields=[MessageField(title="Commit", value=event.commit[:7]), MessageField(title="Branch", value=event.branch)],
        links=[Link(text="View run", url=event.url)] if event.url else [],
        labels=alert_labels(event, "SecurityFindings", "critical", kind="security"),
        source=source,
    )


def _finding_line(rule: str, cve: str | None, package: str | None, location: str, cvss: float | None) -> str:
    what = cve or rule
    parts = [what + (f" ({rule})" if cve and rule != cve else "")]
    if package:
        parts.append(f"in {package}")
    if location:
        parts.append(f"at {location}")
    if cvss is not None:
        parts.append(f"CVSS {cvss:g}")
    return " ".join(parts)


class PipelineHealth(Entity):
    """The health follow-ups of :class:`~workflows.pipeline.workflow.PipelineWorkflow` (see the module doc)."""

    _state: PipelineState
    _journal: Journal

    # ------------------------------------------------------------------ people

    @workflow.signal(name="flaky_quarantine")
    def flaky_quarantine(self, request: FlakyQuarantine) -> None:
        """``tocsin flaky quarantine``: the test's failures no longer fail this pipeline's builds."""
        tests = quarantine(
            self._state.health.tests,
            request.test,
            by=request.actor.name,
            now=workflow.now(),
            until=request.until,
            reason=request.reason,
        )
        self._state.health = self._state.health.model_copy(update={"tests": tests})
        detail = {"test": request.test, "until": request.until.isoformat() if request.until else None}
        self._journal.record("flaky.quarantined", actor=request.actor, detail={**detail, "reason": request.reason})

    @workflow.signal(name="flaky_release")
    def flaky_release(self, request: FlakyRelease) -> None:
        """``tocsin flaky release``: lift the test's quarantine."""
        tests = release(self._state.health.tests, request.test)
        self._state.health = self._state.health.model_copy(update={"tests": tests})
        self._journal.record("flaky.released", actor=request.actor, detail={"test": request.test})

    # ------------------------------------------------------------------ per event

    def _assess(self, config: Config, event: BuildEvent, seq: int) -> Assessment:
        """Add the event to the health memory; what it says about the build.

        A drill's events (``DRILL_WORKFLOW``) are kept out: they would count in the success rate, MTTR and
        streaks. They still open and close the tracking issue (that is what a drill checks).
        """
        if event.workflow == DRILL_WORKFLOW:
            return Assessment(state=self._state.health)
        found = assess(
            self._state.health,
            event,
            now=workflow.now(),
            run=event.url or f"{event.workflow}#{seq}",
            config=config.pipelines.health,
            log_tail=event.log_tail or "",
            step=event.step,
        )
        self._state.health = found.state
        if event.status != "started":
            kept = event.model_copy(update={"log_tail": None, "actor": None})
            if kept.tests is not None:
                kept.tests = kept.tests.model_copy(update={"outcomes": []})
            self._state.last_event = kept
        return found

    @staticmethod
    def is_flaky(event: BuildEvent, found: Assessment | None) -> bool:
        """A failed run whose failing tests are all known-flaky or quarantined."""
        return (
            found is not None
            and event.status in ("failure", "timed_out")
            and found.flakiness is not None
            and found.flakiness.verdict == "flaky"
        )

    def _background(self, job: Coroutine[Any, Any, None]) -> None:
        """Run ``job`` beside the event loop (the run waits for it before continuing as new)."""
        self._deliveries.append(asyncio.create_task(job))

    @staticmethod
    def _routes(config: Config, labels: dict[str, str]) -> list[str]:
        """The receivers ``labels`` route to, each once, in route order."""
        return list(dict.fromkeys(receivers_for(config.route_tree(), labels)))

    def _send(self, config: Config, message: Message, step: str) -> None:
        """Route ``message`` by its labels and deliver it in the background."""
        for receiver in self._routes(config, message.labels):
            self._background(self._deliver_one(config, receiver, message, f"{step}/{receiver}"))

    async def _deliver_one(self, config: Config, receiver: str, message: Message, step: str) -> None:
        letters: list[DeadLetter] = []
        await deliver(config, receiver, message, step, dead_letters=letters)
        self._dead_lettered(letters)

    def _follow_up(
        self, config: Config, event: BuildEvent, notice: PipelineNotice, found: Assessment, receivers: list[str]
    ) -> None:
        """Everything the event starts besides its own message (see the module doc)."""
        source = workflow.info().workflow_id
        seq = notice.seq
        flaky = self.is_flaky(event, found)
        notice.flaky = flaky
        if notice.silenced_by:
            return  # a maintenance window keeps the whole event quiet; it is still in the memory
        if watched(config, event.branch):
            if config.pipelines.tracking:
                self._track(config, event, notice, receivers, flaky, source)
            if config.pipelines.escalation and event.workflow != DRILL_WORKFLOW:
                self._escalate(event, flaky, source)  # a drill never pages on-call
        for finding in found.alerts:
            if finding.kind == "failing_streak" and notice.notified:
                continue  # the build's own message already says it, as critical
            labels = alert_labels(event, finding.alertname, finding.severity, finding=finding.kind)
            title = f"{finding.text[:1].upper()}{finding.text[1:]}" if finding.text else finding.alertname
            message = Message(
                title=f"{event.repo}@{event.branch}: {title}"[:200],
                text=finding.text,
                severity=finding.severity,
                links=[Link(text="View run", url=event.url)] if event.url else [],
                labels=labels,
                source=source,
            )
            self._send(config, message, f"finding-{seq}-{finding.kind}")
        for i, flaky_notice in enumerate(found.notices):
            alertname = f"FlakyTest{flaky_notice.kind.capitalize()}"
            labels = alert_labels(event, alertname, "info", test=flaky_notice.nodeid[:200])
            if flaky_notice.owner:
                labels["owner"] = flaky_notice.owner
            text = flaky_notice.text + (f" (quarantined by @{flaky_notice.owner})" if flaky_notice.owner else "")
            message = Message(
                title=f"Flaky test {flaky_notice.kind}: {flaky_notice.nodeid}"[:200],
                text=text,
                severity="info",
                labels=labels,
                source=source,
            )
            self._send(config, message, f"flaky-{seq}-{i}")
        self._security(config, event, seq, source)
        if found.signature is not None:
            self._report_pattern(event, found, seq)

    def _track(
        self,
        config: Config,
        event: BuildEvent,
        notice: PipelineNotice,
        receivers: list[str],
        flaky: bool,
        source: str,
    ) -> None:
        def has_github(name: str) -> bool:
            receiver = config.receiver(name)
            return receiver is not None and any(
                ch in config.channels and config.channels[ch].type == "github" for ch in receiver.channels
            )

        if event.status in FAILED_STATUSES and not flaky:
            targets = [r for r in dict.fromkeys([*self._state.tracking, *receivers]) if has_github(r)]
            action = "trigger"
            self._state.tracking = targets
        elif event.status == "success" and self._state.tracking:
            if pipeline_status(self._state.tracks.values()) == "failing":
                return  # another CI workflow of the branch is still red
            targets, action = list(self._state.tracking), "resolve"
            self._state.tracking = []
        else:
            return
        if not targets:
            return
        notice.tracking = "trigger" if action == "trigger" else "resolve"
        message = tracking_message(event, source)
        key = f"ci/{event.repo}/{event.branch}"

        async def run() -> None:
            letters: list[DeadLetter] = []
            batches = await asyncio.gather(
                *(
                    deliver(
                        config,
                        rcv,
                        message,
                        f"tracking-{notice.seq}/{rcv}",
                        action=action,
                        dedup_key=key,
                        only_types=("github",),
                        dead_letters=letters,
                    )
                    for rcv in targets
                )
            )
            notice.tracking_deliveries = [record for batch in batches for record in batch]
            self._dead_lettered(letters)

        self._background(run())

    def _escalate(self, event: BuildEvent, flaky: bool, source: str) -> None:
        labels = alert_labels(event, "BuildFailing", "critical")
        fingerprint = hashlib.sha256(f"{event.repo}\x00{event.branch}".encode()).hexdigest()[:16]
        if event.status in ("failure", "timed_out") and not flaky and self._state.escalated is None:
            status = "firing"
            self._state.escalated = fingerprint
        elif event.status == "success" and self._state.escalated is not None:
            if pipeline_status(self._state.tracks.values()) == "failing":
                return
            status = "resolved"
            self._state.escalated = None
        else:
            return
        summary = f"CI of {event.repo}@{event.branch} is failing since {event.commit[:7]}"
        alert = Alert(
            fingerprint=fingerprint,
            status=status,
            labels=labels,
            annotations={"summary": summary, **({"run": event.url} if event.url else {})},
            starts_at=workflow.now() if status == "firing" else None,
            ends_at=workflow.now() if status == "resolved" else None,
            generator_url=event.url or "",
        )

        async def run() -> None:
            await workflow.execute_activity(
                "raise_alerts",
                AlertBatch(alerts=[alert], source=source),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=_ACTIVITY_RETRY,
            )

        self._background(run())

    def _security(self, config: Config, event: BuildEvent, seq: int, source: str) -> None:
        lines: list[str] = []
        seen = list(self._state.security_seen)
        for scan in event.security:
            for finding in scan.findings:
                key = f"{finding.rule}|{finding.cve or ''}|{finding.package or ''}|{finding.location}"
                if key in seen:
                    continue
                seen.append(key)
                lines.append(
                    f"[{scan.tool}] "
                    + _finding_line(finding.rule, finding.cve, finding.package, finding.location, finding.cvss)
                )
            more = scan.critical - len(scan.findings)
            if more > 0 and lines:
                lines.append(f"[{scan.tool}] … and {more} more")
        self._state.security_seen = seen[-SECURITY_SEEN:]
        if lines:
            self._send(config, security_message(event, lines, source), f"security-{seq}")

    def _report_pattern(self, event: BuildEvent, found: Assessment, seq: int) -> None:
        sig = found.signature
        if sig is None:
            return
        occurrence = Occurrence(
            repo=event.repo,
            branch=event.branch,
            commit=event.commit,
            at=workflow.now(),
            run=event.url,
            author=event.author,
        )
        seen = FailureSeen(
            key=sig.key,
            category=sig.category,
            summary=sig.summary,
            occurrence=occurrence,
            critical=found.severity == "critical",
            kind=sig.kind,
        )

        async def run() -> None:
            try:
                await workflow.execute_activity(
                    "report_failure_pattern",
                    seen,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=_ACTIVITY_RETRY,
                )
            except ActivityError as exc:  # grouping is a hint; the build's own message has gone out
                workflow.logger.warning("failure pattern of event %d not reported: %s", seq, exc)

        self._background(run())
