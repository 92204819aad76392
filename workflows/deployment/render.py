"""What a deployment says in chat and in its timeline: pure functions of its state.

One status message is posted and then edited as the deployment moves
(:func:`status_message`); replies thread under it (:func:`reply`); reminders
and the rollback alert are separate posts. Nothing here imports Temporal: the
workflow passes the state (and the clock's readings) in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows.deployment.models import (
    ABORT_ACTION_ID,
    APPROVE_ACTION_ID,
    PAUSE_ACTION_ID,
    PROMOTE_ACTION_ID,
    REJECT_ACTION_ID,
    RESUME_ACTION_ID,
    DeploymentState,
    TimelineEntry,
)
from workflows.models import Action, Link, Message, MessageField, Severity
from workflows.policy.durations import format_duration
from workflows.policy.gates import NO_DEPLOY_HOOK
from workflows.policy.risk import RiskScore

__all__ = [
    "STAGE_TEXT",
    "STAGE_SEVERITY",
    "title",
    "labels",
    "reply",
    "status_message",
    "actions",
    "clock",
    "reminder",
    "rollback_alert",
    "risk_detail",
    "why",
]

STAGE_TEXT: dict[str, str] = {
    "pending_approval": "approval needed",
    "approved": "approved",
    "queued": "approved, queued behind another deployment",
    "verifying": "health checks",
    "deployed": "deployed",
    "rolled_back": "rolled back",
    "rejected": "rejected",
    "expired": "approval expired",
    "rolling_back": "rolling back",
}
"""How a stage reads in chat (``canary`` shows its weight; others read as their name)."""
STAGE_SEVERITY: dict[str, Severity] = {
    "deployed": "success",
    "rolled_back": "critical",
    "rejected": "warning",
    "expired": "warning",
    "rolling_back": "critical",
}
"""Severity of the status message per stage (``info`` otherwise)."""


def title(state: DeploymentState, text: str) -> str:
    """``text``, flagged ``[EMERGENCY]`` for an emergency deployment."""
    prefix = "[EMERGENCY] " if state.emergency else ""
    return f"{prefix}{text}"


def labels(state: DeploymentState) -> dict[str, str]:
    """Labels of every message about the deployment."""
    out = {
        "kind": "deployment",
        "service": state.service,
        "env": state.env,
        "version": state.version,
        "stage": state.stage,
    }
    if state.emergency:
        out["emergency"] = "true"
    return out


def reply(state: DeploymentState, text: str, severity: Severity = "info") -> Message:
    """A one-line message (a thread reply, or a separate post)."""
    return Message(title=title(state, text), severity=severity, labels=labels(state), source=state.workflow_id)


def clock(at: datetime) -> str:
    """``HH:MM UTC`` of ``at`` (a naive time is taken as UTC)."""
    return (at if at.tzinfo is None else at.astimezone(UTC)).strftime("%H:%M UTC")


def _stage_text(state: DeploymentState) -> str:
    if state.stage == "canary":
        paused = ", paused" if state.paused and state.outcome is None else ""
        return f"canary at {state.weight}%{paused}" + (f", {NO_DEPLOY_HOOK}" if state.recorded_only else "")
    if state.stage == "deployed" and state.recorded_only:
        return NO_DEPLOY_HOOK
    return STAGE_TEXT.get(state.stage, state.stage)


def _severity(state: DeploymentState) -> Severity:
    if state.stage == "deployed" and state.recorded_only:
        return "info"
    return STAGE_SEVERITY.get(state.stage, "info")


def _lines(state: DeploymentState, note: str) -> list[str]:
    s = state
    lines = [f"Requested by {s.by}" + (f", commit {s.commit}" if s.commit else "")]
    if s.emergency:
        lines.append(f"EMERGENCY deployment: {s.emergency_reason}")
    if s.risk is not None:
        lines.append(f"Risk {s.risk.score:g}/10 ({s.risk.level}):")
        lines.extend(f"  +{f.points:g} {f.name}: {f.detail}" for f in s.risk.factors)
    for gate in s.gates:
        mark = "overridden" if gate.overridden else ("pass" if gate.passed else "FAIL")
        lines.append(f"Gate {gate.name}: {mark} ({gate.detail})")
    if s.stage == "pending_approval" and s.approval_deadline is not None:
        lines.append(
            f"Approvers: {', '.join(s.approvers) or 'anyone'}; expires {s.approval_deadline:%Y-%m-%d %H:%M} UTC"
        )
    for a in s.approvals:
        lines.append(f"Approved by {a.by} at {clock(a.at)}" + why(a.comment))
    rejection = _rejection(s)
    if rejection is not None:
        lines.append(f"Rejected by {rejection.actor} at {clock(rejection.at)}" + why(rejection.detail))
    if s.last_measurement is not None:
        lines.append(f"Metrics: {s.last_measurement.summary()}")
    if s.reason and rejection is None:
        lines.append(s.reason)
    if note:
        lines.append(note)
    return lines


def _rejection(state: DeploymentState) -> TimelineEntry | None:
    """The person's ``rejected`` entry of a rejected deployment (Tocsin's own closing entry is not one)."""
    if state.stage != "rejected":
        return None
    return next((e for e in reversed(state.timeline) if e.action == "rejected" and e.actor != "tocsin"), None)


def actions(state: DeploymentState) -> list[Action]:
    """The buttons that apply now (each ``value`` is the deployment's workflow id), none once it ends.

    Approve and Reject while approval is pending; while the canary runs Pause (or Resume when
    paused), Promote and Abort; Abort alone while health checks run.
    """
    s, wid = state, state.workflow_id
    if s.outcome is not None:
        return []
    if s.stage == "pending_approval":
        return [
            Action(action_id=APPROVE_ACTION_ID, text="Approve", value=wid, style="primary"),
            Action(action_id=REJECT_ACTION_ID, text="Reject", value=wid, style="danger"),
        ]
    abort = Action(action_id=ABORT_ACTION_ID, text="Abort (roll back)", value=wid, style="danger")
    if s.stage == "canary":
        hold = (
            Action(action_id=RESUME_ACTION_ID, text="Resume", value=wid, style="primary")
            if s.paused
            else Action(action_id=PAUSE_ACTION_ID, text="Pause", value=wid)
        )
        return [hold, Action(action_id=PROMOTE_ACTION_ID, text="Promote to 100%", value=wid), abort]
    if s.stage == "verifying":
        return [abort]
    return []


def status_message(state: DeploymentState, changes_url: str | None = None, note: str = "") -> Message:
    """The status message: stage, risk, gates, approvals (who, when), weight, metrics; buttons per :func:`actions`.

    Args:
        state: the deployment now.
        changes_url: linked as ``Changes`` when given.
        note: a last line (e.g. a reminder).
    """
    s = state
    stage_text = _stage_text(s)
    fields = [
        MessageField(title="Stage", value=stage_text),
        MessageField(title="Approvals", value=f"{len(s.approvals)}/{s.required_approvals}"),
        MessageField(title="Weight", value=f"{s.weight}%"),
    ]
    if s.risk is not None:
        fields.append(MessageField(title="Risk", value=f"{s.risk.score:g}/10 {s.risk.level}"))
    links = [Link(text="Changes", url=changes_url)] if changes_url else []
    return Message(
        title=title(s, f"Deploy {s.service} {s.version} to {s.env}: {stage_text}"),
        text="\n".join(_lines(s, note)),
        severity=_severity(s),
        fields=fields,
        links=links,
        actions=actions(s),
        labels=labels(s),
        source=s.workflow_id,
    )


def reminder(
    state: DeploymentState, changes_url: str | None, number: int, needed: int, expires_in: timedelta
) -> Message:
    """Reminder ``number``: the status message, retitled, with what is still missing.

    Args:
        state: the deployment now.
        changes_url: linked as ``Changes`` when given.
        number: 1 for the first reminder.
        needed: approvals required in all.
        expires_in: time left before the request expires.
    """
    s = state
    message = status_message(
        s,
        changes_url,
        f"Reminder #{number}: waiting for {needed - len(s.approvals)} more approval(s); "
        f"expires in {format_duration(expires_in)}",
    )
    message.title = title(s, f"Reminder: deploy {s.service} {s.version} to {s.env} awaits approval")
    return message


def rollback_alert(state: DeploymentState, by: str, reason: str, hook_note: str) -> Message:
    """The critical post announcing a rollback."""
    s = state
    return Message(
        title=title(s, f"Rolled back {s.service} {s.version} in {s.env}"),
        text=f"{reason}\nBy: {by}\n{hook_note}",
        severity="critical",
        labels=labels(s),
        source=s.workflow_id,
        fields=[
            MessageField(title="Service", value=s.service),
            MessageField(title="Environment", value=s.env),
            MessageField(title="Version", value=s.version),
        ],
    )


def risk_detail(risk: RiskScore) -> str:
    """The risk score and its factors on one line (the timeline's ``risk`` entry)."""
    return f"{risk.score:g}/10 {risk.level}: " + "; ".join(f"+{f.points:g} {f.name} ({f.detail})" for f in risk.factors)


def why(reason: str | None) -> str:
    """``": <reason>"``, or nothing without a reason."""
    return f": {reason}" if reason else ""
