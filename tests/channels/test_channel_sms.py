"""The ``sms`` channel (Twilio) against a local fake of Twilio's Messages API."""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl

import httpx
import pytest

from activities.channels.base import ChannelDeps, ChannelError, SendContext
from activities.channels.sms import MAX_CHARS, SmsChannel, sms_body, sms_ref
from tests.fakes.twilio import FakeTwilio, segments
from workflows.models import Message

ALICE, BOB, BAD = "+15551230001", "+15551230002", "+15559999999"


@pytest.fixture(scope="module")
def twilio_server():
    with FakeTwilio(invalid_numbers=[BAD]) as fake:
        yield fake


@pytest.fixture
def fake(twilio_server: FakeTwilio):
    twilio_server.reset()
    yield twilio_server
    twilio_server.reset()


@pytest.fixture
def make_channel(fake: FakeTwilio, deps: ChannelDeps):
    def make(**overrides) -> SmsChannel:
        settings = {
            "provider": "twilio",
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "from": fake.from_number,
            "to": [ALICE, BOB],
            "api_url": fake.url,
            **overrides,
        }
        return SmsChannel("oncall-sms", settings, deps)

    return make


def build_message(**overrides) -> Message:
    data = dict(
        title="HighErrorRate: api 5xx > 5%",
        text="\nError ratio 7.2% over 10m.\nSecond line.",
        severity="critical",
        source="incident-1",
    )
    data.update(overrides)
    return Message(**data)


# --------------------------------------------------------------------------- rendering


def test_body_format():
    ref = sms_ref("wf-1/page/oncall-sms")
    assert len(ref) == 8 and ref == sms_ref("wf-1/page/oncall-sms") and ref != sms_ref("wf-1/page/other")
    assert sms_body(build_message(), ref) == (
        f"[CRITICAL] HighErrorRate: api 5xx > 5% — Error ratio 7.2% over 10m. ref:{ref}"
    )
    assert sms_body(Message(title="Deployed  api\nv2", severity="success")) == "[SUCCESS] Deployed api v2"


def test_body_is_capped_and_keeps_the_ref():
    body = sms_body(build_message(title="t" * 500, text="x" * 500), "abcd1234")
    assert len(body) == MAX_CHARS and body.endswith("… ref:abcd1234")


# --------------------------------------------------------------------------- SmsChannel


async def test_texts_every_recipient_with_basic_auth(fake: FakeTwilio, make_channel):
    sent = await make_channel().send(build_message(), "wf-1/page/oncall-sms", 1)

    alice, bob = fake.messages
    assert (alice["to"], bob["to"]) == (ALICE, BOB)
    assert alice["from"] == fake.from_number
    assert alice["body"] == sms_body(build_message(), sms_ref("wf-1/page/oncall-sms"))
    assert sent.message_id == f"{alice['sid']},{bob['sid']}" and not sent.duplicate
    assert alice["sid"].startswith("SM") and len(alice["sid"]) == 34
    for call in fake.calls("create"):
        assert call.status == 201
        assert call.headers["content-type"] == "application/x-www-form-urlencoded"
        expected = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
        assert call.headers["authorization"] == f"Basic {expected}"
        assert set(dict(parse_qsl(call.raw.decode()))) == {"To", "From", "Body"}
    assert fake.calls("list") == []  # a first attempt does not look for earlier deliveries


@pytest.mark.parametrize("to, expected", [(ALICE, [ALICE]), (f"{ALICE}, {BOB}", [ALICE, BOB]), ([BOB], [BOB])])
async def test_to_forms(fake: FakeTwilio, make_channel, to, expected):
    await make_channel(to=to).send(build_message(), "k", 1)
    assert [m["to"] for m in fake.messages] == expected


async def test_messaging_service_sender(fake: FakeTwilio, make_channel):
    service = fake.services[0]
    await make_channel(**{"from": service, "to": ALICE}).send(build_message(), "k", 1)
    [call] = fake.calls("create")
    form = dict(parse_qsl(call.raw.decode()))
    assert form["MessagingServiceSid"] == service and "From" not in form
    assert fake.messages[0]["messaging_service_sid"] == service


async def test_wrong_token_stops_at_once_and_is_permanent(fake: FakeTwilio, make_channel):
    with pytest.raises(ChannelError) as err:
        await make_channel(auth_token="wrong-token-123").send(build_message(), "k", 1)
    assert not err.value.retryable and err.value.kind == "BadCredentials"
    assert "20003" in str(err.value) and "wrong-token-123" not in str(err.value)
    assert len(fake.requests) == 1 and fake.messages == []


async def test_invalid_number_fails_that_recipient_only(fake: FakeTwilio, make_channel):
    with pytest.raises(ChannelError) as err:
        await make_channel(to=[ALICE, BAD, BOB]).send(build_message(), "k", 1)
    assert not err.value.retryable and err.value.kind == "InvalidRecipient"
    assert "21211" in str(err.value) and BAD in str(err.value) and "2 of 3" in str(err.value)
    assert [m["to"] for m in fake.messages] == [ALICE, BOB]


async def test_invalid_sender_is_a_config_error(fake: FakeTwilio, make_channel):
    with pytest.raises(ChannelError) as err:
        await make_channel(**{"from": "+15550000000"}).send(build_message(), "k", 1)
    assert not err.value.retryable and err.value.kind == "ChannelMisconfigured" and "21606" in str(err.value)
    assert len(fake.requests) == 1


async def test_unknown_account_is_permanent(fake: FakeTwilio, make_channel):
    with pytest.raises(ChannelError) as err:
        await make_channel(account_sid="AC" + "f" * 32).send(build_message(), "k", 1)
    assert not err.value.retryable


async def test_rate_limit_error_carries_twilios_code(fake: FakeTwilio, make_channel):
    fake.rate_limit_next(retry_after=2)
    with pytest.raises(ChannelError) as err:
        await make_channel(to=ALICE).send(build_message(), "k", 1)
    assert err.value.retry_after == 2 and "20429" in str(err.value)


async def test_rate_limit_without_a_hint(fake: FakeTwilio, make_channel):
    fake.rate_limit_next(retry_after=None)
    with pytest.raises(ChannelError) as err:
        await make_channel(to=ALICE).send(build_message(), "k", 1)
    assert err.value.retryable and err.value.retry_after is None


async def test_partial_failure_retries_only_the_missing_recipient(fake: FakeTwilio, make_channel):
    fake.fail_next(status=500)  # Alice's request fails, Bob's succeeds
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "wf/page/sms", 1)
    assert err.value.retryable and "1 of 2" in str(err.value)
    assert [m["to"] for m in fake.messages] == [BOB]

    sent = await make_channel().send(build_message(), "wf/page/sms", 2)

    assert sorted(m["to"] for m in fake.messages) == [ALICE, BOB]  # Bob is not texted twice
    bob, alice = fake.messages
    assert sent.message_id == f"{alice['sid']},{bob['sid']}" and not sent.duplicate
    assert [c.query["To"] for c in fake.calls("list")] == [ALICE, BOB]
    assert all(c.query["From"] == fake.from_number for c in fake.calls("list"))


async def test_lost_response_is_not_texted_twice(fake: FakeTwilio, make_channel):
    fake.fail_after_accept()  # Twilio queued it, the 201 was lost
    with pytest.raises(ChannelError) as err:
        await make_channel(to=ALICE).send(build_message(), "wf/page/sms", 1)
    assert err.value.retryable

    sent = await make_channel(to=ALICE).send(build_message(), "wf/page/sms", 2)

    [message] = fake.messages
    assert sent.duplicate and sent.message_id == message["sid"]


async def test_same_text_with_another_key_is_sent(fake: FakeTwilio, make_channel):
    await make_channel(to=ALICE).send(build_message(), "wf/page-1/sms", 1)
    await make_channel(to=ALICE).send(build_message(), "wf/page-2/sms", 2)
    assert len(fake.messages) == 2


async def test_failed_lookup_sends_anyway(fake: FakeTwilio, make_channel):
    """The at-least-once corner: when Twilio cannot say whether it was sent, send."""
    await make_channel(to=ALICE).send(build_message(), "k", 1)
    fake.fail_next(status=503, route="list")
    sent = await make_channel(to=ALICE).send(build_message(), "k", 2)
    assert not sent.duplicate and len(fake.messages) == 2


async def test_dedupe_can_be_turned_off(fake: FakeTwilio, make_channel):
    await make_channel(to=ALICE, dedupe="false").send(build_message(), "k", 1)
    await make_channel(to=ALICE, dedupe="false").send(build_message(), "k", 2)
    assert fake.calls("list") == [] and len(fake.messages) == 2


async def test_update_is_a_new_text(fake: FakeTwilio, make_channel):
    await make_channel(to=ALICE).send(build_message(title="Resolved"), "k2", 1, SendContext(update_of="SMx"))
    assert fake.messages[0]["body"].startswith("[CRITICAL] Resolved")


def test_pacing_per_sender(make_channel):
    channel = make_channel()
    for _ in range(SmsChannel.burst):
        channel.pace(now=3.0)
    with pytest.raises(ChannelError) as err:
        make_channel(to=ALICE).pace(now=3.0)  # same sender, same bucket
    assert err.value.retryable and err.value.kind == "Paced" and err.value.retry_after == pytest.approx(1.0)
    make_channel(**{"from": "+15005550007"}).pace(now=3.0)


def test_settings_are_checked(fake: FakeTwilio, deps):
    base = {"account_sid": "AC1", "auth_token": "t", "from": "+15005550006", "to": ALICE}
    for bad in ({"provider": "nexmo"}, {"to": " , "}, {"api_url": "api.twilio.com"}, {"to": ""}):
        with pytest.raises(ChannelError) as err:
            SmsChannel("s", {**base, **bad}, deps)
        assert not err.value.retryable
    assert SmsChannel("s", base, deps)._messages_url == "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"


# --------------------------------------------------------------------------- the fake itself


async def test_fake_contract(fake: FakeTwilio):
    auth = (fake.account_sid, fake.auth_token)
    async with httpx.AsyncClient() as client:
        as_json = await client.post(
            fake.messages_url, auth=auth, json={"To": ALICE, "From": fake.from_number, "Body": "x"}
        )
        assert as_json.status_code == 400 and as_json.json()["code"] == 21604
        no_auth = await client.post(fake.messages_url, data={"To": ALICE})
        assert no_auth.status_code == 401 and no_auth.json()["code"] == 20003
        no_body = await client.post(fake.messages_url, auth=auth, data={"To": ALICE, "From": fake.from_number})
        assert no_body.json()["code"] == 21602
        too_long = await client.post(
            fake.messages_url, auth=auth, data={"To": ALICE, "From": fake.from_number, "Body": "x" * 1601}
        )
        assert too_long.json()["code"] == 21617
        for to in (ALICE, BOB, ALICE):
            created = await client.post(
                fake.messages_url, auth=auth, data={"To": to, "From": fake.from_number, "Body": f"hi {to}"}
            )
            assert created.status_code == 201 and created.json()["status"] == "queued"
        listed = await client.get(fake.messages_url, auth=auth, params={"To": ALICE, "PageSize": "1"})
    assert [m["to"] for m in listed.json()["messages"]] == [ALICE]
    assert listed.json()["messages"][0]["sid"] == fake.messages[2]["sid"]  # newest first


def test_segments():
    assert segments("x" * 160) == 1 and segments("x" * 161) == 2
    assert segments("a — b") == 1 and segments("—" * 71) == 2  # the em dash forces UCS-2 (70 per segment)
