"""The gateway sends an incident's search attributes with its first signal-with-start, not with every one.

Temporal uses them only when the call starts the incident, and checks them on every call (on the
dev server, a database read each). ``operations.alerts`` remembers, for ``ATTRIBUTES_FRESH``
seconds, the incidents it sent them for; an incident started without them publishes them itself
(``tests/workflows/test_own_attributes.py``).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from operations import Context, Unavailable
from operations import alerts as alerts_module
from operations.alerts import dispatch_alerts
from workflows.config import default_config
from workflows.incident.models import Alert


class RecordingClient:
    """Accepts every signal-with-start and keeps the search attributes each one carried (None: none)."""

    def __init__(self) -> None:
        self.carried: list[dict[str, Any] | None] = []
        self.down = False

    async def start_workflow(self, *args: Any, **kwargs: Any) -> None:
        if self.down:
            raise RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b"")
        attributes = kwargs["search_attributes"]
        self.carried.append(None if attributes is None else {p.key.name: p.value for p in attributes})


def _alert(service: str, instance: str = "i0") -> Alert:
    labels = {"alertname": "DiskFull", "service": service, "env": "prod", "severity": "critical", "instance": instance}
    return Alert(fingerprint=f"{service}/{instance}", labels=labels)


def _ctx() -> tuple[Context, RecordingClient]:
    client = RecordingClient()
    return Context(client, default_config(), f"q-{uuid.uuid4().hex[:8]}"), client  # type: ignore[arg-type]


async def test_only_the_first_call_for_an_incident_carries_its_attributes() -> None:
    ctx, client = _ctx()
    for k in range(3):
        await dispatch_alerts(ctx, [_alert("payments", f"i{k}")], source="test")
    first, *rest = client.carried
    assert first == {
        "TocsinKind": "incident",
        "TocsinStatus": "triggered",
        "TocsinSeverity": "critical",
        "TocsinService": "payments",
        "TocsinEnvironment": "prod",
    }
    assert rest == [None, None]
    await dispatch_alerts(ctx, [_alert("checkout")], source="test")
    assert client.carried[-1] is not None, "another incident: its own first call carries them"


async def test_they_are_sent_again_once_the_window_has_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, client = _ctx()
    await dispatch_alerts(ctx, [_alert("payments")], source="test")
    monkeypatch.setattr(alerts_module, "ATTRIBUTES_FRESH", 0.0)
    await dispatch_alerts(ctx, [_alert("payments", "i1")], source="test")
    assert [c is not None for c in client.carried] == [True, True]


async def test_a_call_that_failed_does_not_count_as_sent() -> None:
    ctx, client = _ctx()
    client.down = True
    with pytest.raises(Unavailable):
        await dispatch_alerts(ctx, [_alert("payments")], source="test")
    client.down = False
    await dispatch_alerts(ctx, [_alert("payments", "i1")], source="test")
    assert client.carried == [client.carried[0]] and client.carried[0] is not None


async def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerts_module, "ATTRIBUTES_REMEMBERED", 2)
    ctx, client = _ctx()
    for service in ("a", "b", "c", "a"):
        await dispatch_alerts(ctx, [_alert(service)], source="test")
    assert [c is not None for c in client.carried] == [True, True, True, True], "the oldest was forgotten"
    assert len(alerts_module._sent_attributes._sent) <= 2
