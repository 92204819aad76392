"""The ``webhook`` channel against a strict, deduplicating local receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import textwrap
import time
from datetime import datetime

import httpx
import pytest

import activities.channels.webhook as webhook_module
from activities.channels.base import ChannelDeps, ChannelError, SendContext
from activities.channels.webhook import WebhookChannel, sign, webhook_body
from tests.fakes.webhook import FakeWebhookReceiver, verify_signature
from workflows.models import Link, Message, MessageField

SECRET = "whsec-test-secret"


@pytest.fixture(scope="module")
def receiver():
    with FakeWebhookReceiver(secret=SECRET) as fake:
        yield fake


@pytest.fixture
def fake(receiver: FakeWebhookReceiver):
    receiver.reset()
    yield receiver
    receiver.reset()


@pytest.fixture
def make_channel(fake: FakeWebhookReceiver, deps: ChannelDeps):
    def make(**overrides) -> WebhookChannel:
        return WebhookChannel("hook", {"url": fake.url, "secret": SECRET, **overrides}, deps)

    return make


def build_message(**overrides) -> Message:
    data = dict(
        title="Build failed: acme/api@main (ci)",
        text="Failing for 2 builds in a row. Ünïcode ✓",
        severity="error",
        fields=[MessageField(title="Branch", value="main"), MessageField(title="Commit", value="abc1234", short=False)],
        links=[Link(text="View run", url="https://ci.example.com/runs/42")],
        labels={"service": "api", "env": "prod"},
        source="pipeline-acme-api",
    )
    data.update(overrides)
    return Message(**data)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def receiver_accepts(secret: str, headers: dict[str, str], raw: bytes) -> bool:
    """Exactly what a receiver does, written here independently of the channel's code."""
    timestamp = headers["x-tocsin-timestamp"]
    if abs(time.time() - int(timestamp)) > 300:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["x-tocsin-signature"])


# --------------------------------------------------------------------------- WebhookChannel


async def test_posts_the_documented_body_and_headers(fake: FakeWebhookReceiver, make_channel):
    before = time.time()
    sent = await make_channel().send(build_message(), "wf-1/notify/hook", 1)

    assert sent.message_id == "wf-1/notify/hook" and not sent.duplicate
    [delivery] = fake.deliveries
    body = delivery["body"]
    assert body == {
        "version": "1",
        "idempotency_key": "wf-1/notify/hook",
        "title": "Build failed: acme/api@main (ci)",
        "text": "Failing for 2 builds in a row. Ünïcode ✓",
        "severity": "error",
        "fields": [
            {"title": "Branch", "value": "main", "short": True},
            {"title": "Commit", "value": "abc1234", "short": False},
        ],
        "links": [{"text": "View run", "url": "https://ci.example.com/runs/42"}],
        "labels": {"service": "api", "env": "prod"},
        "source": "pipeline-acme-api",
        "action": "notify",
        "dedup_key": None,
        "sent_at": body["sent_at"],
    }
    headers = delivery["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["x-tocsin-idempotency-key"] == "wf-1/notify/hook"
    stamp = int(headers["x-tocsin-timestamp"])
    assert int(before) <= stamp <= time.time()
    assert datetime.fromisoformat(body["sent_at"]).timestamp() == pytest.approx(stamp, abs=1)
    assert datetime.fromisoformat(body["sent_at"]).utcoffset().total_seconds() == 0


async def test_signature_verifies_exactly_as_a_receiver_would(fake: FakeWebhookReceiver, make_channel):
    await make_channel().send(build_message(), "k", 1)
    [call] = fake.calls("deliver")

    assert receiver_accepts(SECRET, call.headers, call.raw)
    assert call.headers["x-tocsin-signature"].startswith("sha256=")
    assert len(call.headers["x-tocsin-signature"]) == len("sha256=") + 64
    # The signature binds the body, the timestamp and the secret:
    assert not receiver_accepts(SECRET, call.headers, call.raw.replace(b'"error"', b'"info"'))
    later = {**call.headers, "x-tocsin-timestamp": str(int(call.headers["x-tocsin-timestamp"]) + 1)}
    assert not receiver_accepts(SECRET, later, call.raw)
    assert not receiver_accepts("another-secret", call.headers, call.raw)
    # Stale deliveries (replays) are refused by the timestamp check.
    stale = int(call.headers["x-tocsin-timestamp"]) - 3600
    replay = {**call.headers, "x-tocsin-timestamp": str(stale), "x-tocsin-signature": sign(SECRET, stale, call.raw)}
    assert not receiver_accepts(SECRET, replay, call.raw)


def test_the_docstring_recipe_works():
    """The verification recipe in the module docstring is real code that accepts a real signature."""
    doc = webhook_module.__doc__
    start = doc.index("    import hashlib, hmac, time")
    end = doc.index("\n\n", doc.index("return hmac.compare_digest"))
    namespace: dict = {}
    exec(textwrap.dedent(doc[start:end]), namespace)  # our own docstring
    raw = b'{"version":"1"}'
    stamp = str(int(time.time()))
    headers = {"X-Tocsin-Timestamp": stamp, "X-Tocsin-Signature": sign("s", stamp, raw)}
    assert namespace["verify"](b"s", headers, raw) is True
    assert namespace["verify"](b"t", headers, raw) is False
    assert namespace["verify"](b"s", headers, raw + b" ") is False


async def test_retries_carry_the_same_key_and_the_receiver_dedupes(fake: FakeWebhookReceiver, make_channel):
    fake.fail_after_accept()  # the receiver processed it, its answer was lost
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "wf-1/step/hook", 1)
    assert err.value.retryable

    sent = await make_channel().send(build_message(), "wf-1/step/hook", 2)

    assert sent.message_id == "wf-1/step/hook"
    assert len(fake.deliveries) == 1
    first, second = fake.calls("deliver")
    assert first.headers["x-tocsin-idempotency-key"] == second.headers["x-tocsin-idempotency-key"]
    assert second.response == {"ok": True, "duplicate": True}
    assert receiver_accepts(SECRET, second.headers, second.raw)


async def test_lifecycle_action_and_dedup_key_travel(fake: FakeWebhookReceiver, make_channel):
    channel = make_channel()
    for i, action in enumerate(("trigger", "acknowledge", "resolve")):
        await channel.send(build_message(), f"k{i}", 1, SendContext(action=action, dedup_key="incident-7"))
    assert [(d["body"]["action"], d["body"]["dedup_key"]) for d in fake.deliveries] == [
        ("trigger", "incident-7"),
        ("acknowledge", "incident-7"),
        ("resolve", "incident-7"),
    ]


async def test_wrong_secret_is_permanent(fake: FakeWebhookReceiver, make_channel):
    with pytest.raises(ChannelError) as err:
        await make_channel(secret="not-the-secret").send(build_message(), "k", 1)
    assert not err.value.retryable and err.value.kind == "BadCredentials"
    assert "signature mismatch" in str(err.value)
    assert "not-the-secret" not in str(err.value)
    assert fake.deliveries == []


async def test_request_timeout_408_is_retryable(fake: FakeWebhookReceiver, make_channel):
    fake.fail_next(status=408)
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert err.value.retryable and "408" in str(err.value)


@pytest.mark.parametrize("status", [400, 404, 410, 422])
async def test_client_errors_name_the_status_and_the_receivers_reason(fake: FakeWebhookReceiver, make_channel, status):
    fake.respond_next(status=status, body={"error": "nope"})
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert not err.value.retryable
    assert f"({status})" in str(err.value) and "nope" in str(err.value)


async def test_redirects_are_not_followed(fake: FakeWebhookReceiver, make_channel):
    fake.respond_next(status=301, body="", headers={"Location": "http://127.0.0.1:1/elsewhere"})
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert not err.value.retryable and "301" in str(err.value)
    assert len(fake.requests) == 1


async def test_error_text_carries_no_url_secrets(deps):
    url = f"http://127.0.0.1:{closed_port()}/hooks/T0KEN-IN-PATH?token=T0KEN-IN-QUERY"
    with pytest.raises(ChannelError) as err:
        await WebhookChannel("hook", {"url": url, "secret": SECRET}, deps).send(build_message(), "k", 1)
    assert err.value.retryable  # connection refused
    assert "T0KEN" not in str(err.value) and SECRET not in str(err.value)
    assert "127.0.0.1" in str(err.value)


def test_pacing(make_channel):
    channel = make_channel(rate_per_second=2, burst=2)
    channel.pace(now=10.0)
    channel.pace(now=10.0)
    with pytest.raises(ChannelError) as err:
        channel.pace(now=10.0)
    assert err.value.retryable and err.value.kind == "Paced" and err.value.retry_after == pytest.approx(0.5)


def test_settings_are_required_and_checked(deps):
    for settings in ({"url": "https://x.example.com/h"}, {"secret": "s"}, {"url": "x.example.com", "secret": "s"}):
        with pytest.raises(ChannelError) as err:
            WebhookChannel("hook", settings, deps)
        assert not err.value.retryable


def test_body_helper_is_json_serialisable():
    body = webhook_body(build_message(), "k", "resolve", dedup_key="d")
    assert json.loads(json.dumps(body)) == body and body["action"] == "resolve"


# --------------------------------------------------------------------------- the fake itself


async def test_fake_rejects_what_a_receiver_must_reject(fake: FakeWebhookReceiver):
    raw = json.dumps(webhook_body(build_message(), "k")).encode()
    stamp = str(int(time.time()))
    good = {
        "content-type": "application/json",
        "x-tocsin-timestamp": stamp,
        "x-tocsin-signature": sign(SECRET, stamp, raw),
        "x-tocsin-idempotency-key": "k",
    }
    async with httpx.AsyncClient() as client:

        async def post(headers, body=raw) -> httpx.Response:
            return await client.post(fake.url, content=body, headers=headers)

        assert (await post({k: v for k, v in good.items() if k != "x-tocsin-signature"})).status_code == 400
        old = str(int(time.time()) - 1000)
        assert (
            await post({**good, "x-tocsin-timestamp": old, "x-tocsin-signature": sign(SECRET, old, raw)})
        ).status_code == 401
        assert (await post(good, raw + b" ")).json()["error"] == "signature mismatch"
        # The header is not signed, but the body's copy is: they must agree.
        swapped = await post({**good, "x-tocsin-idempotency-key": "other"})
        assert swapped.status_code == 400 and "differs" in swapped.json()["error"]
        first = await post(good)
        again = await post(good)
    assert first.json() == {"ok": True, "duplicate": False}
    assert again.json() == {"ok": True, "duplicate": True}
    assert len(fake.deliveries) == 1
    assert verify_signature(SECRET.encode(), stamp, raw, good["x-tocsin-signature"]) is None
