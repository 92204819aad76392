"""What an incident carries stays bounded: the alert ledger, the detail sample, the timeline, the main message."""

from __future__ import annotations

from datetime import UTC, datetime

from workflows.incident.bounded import (
    DETAIL_BYTES,
    DETAIL_FIRING,
    DETAIL_RESOLVED,
    TIMELINE_HEAD,
    TIMELINE_TAIL,
    AlertBook,
    add_to_timeline,
    batch_entries,
    main_message,
)
from workflows.incident.models import Alert, AlertBatch, IncidentState, TimelineEntry
from workflows.policy.alert_ledger import AlertLedger, severity_code


def _alert(i: int, status: str = "firing", severity: str = "warning", labels: int = 15) -> Alert:
    lbl = {"alertname": f"Name{i % 3}", "severity": severity, "instance": f"host-{i}"}
    lbl.update({f"k{j}": f"value-{j}-{i}" for j in range(labels - 3)})
    return Alert(
        fingerprint=f"fp-{i}",
        status=status,  # type: ignore[arg-type]
        labels=lbl,
        annotations={"summary": f"summary {i}"},
    )


def _state() -> IncidentState:
    return IncidentState(id="incident/x", route_path="0", group_labels={"service": "payments"})


def test_ledger_counts_and_packs() -> None:
    ledger = AlertLedger()
    assert ledger.record("a", severity_code({"severity": "critical"}, True)) == "new"
    assert ledger.record("a", "c") == "same"
    assert ledger.record("b", severity_code({}, True)) == "new"
    assert (ledger.firing(), ledger.resolved(), ledger.severity()) == (2, 0, "critical")
    assert ledger.record("a", "C") == "changed"
    assert (ledger.firing(), ledger.resolved(), ledger.severity()) == (1, 1, "warning")
    again = AlertLedger(ledger.pack())
    assert len(ledger.pack()) == 26 and again.pack() == ledger.pack()
    assert (again.firing(), again.resolved(), again.severity()) == (1, 1, "warning")
    assert again.record("b", "W") == "changed" and again.severity() == "critical", "none firing: the worst seen"


def test_ledger_is_bounded() -> None:
    ledger = AlertLedger(capacity=3)
    assert [ledger.record(f"x{i}", "w") for i in range(5)] == ["new", "new", "new", "untracked", "untracked"]
    assert ledger.record("x0", "W") == "changed" and len(ledger) == 3


def test_resends_change_nothing_and_resolved_alerts_are_pruned() -> None:
    st = _state()
    book = AlertBook(st)
    firing = [_alert(i) for i in range(1000)]
    assert len(book.apply(AlertBatch(alerts=firing))) == 1000
    assert book.apply(AlertBatch(alerts=firing)) == []
    assert st.counts.firing == 1000 and st.counts.seen == 1000
    assert len(st.firing()) == DETAIL_FIRING and len(st.alerts) == DETAIL_FIRING
    resolved = [a.model_copy(update={"status": "resolved"}) for a in firing]
    book.apply(AlertBatch(alerts=resolved))
    assert (st.counts.firing, st.counts.resolved, st.counts.seen) == (0, 1000, 1000)
    assert book.all_resolved()
    assert len(st.alerts) == DETAIL_RESOLVED and all(a.status == "resolved" for a in st.alerts.values())
    assert st.alert_names == ["Name0", "Name1", "Name2"]


def test_detail_stays_within_its_byte_budget() -> None:
    st = _state()
    book = AlertBook(st)
    huge = [
        Alert(fingerprint=f"h{i}", labels={"alertname": "H", "x": "v" * 4000}, annotations={"d": "d" * 16000})
        for i in range(200)
    ]
    book.apply(AlertBatch(alerts=huge))
    assert len(AlertBatch(alerts=list(st.alerts.values())).model_dump_json()) <= DETAIL_BYTES * 1.1
    assert st.counts.firing == 200


def test_a_state_from_before_the_ledger_is_migrated() -> None:
    st = _state()
    st.alerts = {
        a.fingerprint: a for a in [_alert(i) for i in range(300)] + [_alert(i, "resolved") for i in range(300, 350)]
    }
    book = AlertBook(st, "")
    assert (st.counts.firing, st.counts.resolved, st.counts.seen) == (300, 50, 350)
    assert len(st.alerts) <= DETAIL_FIRING + DETAIL_RESOLVED
    assert book.apply(AlertBatch(alerts=[_alert(5)])) == [], "known alerts stay known"


def test_severity_follows_the_firing_alerts() -> None:
    st = _state()
    book = AlertBook(st)
    book.apply(AlertBatch(alerts=[_alert(1, severity="critical"), _alert(2)]))
    assert book.severity() == "critical"
    book.apply(AlertBatch(alerts=[_alert(1, "resolved", severity="critical")]))
    assert book.severity() == "warning"


def test_timeline_keeps_head_and_tail_and_counts_the_rest() -> None:
    st = _state()
    at = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(5000):
        add_to_timeline(st, at, "alertmanager", "alert firing", f"entry {i}" + "x" * 2000)
    assert len(st.timeline) == TIMELINE_HEAD + 1 + TIMELINE_TAIL
    assert st.timeline_elided == 5000 - TIMELINE_HEAD - TIMELINE_TAIL
    assert st.timeline[0].detail.startswith("entry 0") and st.timeline[-1].detail.startswith("entry 4999")
    assert (
        st.timeline[TIMELINE_HEAD].action == "elided"
        and f"{st.timeline_elided} entries" in st.timeline[TIMELINE_HEAD].detail
    )
    assert all(len(e.detail.encode()) <= 512 for e in st.timeline)


def test_big_batches_are_one_timeline_entry_per_status() -> None:
    alerts = [_alert(i) for i in range(50)] + [_alert(i, "resolved") for i in range(50, 60)]
    entries = batch_entries("am", alerts)
    assert [(a, d) for _, a, d in entries] == [
        ("alerts firing", "50 alerts: Name0, Name1, Name2"),
        ("alerts resolved", "10 alerts: Name0, Name1, Name2"),
    ]
    assert batch_entries("am", alerts[:2]) == [("am", "alert firing", "Name0"), ("am", "alert firing", "Name1")]


def test_main_message_counts_every_alert_and_stays_small() -> None:
    st = _state()
    book = AlertBook(st)
    alerts = [_alert(i).model_copy(update={"annotations": {"summary": "s" * 16000}}) for i in range(10_000)]
    book.apply(AlertBatch(alerts=alerts))
    message = main_message(st)
    assert {f.title: f.value for f in message.fields}["Alerts firing"] == "10000 of 10000"
    assert "… and 9990 more" in message.text
    assert message.text.count("•") == 10
    assert len(message.model_dump_json()) < 32 * 1024
    assert "Name0, Name1, Name2" in message.title


def test_main_message_of_a_small_group_is_as_before() -> None:
    st = _state()
    AlertBook(st).apply(AlertBatch(alerts=[_alert(1), _alert(2)]))
    message = main_message(st, note="hello")
    assert {f.title: f.value for f in message.fields}["Alerts firing"] == "2 of 2"
    assert message.text == "• Name1: summary 1\n• Name2: summary 2\nhello"


def test_resends_refill_the_detail_sample_without_a_change() -> None:
    st = _state()
    book = AlertBook(st)
    alerts = [_alert(i) for i in range(300)]
    book.apply(AlertBatch(alerts=alerts))
    book.apply(AlertBatch(alerts=[a.model_copy(update={"status": "resolved"}) for a in alerts[:100]]))
    assert len(st.firing()) == 0 and st.counts.firing == 200
    assert book.apply(AlertBatch(alerts=alerts[100:])) == []
    assert len(st.firing()) == DETAIL_FIRING and st.counts.firing == 200


def test_a_long_timeline_carried_over_is_trimmed_at_once() -> None:
    st = _state()
    at = datetime(2024, 1, 1, tzinfo=UTC)
    st.timeline = [TimelineEntry(at=at, actor="a", action="alert firing", detail=str(i)) for i in range(3000)]
    AlertBook(st)
    assert len(st.timeline) == TIMELINE_HEAD + 1 + TIMELINE_TAIL and st.timeline_elided == 3000 - 120
