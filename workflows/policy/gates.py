"""Deployment gates and approval rules: pure decisions over plain facts.

A deployment passes three compliance gates before it asks for approval, each
recorded pass/fail with a reason:

- **freeze** — no freeze window (a named ``time_intervals`` entry) is active;
- **incidents** — no open critical incident on the service;
- **pipeline** — the commit's pipeline is not red (unknown passes);

and, in an environment marked ``production: true``, a fourth:

- **deploy-hook** — the environment has a deploy hook (without one nothing
  would be deployed: the deployment would only be recorded).

An emergency deployment with a reason overrides the freeze and incident gates
(flagged ``overridden``); nothing overrides a red pipeline or a missing deploy
hook. Then the approval rules: how many approvals the risk score asks for, who
may approve or reject; and which canary controls apply at a stage.

The facts are gathered elsewhere (visibility look-ups, the config, the clock);
nothing here performs I/O or imports Temporal, so it tests without a server.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

__all__ = [
    "GateResult",
    "GateFacts",
    "EMERGENCY_OVERRIDABLE",
    "freeze_gate",
    "incidents_gate",
    "pipeline_gate",
    "deploy_hook_gate",
    "NO_DEPLOY_HOOK",
    "is_emergency",
    "override_for_emergency",
    "evaluate_gates",
    "verdict",
    "blocking",
    "blocked_reason",
    "approvals_needed",
    "eligible_approvers",
    "approval_refusal",
    "rejection_refusal",
    "CONTROLS",
    "control_refusal",
]

EMERGENCY_OVERRIDABLE = ("freeze", "incidents")
"""Gates an emergency deployment (with a reason) may pass although they failed."""
NO_DEPLOY_HOOK = "recorded only (no deploy hook)"
"""What a deployment to an environment without a deploy hook amounts to, wherever it is told."""


class GateResult(BaseModel):
    """One compliance gate, recorded pass/fail."""

    name: str
    passed: bool
    detail: str = ""
    overridden: bool = False
    """Failed, but overridden by an emergency deployment."""


@dataclass
class GateFacts:
    """What the gates are decided on."""

    active_freezes: Sequence[str] = ()
    """Names of the environment's freeze windows active now."""
    freeze_configured: bool = False
    """Whether the environment names any freeze window at all."""
    open_critical_incidents: Sequence[str] = ()
    """Ids of the service's open critical incidents."""
    unchecked: str = ""
    """Why the incidents could not be looked up (the gate then fails with this reason)."""
    pipeline_green: bool | None = None
    """The commit's CI result: True, False, or None when unknown."""
    pipeline_detail: str = ""
    emergency: bool = False
    emergency_reason: str | None = None
    production: bool = False
    """The environment is marked ``production: true`` (the deploy-hook gate applies)."""
    deploy_hook: bool = True
    """The environment has a deploy hook."""


def freeze_gate(active: Sequence[str], configured: bool) -> GateResult:
    """Fails inside any active freeze window."""
    if active:
        detail = f"inside freeze window {', '.join(active)}"
    else:
        detail = "no freeze window active" if configured else "no freeze windows configured"
    return GateResult(name="freeze", passed=not active, detail=detail)


def incidents_gate(open_critical: Sequence[str], unchecked: str = "") -> GateResult:
    """Fails while the service has an open critical incident (or when that cannot be checked)."""
    if unchecked:
        detail = unchecked
    elif open_critical:
        detail = "open critical incident(s): " + ", ".join(open_critical)
    else:
        detail = "no open critical incident"
    return GateResult(name="incidents", passed=not open_critical and not unchecked, detail=detail)


def pipeline_gate(green: bool | None, detail: str) -> GateResult:
    """Fails when the commit's pipeline is known red; unknown passes."""
    prefix = "green: " if green else "red: " if green is False else "unknown: "
    return GateResult(name="pipeline", passed=green is not False, detail=prefix + detail)


def deploy_hook_gate(has_hook: bool) -> GateResult:
    """Fails without a deploy hook (applies to environments marked ``production: true``)."""
    if has_hook:
        return GateResult(name="deploy-hook", passed=True, detail="deploy hook configured")
    return GateResult(
        name="deploy-hook",
        passed=False,
        detail=f"production environment without hooks.deploy: the deployment would be {NO_DEPLOY_HOOK}",
    )


def is_emergency(emergency: bool, reason: str | None) -> bool:
    """An emergency counts only with a non-blank reason."""
    return emergency and bool((reason or "").strip())


def override_for_emergency(gate: GateResult, reason: str | None) -> GateResult:
    """Mark a failed, overridable gate as overridden by an emergency (in place; returns it)."""
    if not gate.passed and gate.name in EMERGENCY_OVERRIDABLE:
        gate.overridden = True
        gate.detail += f" (overridden: EMERGENCY — {reason})"
    return gate


def evaluate_gates(facts: GateFacts) -> list[GateResult]:
    """Every gate, in order (freeze, incidents, pipeline, then deploy-hook in production), overrides applied."""
    gates = [
        freeze_gate(facts.active_freezes, facts.freeze_configured),
        incidents_gate(facts.open_critical_incidents, facts.unchecked),
        pipeline_gate(facts.pipeline_green, facts.pipeline_detail),
    ]
    if facts.production:
        gates.append(deploy_hook_gate(facts.deploy_hook))
    if is_emergency(facts.emergency, facts.emergency_reason):
        for gate in gates:
            override_for_emergency(gate, facts.emergency_reason)
    return gates


def verdict(gate: GateResult) -> str:
    """``overridden``, ``pass`` or ``fail``."""
    return "overridden" if gate.overridden else "pass" if gate.passed else "fail"


def blocking(gates: Sequence[GateResult]) -> list[GateResult]:
    """The gates that failed and were not overridden."""
    return [g for g in gates if not g.passed and not g.overridden]


def blocked_reason(blocked: Sequence[GateResult]) -> str:
    """Why a deployment is rejected by ``blocked`` gates."""
    return "blocked by " + "; ".join(f"{g.name} gate: {g.detail}" for g in blocked)


# ---------------------------------------------------------------- approval


def approvals_needed(required: int, risk_score: float | None, extra_above: float | None) -> int:
    """The environment's required approvals, plus one when the risk score is above ``extra_above``.

    An environment that requires no approval never gets an extra one.
    """
    if risk_score is not None and extra_above is not None and risk_score > extra_above and required > 0:
        return required + 1
    return required


def eligible_approvers(approvers: Collection[str], deployer: str, four_eyes: bool) -> int | None:
    """How many listed approvers may approve (the deployer not, under four eyes); None: anyone may."""
    if not approvers:
        return None
    return len(set(approvers) - ({deployer} if four_eyes else set()))


def approval_refusal(
    by: str,
    *,
    env: str,
    approvers: Sequence[str],
    four_eyes: bool,
    deployer: str,
    approved_by: Collection[str],
    by_keys: Collection[str] = (),
    deployer_keys: Collection[str] = (),
) -> str | None:
    """Why ``by`` may not approve, or None when they may.

    Args:
        by: who approves.
        env: the environment (for the message).
        approvers: the environment's approvers; empty means anyone.
        four_eyes: whether the deployer is barred from approving.
        deployer: who requested the deployment.
        approved_by: who has approved already.
        by_keys: what identifies the approver (``Actor.keys()``: case-folded name, Slack user id…).
        deployer_keys: what identifies the deployer; sharing any key with the approver is the same person.
    """
    if approvers and by not in approvers:
        return f"{by} is not an approver for {env} (approvers: {', '.join(approvers)})"
    if four_eyes and (by == deployer or set(by_keys) & set(deployer_keys)):
        who = by if by == deployer else f"{by} (the same person as {deployer})"
        return f"four eyes: {who} requested this deployment and cannot approve it"
    if by in approved_by:
        return f"{by} has already approved"
    return None


def rejection_refusal(by: str, *, env: str, approvers: Sequence[str], deployer: str) -> str | None:
    """Why ``by`` may not reject, or None: approvers may, and the deployer may withdraw."""
    if approvers and by not in approvers and by != deployer:
        return f"{by} is not an approver for {env} (approvers: {', '.join(approvers)})"
    return None


# ---------------------------------------------------------------- canary controls

CONTROLS = ("pause", "resume", "promote", "abort")
"""The controls of a deployment in progress (``tocsin deploy pause|resume|promote|abort``)."""
_FINISHED = ("deployed", "rolled_back", "rejected", "expired")


def control_refusal(what: str, *, stage: str, paused: bool) -> str | None:
    """Why ``what`` does not apply to a deployment at ``stage`` (None: it does).

    ``pause`` and ``promote`` apply to a canary, ``resume`` to a paused one, ``abort``
    to any deployment not yet finished or rolling back (before the rollout it withdraws).

    Args:
        what: one of :data:`CONTROLS`.
        stage: the deployment's stage.
        paused: whether its canary is paused.
    """
    if what not in CONTROLS:
        return f"unknown control {what!r} (one of {'|'.join(CONTROLS)})"
    if stage in _FINISHED:
        return f"the deployment is finished ({stage})"
    if stage == "rolling_back":
        return "the deployment is rolling back"
    if what == "pause" and stage == "canary" and paused:
        return "the canary is paused already"
    if what in ("pause", "promote") and stage != "canary":
        return f"{what} applies to a canary in progress; the deployment is at stage {stage}"
    if what == "resume" and not paused:
        return f"the deployment is not paused (stage {stage})"
    return None
