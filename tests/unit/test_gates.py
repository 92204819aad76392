"""The pure deployment gates and rules of ``workflows.policy.gates``: no server, no I/O."""

from __future__ import annotations

import pytest

from workflows.policy import gates
from workflows.policy.gates import GateFacts, GateResult


def names(results: list[GateResult]) -> list[tuple[str, bool, bool]]:
    return [(g.name, g.passed, g.overridden) for g in results]


def test_freeze_gate() -> None:
    assert gates.freeze_gate([], configured=False) == GateResult(
        name="freeze", passed=True, detail="no freeze windows configured"
    )
    assert gates.freeze_gate([], configured=True).detail == "no freeze window active"
    inside = gates.freeze_gate(["market-hours", "friday"], configured=True)
    assert not inside.passed and inside.detail == "inside freeze window market-hours, friday"


def test_incidents_gate_fails_closed_when_unchecked() -> None:
    assert gates.incidents_gate([]).passed
    blocked = gates.incidents_gate(["incident/a", "incident/b"])
    assert not blocked.passed and blocked.detail == "open critical incident(s): incident/a, incident/b"
    unchecked = gates.incidents_gate([], unchecked="could not be checked: visibility down")
    assert not unchecked.passed and unchecked.detail == "could not be checked: visibility down"


@pytest.mark.parametrize(
    "green,passed,prefix", [(True, True, "green: "), (False, False, "red: "), (None, True, "unknown: ")]
)
def test_pipeline_gate_unknown_passes(green: bool | None, passed: bool, prefix: str) -> None:
    gate = gates.pipeline_gate(green, "ci")
    assert gate.passed is passed and gate.detail == prefix + "ci"


def test_deploy_hook_gate() -> None:
    assert gates.deploy_hook_gate(True).passed
    missing = gates.deploy_hook_gate(False)
    assert missing.name == "deploy-hook" and not missing.passed
    assert "recorded only (no deploy hook)" in missing.detail and "hooks.deploy" in missing.detail


@pytest.mark.parametrize(
    "emergency,reason,expected",
    [(True, "fix", True), (True, "  ", False), (True, None, False), (False, "fix", False)],
)
def test_an_emergency_needs_a_reason(emergency: bool, reason: str | None, expected: bool) -> None:
    assert gates.is_emergency(emergency, reason) is expected


def test_evaluate_gates_in_order_and_the_deploy_hook_only_in_production() -> None:
    assert names(gates.evaluate_gates(GateFacts())) == [
        ("freeze", True, False),
        ("incidents", True, False),
        ("pipeline", True, False),
    ]
    assert names(gates.evaluate_gates(GateFacts(deploy_hook=False))) == names(gates.evaluate_gates(GateFacts()))
    production = gates.evaluate_gates(GateFacts(production=True, deploy_hook=False))
    assert names(production)[-1] == ("deploy-hook", False, False)
    assert gates.evaluate_gates(GateFacts(production=True, deploy_hook=True))[-1].passed


def test_emergency_overrides_freeze_and_incidents_only() -> None:
    facts = GateFacts(
        active_freezes=["weekend"],
        freeze_configured=True,
        open_critical_incidents=["incident/x"],
        pipeline_green=False,
        pipeline_detail="ci: failure",
        emergency=True,
        emergency_reason="fix for incident/x",
        production=True,
        deploy_hook=False,
    )
    results = gates.evaluate_gates(facts)
    assert names(results) == [
        ("freeze", False, True),
        ("incidents", False, True),
        ("pipeline", False, False),
        ("deploy-hook", False, False),
    ]
    assert "(overridden: EMERGENCY — fix for incident/x)" in results[0].detail
    assert [gates.verdict(g) for g in results] == ["overridden", "overridden", "fail", "fail"]
    blocked = gates.blocking(results)
    assert [g.name for g in blocked] == ["pipeline", "deploy-hook"]
    assert gates.blocked_reason(blocked).startswith("blocked by pipeline gate: red: ci: failure; deploy-hook gate: ")
    # without a reason it is no emergency: nothing is overridden
    no_reason = gates.evaluate_gates(GateFacts(active_freezes=["weekend"], emergency=True, emergency_reason=" "))
    assert [gates.verdict(g) for g in no_reason] == ["fail", "pass", "pass"]


def test_override_leaves_passed_and_non_overridable_gates_alone() -> None:
    passed = gates.override_for_emergency(GateResult(name="freeze", passed=True), "x")
    red = gates.override_for_emergency(GateResult(name="pipeline", passed=False), "x")
    assert not passed.overridden and not red.overridden and red.detail == ""


@pytest.mark.parametrize(
    "required,score,above,expected",
    [(1, 7.0, 5.0, 2), (1, 5.0, 5.0, 1), (1, 9.0, None, 1), (1, None, 5.0, 1), (0, 9.0, 5.0, 0), (2, 6.5, 6.0, 3)],
)
def test_approvals_needed(required: int, score: float | None, above: float | None, expected: int) -> None:
    assert gates.approvals_needed(required, score, above) == expected


def test_eligible_approvers() -> None:
    assert gates.eligible_approvers([], "dave", four_eyes=True) is None
    assert gates.eligible_approvers(["alice", "dave", "alice"], "dave", four_eyes=True) == 1
    assert gates.eligible_approvers(["alice", "dave"], "dave", four_eyes=False) == 2


def test_approval_refusals() -> None:
    def refusal(by: str, **kw: object) -> str | None:
        args: dict[str, object] = {
            "env": "prod",
            "approvers": ["alice", "bob", "dave"],
            "four_eyes": True,
            "deployer": "dave",
            "approved_by": [],
        }
        args.update(kw)
        return gates.approval_refusal(by, **args)  # type: ignore[arg-type]

    assert refusal("alice") is None
    assert refusal("mallory") == "mallory is not an approver for prod (approvers: alice, bob, dave)"
    assert refusal("dave") == "four eyes: dave requested this deployment and cannot approve it"
    assert refusal("dave", four_eyes=False) is None
    assert refusal("bob", approved_by=["bob"]) == "bob has already approved"
    assert refusal("anyone", approvers=[]) is None


def test_rejection_refusals() -> None:
    approvers = ["alice", "bob"]
    assert gates.rejection_refusal("bob", env="prod", approvers=approvers, deployer="dave") is None
    assert gates.rejection_refusal("dave", env="prod", approvers=approvers, deployer="dave") is None  # withdraws
    assert "eve is not an approver" in (
        gates.rejection_refusal("eve", env="prod", approvers=approvers, deployer="d") or ""
    )
    assert gates.rejection_refusal("eve", env="dev", approvers=[], deployer="d") is None


@pytest.mark.parametrize(
    "what,stage,paused,refused",
    [
        ("pause", "canary", False, None),
        ("pause", "canary", True, "paused already"),
        ("pause", "pending_approval", False, "applies to a canary"),
        ("promote", "canary", True, None),
        ("promote", "verifying", False, "applies to a canary"),
        ("resume", "canary", True, None),
        ("resume", "canary", False, "not paused"),
        ("abort", "pending_approval", False, None),
        ("abort", "queued", False, None),
        ("abort", "canary", False, None),
        ("abort", "rolling_back", False, "rolling back"),
        ("resume", "deployed", True, "finished (deployed)"),
        ("abort", "rejected", False, "finished (rejected)"),
        ("explode", "canary", False, "unknown control"),
    ],
)
def test_control_refusal(what: str, stage: str, paused: bool, refused: str | None) -> None:
    answer = gates.control_refusal(what, stage=stage, paused=paused)
    if refused is None:
        assert answer is None
    else:
        assert answer is not None and refused in answer
