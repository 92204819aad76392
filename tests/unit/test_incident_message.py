"""The incident's main message: what a responder needs is in it, and it changes when someone acts."""

from __future__ import annotations

from datetime import UTC, datetime

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
    assert [a.action_id for a in msg.actions] == ["tocsin_ack", "tocsin_resolve", "tocsin_escalate"]


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
