"""A deployment's state and its stages: gates and risk, approval, canary, health, rollback.

:class:`DeploymentStages` is not a workflow and has no handlers: ``DeploymentWorkflow``
(``workflow.py``) derives from it, adds the query, updates and signals that steer
it, and runs the stages in order. Each stage records what it did in the timeline,
tells chat, moves ``TocsinStatus``, and ends the deployment by raising
:class:`Finished` with an outcome.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows import search
from workflows.config import TimeInterval
from workflows.deployment import calls, render
from workflows.deployment.chat import Chat, ChatKind
from workflows.deployment.journal import DeploymentJournal
from workflows.deployment.models import (
    ContextRequest,
    DeployContext,
    DeployInput,
    DeploymentState,
    MetricQuery,
    MetricsRequest,
    Outcome,
    TimelineEntry,
)
from workflows.environments import EnvironmentConfig, render_query
from workflows.identity import Actor
from workflows.incident.models import Alert, AlertBatch
from workflows.journal import Journal
from workflows.models import Message, Severity
from workflows.policy import gates
from workflows.policy.canary import Measurement, MetricReading, analysis_verdict, judge_measurement
from workflows.policy.durations import parse_duration
from workflows.policy.risk import RiskInput, active_intervals, score_risk
from workflows.timer import wait_until

__all__ = ["DeploymentStages", "Finished", "TIMELINE_MAX"]

TIMELINE_MAX = 500
"""Timeline entries kept (the oldest are dropped), so the state stays small."""


class Finished(Exception):
    """The deployment reached an outcome."""

    def __init__(self, outcome: Outcome, reason: str):
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


class DeploymentStages(DeploymentJournal):
    """The state of one deployment and what each of its stages does."""

    def __init__(self, input: DeployInput) -> None:
        """The state, from the input.

        Args:
            input: what to deploy where, and who asked.
        """
        self._input = input
        self._s = DeploymentState(
            workflow_id=workflow.info().workflow_id,
            service=input.service,
            env=input.env,
            version=input.version,
            by=input.by,
            deployer=input.actor,
            commit=input.commit,
            emergency=input.emergency,
            emergency_reason=input.reason,
        )
        self._env = EnvironmentConfig()
        """The environment's policy: defaults until ``run`` has loaded the config."""
        self._time_intervals: list[TimeInterval] = []
        """The config's time intervals (freeze windows are among them)."""
        self._rejected: str | None = None
        """Why the deployment was rejected (``reject`` update)."""
        self._abort: tuple[str, str] | None = None
        """(by, reason) of an abort or rollback request."""
        self._abort_actor: Actor | None = None
        """Who asked for the abort or rollback, and how they were verified."""
        self._promote = False
        self._chat = Chat()
        self._hook_gate = False
        """Whether the deploy-hook gate applies (new runs; see ``DeploymentWorkflow.run``)."""
        self._controls = False
        self._journal = Journal()
        """Whether the status message is edited whenever its buttons change (new runs; see ``DeploymentWorkflow.run``)."""

    # ------------------------------------------------------------ helpers

    def _record(self, actor: str, action: str, detail: str = "", who: Actor | None = None) -> None:
        entry = TimelineEntry(at=workflow.now(), actor=actor, action=action, detail=detail, identity=who)
        self._s.timeline.append(entry)
        if len(self._s.timeline) > TIMELINE_MAX:
            self._s.timeline = self._s.timeline[-TIMELINE_MAX:]
        self._journal_entry(actor, action, detail, who)

    def _stopped(self) -> bool:
        return self._abort is not None

    def _say(self, kind: ChatKind, message: Message) -> None:
        self._chat.say(kind, message)

    def _reply(self, text: str, severity: Severity = "info") -> Message:
        return render.reply(self._s, text, severity)

    def _progress(self, note: str = "") -> None:
        self._say("status", render.status_message(self._s, self._input.changes_url, note))

    def _edit(self) -> None:
        """Edit the status message now, in runs that do (``PATCH_CHAT_CONTROLS``); older runs waited for the next stage."""
        if self._controls:
            self._progress()

    def _set_stage(self, stage: str, status: str | None = None) -> None:
        self._s.stage = stage
        self._journal_stage(stage)
        if status is not None:
            workflow.upsert_search_attributes([search.STATUS.value_set(status)])

    async def _hold_while_paused(self) -> None:
        await workflow.wait_condition(lambda: not self._s.paused or self._stopped() or self._promote)

    async def _wait(self, duration: timedelta) -> None:
        """Wait ``duration`` of un-paused time; returns early on abort or promote."""
        remaining = duration.total_seconds()
        while remaining > 0 and not self._stopped() and not self._promote:
            if self._s.paused:
                await self._hold_while_paused()
                continue
            started = workflow.now()
            if not await wait_until(lambda: self._s.paused or self._stopped() or self._promote, remaining):
                return
            remaining -= (workflow.now() - started).total_seconds()

    async def _hook(self, kind: str, hook: Any, payload: dict[str, Any], step: str) -> None:
        await calls.call_hook(kind, hook, payload, f"{self._s.workflow_id}/{step}")

    # ------------------------------------------------------------ gates and risk

    async def _gates(self) -> None:
        s, env, now = self._s, self._env, workflow.now()
        self._set_stage("checking")
        unchecked = ""
        try:
            ctx = await calls.deployment_context(
                ContextRequest(service=s.service, env=s.env, commit=s.commit, workflow_id=s.workflow_id, now=now)
            )
        except ActivityError as exc:  # fail closed: a gate that cannot be checked does not pass
            unchecked = f"could not be checked: {calls.error_text(exc)}"
            ctx = DeployContext(open_critical_incidents=[unchecked], pipeline_green=False, pipeline_detail=unchecked)
        s.gates = gates.evaluate_gates(
            gates.GateFacts(
                active_freezes=active_intervals(self._time_intervals, env.freeze, now),
                freeze_configured=bool(env.freeze),
                open_critical_incidents=ctx.open_critical_incidents,
                unchecked=unchecked,
                pipeline_green=ctx.pipeline_green,
                pipeline_detail=ctx.pipeline_detail,
                emergency=s.emergency,
                emergency_reason=s.emergency_reason,
                production=self._hook_gate and env.production is True,
                deploy_hook=env.hooks.deploy is not None,
            )
        )
        for gate in s.gates:
            self._record("tocsin", f"gate_{gate.name}", f"{gates.verdict(gate)}: {gate.detail}")
        s.risk = score_risk(
            RiskInput(
                env=s.env,
                production=env.is_production(s.env),
                change_size=self._input.change_size,
                recent_pipeline_failures=ctx.recent_pipeline_failures,
                recent_rollbacks=ctx.recent_rollbacks,
                last_deploy_at=ctx.last_deploy_at,
            ),
            now,
        )
        self._record("tocsin", "risk", render.risk_detail(s.risk))
        blocked = gates.blocking(s.gates)
        if blocked:
            raise Finished("rejected", gates.blocked_reason(blocked))

    # ------------------------------------------------------------ approval

    def _approvals_needed(self) -> int:
        s, env = self._s, self._env
        score = s.risk.score if s.risk is not None else None
        need = gates.approvals_needed(env.required_approvals, score, env.risk_extra_approval_above)
        if need > env.required_approvals:
            self._record(
                "tocsin",
                "extra_approval",
                f"risk {score:g} above {env.risk_extra_approval_above:g}: {need} approvals needed",
            )
        pool = gates.eligible_approvers(s.approvers or env.approvers, s.by, env.four_eyes)
        if pool is not None and need > pool:
            raise Finished("rejected", f"{need} approvals needed but only {pool} eligible approver(s) for {s.env}")
        return need

    async def _approval(self) -> None:
        s, env = self._s, self._env
        need = s.required_approvals = self._approvals_needed()
        if need == 0:
            self._record("tocsin", "approval_skipped", f"{s.env} requires no approval")
            return
        deadline = s.approval_deadline = workflow.now() + env.approval_window()
        self._set_stage("pending_approval", "pending_approval")
        self._progress()
        reminder = env.reminder_interval()
        reminders = 0
        asked_at = workflow.now()

        def decided() -> bool:
            return self._rejected is not None or self._stopped() or len(s.approvals) >= need

        while not decided():
            left = (deadline - workflow.now()).total_seconds()
            if left <= 0:
                raise Finished(
                    "expired", f"approval expired after {env.approval_timeout} ({len(s.approvals)}/{need} approvals)"
                )
            wait = left
            if reminder:  # reminders on a fixed schedule from the request, so they never drift
                next_at = asked_at + reminder * (reminders + 1)
                wait = min(left, max(0.001, (next_at - workflow.now()).total_seconds()))
            timed_out = not await wait_until(decided, wait)
            if timed_out and reminder and (deadline - workflow.now()).total_seconds() > 0:
                reminders += 1
                self._record("tocsin", "reminder", f"#{reminders}: {len(s.approvals)}/{need} approvals")
                self._say(
                    "post", render.reminder(s, self._input.changes_url, reminders, need, deadline - workflow.now())
                )
        # Stage moves on before any later update can be validated against it.
        if self._rejected is not None:
            raise Finished("rejected", self._rejected)
        if self._abort is not None:
            raise Finished("rejected", f"withdrawn by {self._abort[0]}: {self._abort[1]}")
        self._record(
            "tocsin", "approval_complete", ", ".join(a.by for a in s.approvals) + f" ({len(s.approvals)}/{need})"
        )

    # ------------------------------------------------------------ rollout

    async def _rollout(self) -> None:
        s, env = self._s, self._env
        canary = env.canary
        s.steps = canary.weights()
        analysis = canary.analysis
        bake = parse_duration(canary.bake)
        s.recorded_only = env.hooks.deploy is None
        if self._stopped():
            assert self._abort is not None
            raise Finished("rejected", f"withdrawn by {self._abort[0]} before the rollout: {self._abort[1]}")
        self._set_stage("canary", "canary")
        for index, weight in enumerate(s.steps):
            if self._stopped():
                break
            promoted = self._promote
            if promoted:
                weight = 100
            s.step, s.weight = index, weight
            self._record("tocsin", "step", f"{weight}%" + (f" ({gates.NO_DEPLOY_HOOK})" if s.recorded_only else ""))
            if env.hooks.deploy is not None:
                try:
                    await self._hook(
                        "deploy",
                        env.hooks.deploy,
                        {"service": s.service, "env": s.env, "version": s.version, "weight": weight},
                        f"deploy-{index}-{weight}",
                    )
                except ActivityError as exc:
                    await self._roll_back("tocsin", f"deploy hook failed at {weight}%: {calls.error_text(exc)}")
            self._progress()
            self._say(
                "reply", self._reply(f"Canary at {weight}%" + (f", {gates.NO_DEPLOY_HOOK}" if s.recorded_only else ""))
            )
            if promoted:
                break
            await self._wait(bake)
            if analysis is not None and analysis.metrics and not self._promote and not self._stopped():
                await self._analyse(analysis, weight)
        if self._stopped():
            assert self._abort is not None
            await self._roll_back(*self._abort, who=self._abort_actor)
        await self._health()

    async def _measure(self, analysis: Any, queries: list[MetricQuery]) -> Measurement:
        try:
            result = await calls.query_metrics(MetricsRequest(prometheus_url=analysis.prometheus_url, queries=queries))
            readings = result.readings
        except ActivityError as exc:
            readings = [MetricReading(name=q.name, error=calls.error_text(exc)) for q in queries]
        return judge_measurement(analysis.metrics, readings)

    async def _analyse(self, analysis: Any, weight: int) -> None:
        s = self._s
        queries = [
            MetricQuery(name=m.name, query=render_query(m.query, service=s.service, env=s.env, version=s.version))
            for m in analysis.metrics
        ]
        interval = parse_duration(analysis.interval)
        measurements: list[Measurement] = []
        while not self._stopped() and not self._promote:
            await self._hold_while_paused()
            if self._stopped() or self._promote:
                return
            measurement = await self._measure(analysis, queries)
            measurements.append(measurement)
            s.last_measurement = measurement
            verdict = analysis_verdict(measurements, analysis.count, analysis.failure_limit)
            self._record(
                "tocsin",
                "measurement",
                f"{weight}% #{len(measurements)} {measurement.outcome}: {measurement.summary()}",
            )
            self._progress()
            if verdict.outcome == "failed":
                await self._roll_back("tocsin", f"canary analysis failed at {weight}%: {verdict.detail}")
            if verdict.outcome == "passed":
                self._record("tocsin", "analysis_passed", f"{weight}%: {verdict.detail}")
                self._say("reply", self._reply(f"Analysis passed at {weight}%: {measurement.summary()}", "success"))
                return
            if verdict.outcome == "inconclusive":
                s.paused = True
                self._record("tocsin", "paused", f"analysis inconclusive at {weight}%: {verdict.detail}")
                self._say(
                    "post",
                    self._reply(
                        f"Deploy {s.service} {s.version} to {s.env} paused at {weight}%: analysis inconclusive "
                        f"({verdict.detail}). Resume to measure again, promote, or abort.",
                        "warning",
                    ),
                )
                self._progress()
                await self._hold_while_paused()
                measurements.pop()  # a resumed analysis measures again
                continue
            await self._wait(interval)

    async def _health(self) -> None:
        hooks = self._env.hooks
        if not hooks.health:
            return
        self._set_stage("verifying")
        tasks = calls.start_health_checks(hooks.health, parse_duration(hooks.health_deadline))
        self._progress()
        await workflow.wait_condition(lambda: all(t.done() for t in tasks) or self._stopped())
        if self._stopped():
            for t in tasks:
                t.cancel()
            assert self._abort is not None
            await self._roll_back(*self._abort, who=self._abort_actor)
        failed = []
        for url, task in zip(hooks.health, tasks, strict=True):
            exc = task.exception()
            if exc is not None:
                failed.append(f"{url}: {calls.error_text(exc)}")
        if failed:
            await self._roll_back("tocsin", f"health check failed within {hooks.health_deadline}: " + "; ".join(failed))
        self._record("tocsin", "healthy", ", ".join(hooks.health))

    # ------------------------------------------------------------ rollback

    async def _raise_incident(self, by: str, reason: str) -> list[str]:
        """A ``DeploymentRolledBack`` alert, routed like any other (one incident per group).

        Severity ``error``: the critical notification has gone out already, and a
        critical incident would block the fix's deployment at the incident gate.
        """
        s = self._s
        labels = {
            "alertname": "DeploymentRolledBack",
            "severity": "error",
            "service": s.service,
            "env": s.env,
            "version": s.version,
            "kind": "deployment",
        }
        alert = Alert(
            fingerprint=f"{s.workflow_id}/rollback",
            labels=labels,
            starts_at=workflow.now(),
            annotations={"summary": f"{s.service} {s.version} rolled back in {s.env}: {reason}", "rolled_back_by": by},
        )
        try:
            return await calls.raise_alerts(AlertBatch(alerts=[alert], source=s.workflow_id))
        except ActivityError as exc:
            self._record("tocsin", "incident_failed", calls.error_text(exc))
            return []

    async def _roll_back(self, by: str, reason: str, who: Actor | None = None) -> None:
        """Roll back, notify, request an incident; always ends with ``rolled_back``."""
        s, hooks = self._s, self._env.hooks
        self._set_stage("rolling_back", "rolling_back")
        self._record(by, "rollback", reason, who)
        self._edit()
        hook_note = "no rollback hook configured"
        if hooks.rollback is not None:
            try:
                await self._hook(
                    "rollback",
                    hooks.rollback,
                    {"service": s.service, "env": s.env, "version": s.version, "reason": reason, "by": by},
                    "rollback",
                )
                hook_note = "rollback hook succeeded"
            except ActivityError as exc:
                hook_note = f"ROLLBACK HOOK FAILED: {calls.error_text(exc)}"
        self._record("tocsin", "rollback_hook", hook_note)
        s.weight = 0
        self._say("post", render.rollback_alert(s, by, reason, hook_note))
        s.incident_requested = True
        incidents = await self._raise_incident(by, reason)
        self._record("tocsin", "incident_raised", ", ".join(incidents) or "no incident (routed nowhere)")
        raise Finished(
            "rolled_back",
            f"rolled back: {reason}"
            + ("" if hook_note == "rollback hook succeeded" or hooks.rollback is None else f" ({hook_note})"),
        )
