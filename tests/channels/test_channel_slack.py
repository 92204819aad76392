"""The ``slack`` channel against a local fake of the Slack Web API (and the fake's own contract)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.channels.base import ChannelDeps, ChannelError, SendContext
from activities.channels.slack import EVENT_TYPE, SlackChannel
from tests.fakes.slack import FakeSlack, channel_id_for
from workflows.models import Action, Link, Message, MessageField

CHANNEL_ID = "C0123ABCD"


@pytest.fixture(scope="module")
def slack_server():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def fake(slack_server: FakeSlack):
    slack_server.reset()
    yield slack_server
    slack_server.reset()


@pytest.fixture
async def make_channel(fake: FakeSlack, tmp_path):
    """Build SlackChannels that share one ChannelDeps, like a worker does; closes the clients after."""
    deps = ChannelDeps(http=httpx.AsyncClient(), home=tmp_path)

    def make(channel: str = CHANNEL_ID, **overrides) -> SlackChannel:
        settings = {"token": fake.token, "channel": channel, "api_url": fake.url, **overrides}
        return SlackChannel("team-slack", settings, deps)

    yield make
    session = deps.extra.get("aiohttp")
    if session is not None:
        await session.close()
    await deps.http.aclose()


@pytest.fixture
async def api(fake: FakeSlack):
    """A raw HTTP client for the fake, authorised."""
    async with httpx.AsyncClient(base_url=fake.url, headers={"Authorization": f"Bearer {fake.token}"}) as client:
        yield client


def build_message(**overrides) -> Message:
    data = dict(
        title="Build failed: acme/api@main (ci)",
        text="Failing for 2 builds in a row.",
        severity="error",
        fields=[MessageField(title="Branch", value="main"), MessageField(title="Commit", value="abc1234")],
        links=[Link(text="View run", url="https://ci.example.com/runs/42")],
        source="pipeline-acme-api",
    )
    data.update(overrides)
    return Message(**data)


# --------------------------------------------------------------------------- SlackChannel


async def test_posts_block_kit_with_metadata(fake: FakeSlack, make_channel):
    channel = make_channel()
    message = build_message()

    sent = await channel.send(message, "wf-1|notify|team-slack", 1)

    [posted] = fake.messages
    assert sent.message_id == posted["ts"] and not sent.duplicate
    assert posted["channel"] == CHANNEL_ID and posted["channel_name"] == CHANNEL_ID
    assert posted["text"].startswith("Build failed: acme/api@main (ci)")
    blocks = posted["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": message.title, "emoji": True}}
    [fields_block] = [b for b in blocks if b["type"] == "section" and "fields" in b]
    assert [f["text"] for f in fields_block["fields"]] == ["*Branch*\nmain", "*Commit*\nabc1234"]
    [actions] = [b for b in blocks if b["type"] == "actions"]
    [button] = actions["elements"]
    assert button["type"] == "button"
    assert button["action_id"] == "tocsin_link_0"
    assert button["url"] == "https://ci.example.com/runs/42"
    assert button["text"]["text"] == "View run"
    assert posted["metadata"] == {"event_type": EVENT_TYPE, "event_payload": {"key": "wf-1|notify|team-slack"}}

    [call] = fake.calls("chat.postMessage")
    assert call.status == 200 and call.response["ok"] is True
    assert call.body["unfurl_links"] is False
    assert call.headers["content-type"].startswith("application/json")


async def test_sends_bearer_token(fake: FakeSlack, make_channel):
    await make_channel().send(build_message(), "k", 1)
    [call] = fake.calls("chat.postMessage")
    assert call.headers["authorization"] == f"Bearer {fake.token}"
    assert "token" not in call.body  # the token travels in the header, never in the body


async def test_first_attempt_does_not_read_history(fake: FakeSlack, make_channel):
    await make_channel().send(build_message(), "k", 1)
    assert fake.calls("conversations.history") == []


async def test_proxy_error_page_is_retryable(fake: FakeSlack, make_channel):
    fake.fail_next(status=502, body="<html><body>502 Bad Gateway</body></html>")
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert err.value.retryable


async def test_broken_json_error_body_is_retryable(fake: FakeSlack, make_channel):
    fake.fail_next(status=502, body="upstream connect error{", content_type="application/json")
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert err.value.retryable


async def test_ratelimited_error_in_ok_false_body_is_retryable(fake: FakeSlack, make_channel):
    fake.error_next(error="ratelimited")
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert err.value.retryable and err.value.kind == "RateLimited"


async def test_unknown_channel_is_permanent(fake: FakeSlack, make_channel):
    with pytest.raises(ChannelError) as err:
        await make_channel("#nope").send(build_message(), "k", 1)
    assert not err.value.retryable
    assert "#nope" in str(err.value) and "channel_not_found" in str(err.value)
    assert fake.messages == []


async def test_injected_channel_not_found_is_permanent(fake: FakeSlack, make_channel):
    fake.error_next(error="channel_not_found")
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert not err.value.retryable
    assert CHANNEL_ID in str(err.value) and "channel_not_found" in str(err.value)


async def test_wrong_token_is_permanent(fake: FakeSlack, make_channel):
    with pytest.raises(ChannelError) as err:
        await make_channel(token="xoxb-wrong").send(build_message(), "k", 1)
    assert not err.value.retryable
    assert "invalid_auth" in str(err.value)
    assert fake.messages == []


async def test_unknown_ok_false_error_is_retryable(fake: FakeSlack, make_channel):
    fake.error_next(error="internal_error")
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert err.value.retryable


async def test_retry_after_lost_response_does_not_post_twice(fake: FakeSlack, make_channel):
    fake.fail_after_post()
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "key-1", 1)
    assert err.value.retryable
    assert len(fake.messages) == 1  # it landed; only the answer was lost

    # Temporal may run the retry on another worker: a fresh channel instance must find it too.
    sent = await make_channel().send(build_message(), "key-1", 2)

    assert sent.duplicate
    assert sent.message_id == fake.messages[0]["ts"]
    assert len(fake.messages) == 1
    [history] = fake.calls("conversations.history")
    assert history.body["channel"] == CHANNEL_ID
    assert history.body["include_all_metadata"] in ("1", "true", True)


async def test_retry_with_other_key_posts_again(fake: FakeSlack, make_channel):
    channel = make_channel()
    await channel.send(build_message(), "key-1", 1)
    sent = await channel.send(build_message(title="Another"), "key-2", 2)
    assert not sent.duplicate
    assert [m["metadata"]["event_payload"]["key"] for m in fake.messages] == ["key-1", "key-2"]
    assert sent.message_id == fake.messages[1]["ts"]


async def test_retry_uses_channel_id_learned_from_first_post(fake: FakeSlack, make_channel):
    channel = make_channel("#builds")
    await channel.send(build_message(), "key-a", 1)
    learned = channel_id_for("#builds")
    assert fake.messages[0]["channel"] == learned and fake.messages[0]["channel_name"] == "#builds"

    fake.fail_after_post()
    with pytest.raises(ChannelError):
        await channel.send(build_message(), "key-b", 1)
    sent = await channel.send(build_message(), "key-b", 2)

    assert sent.duplicate and sent.message_id == fake.messages[1]["ts"]
    assert len(fake.messages) == 2
    [history] = fake.calls("conversations.history")
    assert history.body["channel"] == learned


async def test_retry_with_channel_name_and_no_answered_post(fake: FakeSlack, make_channel):
    fake.fail_after_post()
    with pytest.raises(ChannelError):
        await make_channel("#builds").send(build_message(), "key-1", 1)
    await make_channel("#builds").send(build_message(), "key-1", 2)
    assert len(fake.messages) == 1


async def test_retry_posts_when_history_lookup_fails(fake: FakeSlack, make_channel):
    fake.fail_next(status=500, method="conversations.history")
    sent = await make_channel().send(build_message(), "key-1", 2)
    assert not sent.duplicate
    assert len(fake.messages) == 1
    assert [r.status for r in fake.calls("conversations.history")] == [500]


async def test_retry_finds_key_among_many_messages(fake: FakeSlack, make_channel):
    channel = make_channel()
    for i in range(5):
        await channel.send(build_message(title=f"m{i}"), f"key-{i}", 1)
    sent = await make_channel().send(build_message(title="m1"), "key-1", 3)
    assert sent.duplicate and sent.message_id == fake.messages[1]["ts"]
    assert len(fake.messages) == 5


async def test_retry_finds_its_post_behind_a_storm_of_other_messages(fake: FakeSlack, make_channel):
    """Item 5: 70 messages between a lost-answer post and its retry; the retry still finds the key."""
    first_scheduled = datetime.now(UTC) - timedelta(seconds=1)
    fake.fail_after_post()
    with pytest.raises(ChannelError):
        await make_channel().send(build_message(), "storm-key", 1)
    storm = make_channel()
    for i in range(70):
        await storm.send(build_message(title=f"other {i}"), f"other-{i}", 1)

    # The retry runs as Temporal runs it: attempt 2 of an activity first scheduled before the lost post.
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, attempt=2, scheduled_time=first_scheduled, current_attempt_scheduled_time=datetime.now(UTC)
    )
    sent = await env.run(make_channel().send, build_message(), "storm-key", 2)

    keyed = [m for m in fake.messages if m["metadata"]["event_payload"]["key"] == "storm-key"]
    assert len(keyed) == 1 and sent.duplicate and sent.message_id == keyed[0]["ts"]
    lookups = fake.calls("conversations.history")
    assert len(lookups) >= 1
    assert all(float(r.body["oldest"]) <= first_scheduled.timestamp() for r in lookups)
    assert float(lookups[0].body["oldest"]) >= first_scheduled.timestamp() - 3600, "looks back from the first attempt"


async def test_a_durable_send_after_a_local_try_looks_back_from_the_local_try(fake: FakeSlack, make_channel):
    """A local page that timed out after Slack took it: the durable send (attempt 1, later scheduled)
    looks back from ``tried_since``, finds the post and does not post again."""
    tried = datetime.now(UTC) - timedelta(seconds=30)
    await make_channel().send(build_message(), "local-key", 1)
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=1, scheduled_time=datetime.now(UTC) + timedelta(seconds=60))
    ctx = SendContext(attempt=2, tried_since=tried.timestamp())
    sent = await env.run(make_channel().send, build_message(), "local-key", 2, ctx)
    assert sent.duplicate and len(fake.messages) == 1
    [lookup] = fake.calls("conversations.history")
    assert float(lookup.body["oldest"]) <= tried.timestamp()


async def test_retry_lookup_pages_through_history(fake: FakeSlack, make_channel):
    """Without an activity context the look-up still pages (cursor) until the key or the end."""
    fake.fail_after_post()
    with pytest.raises(ChannelError):
        await make_channel().send(build_message(), "paged-key", 1)
    storm = make_channel()
    for i in range(250):
        await storm.send(build_message(title=f"other {i}"), f"other-{i}", 1)
    sent = await make_channel().send(build_message(), "paged-key", 2)
    assert sent.duplicate
    lookups = fake.calls("conversations.history")
    assert len(lookups) == 2 and lookups[1].body.get("cursor")
    assert sum(1 for m in fake.messages if m["metadata"]["event_payload"]["key"] == "paged-key") == 1


async def test_fake_history_oldest_and_cursor(fake: FakeSlack, api: httpx.AsyncClient):
    posted = [(await api.post("chat.postMessage", json={"channel": "#p", "text": f"m{i}"})).json() for i in range(5)]
    cid = posted[0]["channel"]
    page = (await api.get("conversations.history", params={"channel": cid, "limit": 2})).json()
    assert [m["text"] for m in page["messages"]] == ["m4", "m3"] and page["has_more"] is True
    cursor = page["response_metadata"]["next_cursor"]
    rest = (await api.get("conversations.history", params={"channel": cid, "limit": 5, "cursor": cursor})).json()
    assert [m["text"] for m in rest["messages"]] == ["m2", "m1", "m0"] and rest["has_more"] is False
    assert rest["response_metadata"]["next_cursor"] == ""
    after = (await api.get("conversations.history", params={"channel": cid, "oldest": posted[2]["ts"]})).json()
    assert [m["text"] for m in after["messages"]] == ["m4", "m3"]
    since = {"channel": cid, "oldest": posted[2]["ts"], "inclusive": "true"}
    assert [m["text"] for m in (await api.get("conversations.history", params=since)).json()["messages"]] == [
        "m4",
        "m3",
        "m2",
    ]
    assert abs(float(posted[0]["ts"]) - time.time()) < 60, "ts are wall-clock times, as Slack's"


async def test_rendered_message_with_everything_is_accepted(fake: FakeSlack, make_channel):
    message = build_message(
        title="T" * 400,
        text="x" * 5000,
        fields=[MessageField(title=f"f{i}", value="v" * 3000) for i in range(25)],
        links=[Link(text=f"link {i}" * 20, url=f"https://e.com/{i}") for i in range(7)],
        actions=[Action(action_id=f"act_{i}", text="Do it", style="primary") for i in range(30)],
    )
    await make_channel().send(message, "big", 1)
    [call] = fake.calls("chat.postMessage")
    assert call.response["ok"] is True, call.response


# --------------------------------------------------------------------------- the fake itself


async def test_fake_auth(fake: FakeSlack):
    async with httpx.AsyncClient(base_url=fake.url) as client:
        assert (await client.post("auth.test")).json() == {"ok": False, "error": "not_authed"}
        bad = await client.post("auth.test", headers={"Authorization": "Bearer nope"})
        assert bad.json()["error"] == "invalid_auth"
        good = await client.post("auth.test", headers={"Authorization": f"Bearer {fake.token}"})
        assert good.json()["ok"] is True
        form = await client.post("auth.test", data={"token": fake.token})
        assert form.json()["ok"] is True
    assert [r.status for r in fake.requests] == [200, 200, 200, 200]


async def test_fake_validates_posts(fake: FakeSlack, api: httpx.AsyncClient):
    async def error(**body) -> str | None:
        data = (await api.post("chat.postMessage", json=body)).json()
        return None if data["ok"] else data["error"]

    header = {"type": "header", "text": {"type": "plain_text", "text": "h"}}
    assert await error(text="hi") == "channel_not_found"
    assert await error(channel="#nope", text="hi") == "channel_not_found"
    assert await error(channel="#ok") == "no_text"
    assert await error(channel="#ok", text="", blocks=[]) == "no_text"
    assert (
        await error(channel="#ok", blocks=[{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}])
        == "invalid_blocks"
    )
    assert await error(channel="#ok", blocks=[{"text": "no type"}]) == "invalid_blocks"
    assert await error(channel="#ok", blocks=["not a dict"]) == "invalid_blocks"
    assert await error(channel="#ok", blocks=[header] * 51) == "invalid_blocks"
    fields = [{"type": "mrkdwn", "text": "f"}] * 11
    assert await error(channel="#ok", blocks=[{"type": "section", "fields": fields}]) == "invalid_blocks"
    assert await error(channel="#ok", text="hi", metadata={"event_payload": {}}) == "invalid_metadata_format"
    assert await error(channel="#ok", text="x" * 40_001) == "msg_too_long"
    assert fake.messages == []
    assert await error(channel="#ok", blocks=[header] * 50) is None
    assert await error(channel="#ok", blocks=[{"type": "section", "fields": fields[:10]}]) is None
    assert len(fake.messages) == 2
    invalid = fake.calls("chat.postMessage")[4].response
    assert "150" in invalid["errors"][0]


async def test_fake_accepts_form_bodies(fake: FakeSlack):
    async with httpx.AsyncClient(base_url=fake.url) as client:
        response = await client.post(
            "chat.postMessage",
            data={
                "token": fake.token,
                "channel": "#ok",
                "blocks": '[{"type": "header", "text": {"type": "plain_text", "text": "hi"}}]',
                "metadata": '{"event_type": "e", "event_payload": {"key": "k"}}',
            },
        )
    assert response.json()["ok"] is True
    [message] = fake.messages
    assert message["blocks"][0]["type"] == "header"
    assert message["metadata"] == {"event_type": "e", "event_payload": {"key": "k"}}


async def test_fake_channel_ids_and_ts(fake: FakeSlack, api: httpx.AsyncClient):
    first = (await api.post("chat.postMessage", json={"channel": "#builds", "text": "1"})).json()
    second = (await api.post("chat.postMessage", json={"channel": "#builds", "text": "2"})).json()
    other = (await api.post("chat.postMessage", json={"channel": "#other", "text": "3"})).json()
    by_id = (await api.post("chat.postMessage", json={"channel": first["channel"], "text": "4"})).json()
    assert first["channel"] == second["channel"] == by_id["channel"] == channel_id_for("#builds")
    assert other["channel"] != first["channel"]
    assert first["channel"].startswith("C") and len(first["channel"]) == 9
    stamps = [first["ts"], second["ts"], other["ts"], by_id["ts"]]
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)
    assert [float(ts) for ts in stamps] == sorted(float(ts) for ts in stamps)
    assert len(set(stamps)) == 4


async def test_fake_history_and_update(fake: FakeSlack, api: httpx.AsyncClient):
    meta = {"event_type": "e", "event_payload": {"key": "k"}}
    posted = [
        (await api.post("chat.postMessage", json={"channel": "#h", "text": f"m{i}", "metadata": meta})).json()
        for i in range(3)
    ]
    cid = posted[0]["channel"]

    plain = (await api.get("conversations.history", params={"channel": cid, "limit": 2})).json()
    assert [m["text"] for m in plain["messages"]] == ["m2", "m1"] and plain["has_more"] is True
    assert all("metadata" not in m for m in plain["messages"])
    rich = (await api.get("conversations.history", params={"channel": cid, "include_all_metadata": "1"})).json()
    assert [m["metadata"] for m in rich["messages"]] == [meta] * 3
    assert (await api.get("conversations.history", params={"channel": "#h"})).json()["error"] == "channel_not_found"

    updated = (await api.post("chat.update", json={"channel": cid, "ts": posted[0]["ts"], "text": "edited"})).json()
    assert updated["ok"] is True and updated["ts"] == posted[0]["ts"]
    assert fake.messages[0]["text"] == "edited"
    missing = (await api.post("chat.update", json={"channel": cid, "ts": "1.000001", "text": "x"})).json()
    assert missing["error"] == "message_not_found"


async def test_fake_faults_are_consumed_in_order(fake: FakeSlack, api: httpx.AsyncClient):
    fake.fail_next(1, status=503)
    fake.rate_limit_next(1, retry_after=3)
    fake.error_next(1, error="is_archived")
    statuses = []
    for _ in range(4):
        response = await api.post("chat.postMessage", json={"channel": "#f", "text": "x"})
        statuses.append((response.status_code, response.json().get("error"), response.headers.get("retry-after")))
    assert statuses == [
        (503, "fatal_error", None),
        (429, "ratelimited", "3"),
        (200, "is_archived", None),
        (200, None, None),
    ]
    assert len(fake.messages) == 1


async def test_fake_method_scoped_faults_and_fail_after_post(fake: FakeSlack, api: httpx.AsyncClient):
    fake.fail_next(method="conversations.history")
    fake.fail_after_post()
    assert (await api.post("auth.test")).status_code == 200  # neither fault applies to auth.test
    rejected = await api.post("chat.postMessage", json={"channel": "#f"})
    assert rejected.json()["error"] == "no_text"  # an invalid post does not use up fail_after_post
    lost = await api.post("chat.postMessage", json={"channel": "#f", "text": "x"})
    assert lost.status_code == 500 and len(fake.messages) == 1
    history = await api.get("conversations.history", params={"channel": fake.messages[0]["channel"]})
    assert history.status_code == 500
    history = await api.get("conversations.history", params={"channel": fake.messages[0]["channel"]})
    assert [m["ts"] for m in history.json()["messages"]] == [fake.messages[0]["ts"]]


async def test_fake_delay_does_not_block_other_requests(fake: FakeSlack, api: httpx.AsyncClient):
    fake.delay_next(seconds=1.0)
    started = time.perf_counter()
    slow = asyncio.create_task(api.post("chat.postMessage", json={"channel": "#d", "text": "slow"}))
    await asyncio.sleep(0.05)
    async with httpx.AsyncClient(base_url=fake.url, headers={"Authorization": f"Bearer {fake.token}"}) as other:
        fast = await other.post("chat.postMessage", json={"channel": "#d", "text": "fast"})
    assert fast.json()["ok"] and time.perf_counter() - started < 0.8
    assert (await slow).json()["ok"]
    assert time.perf_counter() - started >= 1.0
    assert [m["text"] for m in fake.messages] == ["fast", "slow"]


async def test_fake_await_messages_does_not_block_the_loop(fake: FakeSlack, api: httpx.AsyncClient):
    async def post_later():
        await asyncio.sleep(0.05)
        for i in range(3):
            await api.post("chat.postMessage", json={"channel": "#w", "text": str(i)})

    task = asyncio.create_task(post_later())
    messages = await fake.await_messages(3, timeout=5)
    await task
    assert [m["text"] for m in messages] == ["0", "1", "2"]
    with pytest.raises(TimeoutError):
        await fake.await_messages(4, timeout=0.1)


def test_fake_wait_for_messages_across_threads(fake: FakeSlack):
    def post():
        with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {fake.token}"}) as client:
            for i in range(20):
                client.post("chat.postMessage", json={"channel": "#t", "text": str(i)})

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    messages = fake.wait_for_messages(80, timeout=10)
    for thread in threads:
        thread.join()
    assert len(messages) == 80 and len({m["ts"] for m in messages}) == 80
    assert all(m["received"] <= time.perf_counter() for m in messages)
    with pytest.raises(TimeoutError):
        fake.wait_for_messages(81, timeout=0.1)


def test_fake_restarts_on_a_new_port():
    fake = FakeSlack(token="t").start()
    first = fake.url
    fake.stop()
    fake.stop()
    with fake:
        assert fake.url.startswith("http://127.0.0.1:")
        response = httpx.post(fake.url + "auth.test", headers={"Authorization": "Bearer t"})
        assert response.json()["ok"] is True
    with pytest.raises(RuntimeError):
        _ = fake.url
    assert first.endswith("/api/")
