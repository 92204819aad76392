"""The ``pagerduty`` channel against a local fake of the Events API v2 (with alert state)."""

from __future__ import annotations

import httpx
import pytest

from activities.channels.base import ChannelDeps, ChannelError, SendContext
from activities.channels.pagerduty import (
    RATE_LIMIT_BACKOFF,
    PagerDutyChannel,
    dedup_key_for,
    pagerduty_event,
    pagerduty_severity,
)
from tests.fakes.pagerduty import FakePagerDuty, validate_event
from workflows.models import Action, Link, Message, MessageField

OTHER_KEY = "0THERKEY0123456789abcdefABCDEF01"


@pytest.fixture(scope="module")
def pd_server():
    with FakePagerDuty(routing_keys=["R0UT1NGKEY0123456789abcdefABCDEF", OTHER_KEY]) as fake:
        yield fake


@pytest.fixture
def fake(pd_server: FakePagerDuty):
    pd_server.reset()
    yield pd_server
    pd_server.reset()


@pytest.fixture
def make_channel(fake: FakePagerDuty, deps: ChannelDeps):
    def make(**overrides) -> PagerDutyChannel:
        return PagerDutyChannel("oncall", {"routing_key": fake.routing_key, "api_url": fake.url, **overrides}, deps)

    return make


def build_message(**overrides) -> Message:
    data = dict(
        title="HighErrorRate: api 5xx > 5%",
        text="Error ratio 7.2% over 10m.\nRunbook below.",
        severity="critical",
        fields=[MessageField(title="Environment", value="prod"), MessageField(title="Ratio", value="7.2%")],
        links=[Link(text="Runbook", url="https://runbooks.example.com/api-5xx")],
        labels={"service": "api", "component": "gateway", "group": "edge", "class": "availability"},
        source="incident-api-5xx",
    )
    data.update(overrides)
    return Message(**data)


# --------------------------------------------------------------------------- rendering and rules


def test_trigger_event_shape():
    event = pagerduty_event(build_message(), "rk", "incident-1", "trigger")
    assert event == {
        "routing_key": "rk",
        "dedup_key": "incident-1",
        "event_action": "trigger",
        "payload": {
            "summary": "HighErrorRate: api 5xx > 5% — Error ratio 7.2% over 10m.",
            "source": "api",
            "severity": "critical",
            "component": "gateway",
            "group": "edge",
            "class": "availability",
            "custom_details": {
                "Environment": "prod",
                "Ratio": "7.2%",
                "labels": {"service": "api", "component": "gateway", "group": "edge", "class": "availability"},
                "text": "Error ratio 7.2% over 10m.\nRunbook below.",
            },
        },
        "links": [{"href": "https://runbooks.example.com/api-5xx", "text": "Runbook"}],
        "client": "Tocsin",
    }
    assert validate_event(event) == ["Length of 'routing_key' is incorrect (should be 32 characters)"]


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acknowledge_and_resolve_carry_only_the_keys(action):
    assert pagerduty_event(build_message(), "rk", "d", action) == {
        "routing_key": "rk",
        "dedup_key": "d",
        "event_action": action,
    }


def test_source_falls_back_and_optional_parts_are_left_out():
    bare = pagerduty_event(Message(title="t", source="wf-1"), "rk", "d", "trigger")
    assert bare["payload"] == {"summary": "t", "source": "wf-1", "severity": "info"}
    assert "links" not in bare
    assert pagerduty_event(Message(title="t"), "rk", "d", "trigger")["payload"]["source"] == "tocsin"


def test_action_urls_become_links():
    message = build_message(
        actions=[
            Action(action_id="ack", text="Acknowledge", url="https://t.example.com/ack"),
            Action(action_id="silence", text="Silence"),
        ]
    )
    assert pagerduty_event(message, "rk", "d", "trigger")["links"][1:] == [
        {"href": "https://t.example.com/ack", "text": "Acknowledge"}
    ]


def test_summary_is_capped():
    payload = pagerduty_event(build_message(title="x" * 2000), "rk", "d", "trigger")["payload"]
    assert len(payload["summary"]) == 1024


@pytest.mark.parametrize(
    "severity, expected",
    [("critical", "critical"), ("error", "error"), ("warning", "warning"), ("info", "info"), ("success", "info")],
)
def test_severity_mapping(severity, expected):
    assert pagerduty_severity(Message(title="t", severity=severity)) == expected


@pytest.mark.parametrize(
    "severity, urgency, expected",
    [
        ("info", "high", "critical"),
        ("warning", "high", "critical"),
        ("success", "high", "critical"),
        ("error", "high", "error"),
        ("critical", "high", "critical"),
        ("critical", "low", "warning"),
        ("error", "low", "warning"),
        ("warning", "low", "warning"),
        ("info", "low", "info"),
        ("error", "", "error"),
        ("info", "urgent", "info"),
    ],
)
def test_urgency_rule(severity, urgency, expected):
    labels = {"urgency": urgency} if urgency else {}
    assert pagerduty_severity(Message(title="t", severity=severity, labels=labels)) == expected


def test_long_dedup_keys_are_hashed_stably():
    long_key = "incident/" + "x" * 300
    assert dedup_key_for("short") == "short"
    assert len(dedup_key_for(long_key)) == 64 and dedup_key_for(long_key) == dedup_key_for(long_key)


# --------------------------------------------------------------------------- PagerDutyChannel


async def test_trigger_acknowledge_resolve_share_the_dedup_key(fake: FakePagerDuty, make_channel):
    channel = make_channel()
    results = []
    for step, action in enumerate(("trigger", "acknowledge", "resolve")):
        results.append(
            await channel.send(
                build_message(), f"wf/step-{step}/oncall", 1, SendContext(action=action, dedup_key="incident-api-5xx")
            )
        )

    assert [r.message_id for r in results] == ["incident-api-5xx"] * 3
    [alert] = fake.alerts
    assert alert["dedup_key"] == "incident-api-5xx"
    assert alert["status"] == "resolved" and alert["log"] == ["trigger", "acknowledge", "resolve"]
    assert alert["severity"] == "critical" and alert["source"] == "api"
    ack, resolve = fake.events[1:]
    assert ack == {"routing_key": fake.routing_key, "dedup_key": "incident-api-5xx", "event_action": "acknowledge"}
    assert resolve["event_action"] == "resolve" and set(resolve) == {"routing_key", "dedup_key", "event_action"}


async def test_notify_triggers_with_the_idempotency_key(fake: FakePagerDuty, make_channel):
    sent = await make_channel().send(build_message(), "wf-1/notify/oncall", 1)
    [event] = fake.events
    assert event["event_action"] == "trigger" and event["dedup_key"] == "wf-1/notify/oncall"
    assert sent.message_id == "wf-1/notify/oncall"
    [call] = fake.calls("enqueue")
    assert call.status == 202 and call.headers["content-type"] == "application/json"


async def test_a_retried_trigger_never_pages_twice(fake: FakePagerDuty, make_channel):
    fake.fail_after_accept()  # PagerDuty took the event, the answer was lost
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1, SendContext(action="trigger", dedup_key="inc-9"))
    assert err.value.retryable
    sent = await make_channel().send(build_message(), "k", 2, SendContext(action="trigger", dedup_key="inc-9"))
    assert sent.message_id == "inc-9"
    [alert] = fake.alerts
    assert alert["triggers"] == 2 and alert["status"] == "triggered"


async def test_long_dedup_key_is_accepted(fake: FakePagerDuty, make_channel):
    key = "incident/" + "k" * 400
    await make_channel().send(build_message(), "x", 1, SendContext(action="trigger", dedup_key=key))
    await make_channel().send(build_message(), "y", 1, SendContext(action="resolve", dedup_key=key))
    [alert] = fake.alerts
    assert alert["dedup_key"] == dedup_key_for(key) and alert["status"] == "resolved"


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
async def test_acknowledge_without_a_dedup_key_is_permanent(fake: FakePagerDuty, make_channel, action):
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1, SendContext(action=action))
    assert not err.value.retryable and "dedup_key" in str(err.value)
    assert fake.requests == []


async def test_invalid_routing_key_is_permanent_with_pagerdutys_errors(fake: FakePagerDuty, make_channel):
    with pytest.raises(ChannelError) as err:
        await make_channel(routing_key="too-short-key").send(build_message(), "k", 1)
    assert not err.value.retryable and err.value.kind == "PagerDutyInvalidEvent"
    assert "rejected (400): Event object is invalid: Length of 'routing_key' is incorrect" in str(err.value)
    assert "too-short-key" not in str(err.value)
    unknown = "U" * 32
    with pytest.raises(ChannelError) as err:
        await make_channel(routing_key=unknown).send(build_message(), "k", 1)
    assert not err.value.retryable and "Invalid routing key" in str(err.value) and unknown not in str(err.value)
    assert fake.alerts == []


async def test_rate_limit_is_retryable_with_a_backoff(fake: FakePagerDuty, make_channel):
    fake.rate_limit_next()
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert err.value.retryable and err.value.kind == "RateLimited"
    assert err.value.retry_after == RATE_LIMIT_BACKOFF
    assert "arriving too quickly" in str(err.value)
    [call] = fake.calls("enqueue")
    assert call.status == 429 and "retry-after" not in call.headers


def test_pacing_per_routing_key(fake: FakePagerDuty, make_channel):
    channel = make_channel()
    for _ in range(PagerDutyChannel.burst):
        channel.pace(now=7.0)
    with pytest.raises(ChannelError) as err:
        make_channel().pace(now=7.0)  # same key, same bucket
    assert err.value.retryable and err.value.kind == "Paced"
    assert err.value.retry_after == pytest.approx(0.5)
    assert fake.routing_key not in channel.pace_key()  # the key is a secret
    make_channel(routing_key=OTHER_KEY).pace(now=7.0)  # another integration: its own bucket


def test_settings_are_checked(deps):
    with pytest.raises(ChannelError):
        PagerDutyChannel("p", {}, deps)
    with pytest.raises(ChannelError) as err:
        PagerDutyChannel("p", {"routing_key": "k", "api_url": "events.pagerduty.com"}, deps)
    assert err.value.kind == "ChannelMisconfigured"
    assert PagerDutyChannel("p", {"routing_key": "k"}, deps)._url == "https://events.pagerduty.com/v2/enqueue"


# --------------------------------------------------------------------------- the fake itself


async def test_fake_alert_lifecycle(fake: FakePagerDuty):
    async with httpx.AsyncClient() as client:

        async def send(action: str, dedup: str | None = "d1", **payload) -> httpx.Response:
            event = {"routing_key": fake.routing_key, "event_action": action}
            if dedup:
                event["dedup_key"] = dedup
            if action == "trigger":
                event["payload"] = {"summary": "s", "source": "h", "severity": "error", **payload}
            return await client.post(fake.url, json=event)

        assert (await send("resolve")).status_code == 202  # nothing open: dropped
        assert fake.alerts == []
        first = await send("trigger")
        assert first.json() == {"status": "success", "message": "Event processed", "dedup_key": "d1"}
        await send("resolve")
        await send("trigger")  # after a resolve: a new alert
        generated = (await send("trigger", dedup=None)).json()["dedup_key"]
        bad = await send("trigger", severity="fatal")
        assert bad.status_code == 400 and bad.json()["status"] == "invalid event"
        assert "severity" in bad.json()["errors"][0]
        assert (await send("acknowledge", dedup=None)).status_code == 400
        form = await client.post(fake.url, data={"routing_key": fake.routing_key})
        assert form.status_code == 400
    assert [(a["dedup_key"], a["status"]) for a in fake.alerts] == [
        ("d1", "resolved"),
        ("d1", "triggered"),
        (generated, "triggered"),
    ]


def test_channel_urgency_setting_overrides_the_label() -> None:
    from workflows.models import Message as Msg

    warning = Msg(title="queue slow", severity="warning")
    assert pagerduty_event(warning, "rk", "d", "trigger", urgency="high")["payload"]["severity"] == "critical"
    critical = Msg(title="down", severity="critical", labels={"urgency": "high"})
    assert pagerduty_event(critical, "rk", "d", "trigger", urgency="low")["payload"]["severity"] == "warning"
    assert pagerduty_event(critical, "rk", "d", "trigger")["payload"]["severity"] == "critical"
