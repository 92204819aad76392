"""The incident's main message: what a responder needs is in it, and it changes when someone acts."""

from __future__ import annotations

from datetime import UTC, datetime

from activities.channels.render import slack_blocks
from tests.fakes.slack import validate_blocks
from workflows.policy.incidents import incident_message

ALERTS = [
    {
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "payments"},
        "annotations": {"summary": "5xx at 12%", "runbook_url": "https://runbooks.example.com/high-error-rate"},
        "generator_url": "https://prometheus.example.com/graph?g0.expr=x",
    }
]


def _message(status: str, **extra: object) -> object:
    return incident_message(
        incident="incident/abc123",
        status=status,
        severity="critical",
        group_labels={"alertname": "HighErrorRate", "service": "payments"},
        alerts=ALERTS,
        **extra,  # type: ignore[arg-type]
    )


def test_first_message_names_the_incident_id_and_links_the_runbook() -> None:
    msg = _message("notified")
    assert any(f.title == "Incident" and f.value == "incident/abc123" for f in msg.fields)
    assert [(link.text, link.url) for link in msg.links] == [
        ("Source", "https://prometheus.example.com/graph?g0.expr=x"),
        ("Runbook", "https://runbooks.example.com/high-error-rate"),
    ]
    assert [a.action_id for a in msg.actions] == ["tocsin_ack", "tocsin_resolve", "tocsin_escalate", "tocsin_snooze"]
    assert [a.text for a in msg.actions] == ["Acknowledge", "Resolve", "Escalate now", "Snooze 1h"]
    assert {a.value for a in msg.actions} == {"incident/abc123"}  # each button names the workflow it acts on


def test_acknowledged_message_says_who_and_why_and_drops_the_buttons() -> None:
    when = datetime(2026, 11, 30, 10, 2, tzinfo=UTC)
    msg = _message("acknowledged", handled_by="alice", handled_at=when, handled_note="on it")
    assert "Acknowledged by alice at 10:02 UTC: on it" in msg.text
    assert msg.actions == []


def test_resolved_message_says_who_and_drops_the_buttons() -> None:
    msg = _message("resolved", handled_by="bob", handled_note="rolled back")
    assert "Resolved by bob: rolled back" in msg.text
    assert msg.actions == [] and msg.severity == "success"


def test_runbooks_are_deduplicated_and_numbered() -> None:
    alerts = [
        {**ALERTS[0], "annotations": {"runbook_url": "https://rb/a"}},
        {**ALERTS[0], "annotations": {"runbook_url": "https://rb/a"}},
        {**ALERTS[0], "annotations": {"runbook_url": "https://rb/b"}},
        {**ALERTS[0], "annotations": {"runbook_url": "javascript:alert(1)"}},
    ]
    msg = incident_message(incident="incident/x", status="notified", severity="error", group_labels={}, alerts=alerts)
    assert [link.text for link in msg.links] == ["Source", "Runbook 1", "Runbook 2"]


def test_slack_renders_the_incident_buttons_with_their_ids_and_the_incident_id() -> None:
    blocks = slack_blocks(_message("notified"))
    [actions] = [b for b in blocks if b["type"] == "actions"]
    buttons = [(e["action_id"], e.get("value"), e.get("style")) for e in actions["elements"] if "url" not in e]
    assert buttons == [
        ("tocsin_ack", "incident/abc123", "primary"),
        ("tocsin_resolve", "incident/abc123", None),
        ("tocsin_escalate", "incident/abc123", "danger"),
        ("tocsin_snooze", "incident/abc123", None),
    ]
    assert validate_blocks(blocks) is None


def test_handled_incident_renders_no_buttons_in_slack_but_keeps_its_links() -> None:
    blocks = slack_blocks(_message("acknowledged", handled_by="alice"))
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert all("url" in e for e in actions["elements"])  # Source and Runbook only
