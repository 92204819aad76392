"""The deployment's status message: the buttons that apply at each stage, and who decided when."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from activities.channels.discord import discord_payload
from activities.channels.render import slack_blocks
from activities.channels.teams import teams_payload
from tests.fakes.slack import validate_blocks
from workflows.deployment import render
from workflows.deployment.models import ApprovalRecord, DeploymentState, TimelineEntry

WID = "deploy/payments/prod/v1.2.3"
AT = datetime(2026, 11, 30, 10, 2, tzinfo=UTC)


def _state(**extra: object) -> DeploymentState:
    base: dict[str, object] = {
        "workflow_id": WID,
        "service": "payments",
        "env": "prod",
        "version": "v1.2.3",
        "by": "carol",
        "required_approvals": 1,
    }
    base.update(extra)
    return DeploymentState.model_validate(base)


def _buttons(state: DeploymentState) -> list[tuple[str, str, str | None]]:
    return [(a.action_id, a.value, a.style) for a in render.status_message(state).actions]


def test_approval_request_has_approve_and_reject() -> None:
    assert _buttons(_state(stage="pending_approval")) == [
        ("tocsin_approve", WID, "primary"),
        ("tocsin_reject", WID, "danger"),
    ]


def test_after_approval_the_message_says_who_and_when_without_decision_buttons() -> None:
    approval = ApprovalRecord(by="alice", at=AT, comment="ship it")
    msg = render.status_message(_state(stage="approved", approvals=[approval]))
    assert "Approved by alice at 10:02 UTC: ship it" in msg.text
    assert msg.actions == []


def test_partial_approvals_are_listed_while_the_buttons_stay() -> None:
    state = _state(stage="pending_approval", required_approvals=2, approvals=[ApprovalRecord(by="alice", at=AT)])
    msg = render.status_message(state)
    assert "Approved by alice at 10:02 UTC" in msg.text.splitlines()
    assert [a.action_id for a in msg.actions] == ["tocsin_approve", "tocsin_reject"]


def test_rejected_message_says_who_when_and_why_without_buttons() -> None:
    timeline = [
        TimelineEntry(at=AT, actor="bob", action="rejected", detail="tests are red"),
        TimelineEntry(at=AT, actor="tocsin", action="rejected", detail="rejected by bob: tests are red"),
    ]
    state = _state(stage="rejected", outcome="rejected", reason="rejected by bob: tests are red", timeline=timeline)
    msg = render.status_message(state)
    assert "Rejected by bob at 10:02 UTC: tests are red" in msg.text
    assert "rejected by bob: tests are red" not in msg.text  # said once
    assert msg.actions == []


def test_rejected_by_a_gate_keeps_the_reason() -> None:
    timeline = [TimelineEntry(at=AT, actor="tocsin", action="rejected", detail="blocked: freeze")]
    msg = render.status_message(
        _state(stage="rejected", outcome="rejected", reason="blocked: freeze", timeline=timeline)
    )
    assert "blocked: freeze" in msg.text and "Rejected by" not in msg.text


def test_running_canary_offers_pause_promote_abort() -> None:
    assert _buttons(_state(stage="canary", weight=25)) == [
        ("tocsin_pause", WID, None),
        ("tocsin_promote", WID, None),
        ("tocsin_abort", WID, "danger"),
    ]


def test_paused_canary_offers_resume_instead_of_pause() -> None:
    state = _state(stage="canary", weight=25, paused=True)
    assert [b[0] for b in _buttons(state)] == ["tocsin_resume", "tocsin_promote", "tocsin_abort"]
    assert "canary at 25%, paused" in render.status_message(state).title


def test_health_checks_offer_abort_only() -> None:
    assert [b[0] for b in _buttons(_state(stage="verifying", weight=100))] == ["tocsin_abort"]


def test_no_buttons_once_it_ends_or_between_stages() -> None:
    for stage in ("deployed", "rolled_back", "expired"):
        assert _buttons(_state(stage=stage, outcome=stage)) == []
    for stage in ("starting", "checking", "approved", "queued", "rolling_back"):
        assert _buttons(_state(stage=stage)) == []
    # The outcome wins over a stage not yet moved on.
    assert _buttons(_state(stage="canary", outcome="deployed")) == []


def test_slack_renders_the_canary_buttons_with_ids_values_and_style() -> None:
    blocks = slack_blocks(render.status_message(_state(stage="canary", weight=25, paused=True)))
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert [(e["action_id"], e["value"], e.get("style")) for e in actions["elements"]] == [
        ("tocsin_resume", WID, "primary"),
        ("tocsin_promote", WID, None),
        ("tocsin_abort", WID, "danger"),
    ]
    assert all(e["type"] == "button" and "url" not in e for e in actions["elements"])
    assert validate_blocks(blocks) is None


def test_other_channels_ignore_chat_only_buttons() -> None:
    msg = render.status_message(_state(stage="canary", weight=25))
    card = json.dumps(teams_payload(msg))
    assert "tocsin_" not in card and "Action.Submit" not in card  # Teams actions are out of scope
    assert "tocsin_" not in json.dumps(discord_payload(msg))
