"""The ``discord`` channel against a local fake of Discord's webhook API (and the fake's own contract)."""

from __future__ import annotations

import httpx
import pytest

import activities.channels.discord as discord_module
from activities.channels.base import ChannelDeps, ChannelError, SendContext
from activities.channels.discord import LIMITS, DiscordChannel, discord_payload
from tests.fakes.discord import FakeDiscord
from workflows.models import Action, Link, Message, MessageField


@pytest.fixture(scope="module")
def discord_server():
    with FakeDiscord() as fake:
        yield fake


@pytest.fixture
def fake(discord_server: FakeDiscord):
    discord_server.reset()
    yield discord_server
    discord_server.reset()


@pytest.fixture
def make_channel(fake: FakeDiscord, deps: ChannelDeps):
    """DiscordChannels sharing one ChannelDeps, like a worker's."""

    def make(**overrides) -> DiscordChannel:
        return DiscordChannel("team-discord", {"webhook_url": fake.webhook_url, **overrides}, deps)

    return make


def build_message(**overrides) -> Message:
    data = dict(
        title="Build failed: acme/api@main (ci)",
        text="Failing for 2 builds in a row. @everyone look",
        severity="error",
        fields=[MessageField(title="Branch", value="main"), MessageField(title="Commit", value="abc1234", short=False)],
        links=[
            Link(text="View run", url="https://ci.example.com/runs/42"),
            Link(text="Logs", url="https://ci.example.com/runs/42/logs"),
        ],
        source="pipeline-acme-api",
    )
    data.update(overrides)
    return Message(**data)


def embed_size(embed: dict) -> int:
    return (
        len(embed.get("title", ""))
        + len(embed.get("description", ""))
        + len(embed["footer"]["text"])
        + sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    )


# --------------------------------------------------------------------------- rendering


def test_payload_shape():
    payload = discord_payload(build_message())
    assert payload["allowed_mentions"] == {"parse": []}
    [embed] = payload["embeds"]
    assert embed["title"] == "Build failed: acme/api@main (ci)"
    assert embed["color"] == 0xFF0000
    assert embed["url"] == "https://ci.example.com/runs/42"
    assert embed["description"] == (
        "Failing for 2 builds in a row. @everyone look\n\n"
        "[View run](https://ci.example.com/runs/42) · "
        "[Logs](https://ci.example.com/runs/42/logs)"
    )
    assert embed["fields"] == [
        {"name": "Branch", "value": "main", "inline": True},
        {"name": "Commit", "value": "abc1234", "inline": False},
    ]
    assert embed["footer"] == {"text": "error · pipeline-acme-api"}


@pytest.mark.parametrize(
    "severity, colour",
    [("success", 0x00FF00), ("warning", 0xFFAA00), ("error", 0xFF0000), ("info", 0x0099FF), ("critical", 0xFF0000)],
)
def test_severity_colours(severity, colour):
    assert discord_payload(build_message(severity=severity))["embeds"][0]["color"] == colour


def test_payload_respects_every_limit():
    message = build_message(
        title="T" * 400,
        text="x" * 9000,
        fields=[MessageField(title="n" * 300, value="v" * 2000) for _ in range(40)],
        links=[Link(text=f"link [{i}]", url=f"https://e.com/{i}") for i in range(300)],
        actions=[Action(action_id="ack", text="Acknowledge", url="https://tocsin.example.com/ack")],
    )
    [embed] = discord_payload(message)["embeds"]
    assert len(embed["title"]) == LIMITS["title"]
    assert len(embed["description"]) <= LIMITS["description"]
    assert len(embed["fields"]) <= LIMITS["fields"]
    assert all(len(f["name"]) <= 256 and len(f["value"]) <= 1024 for f in embed["fields"])
    assert embed_size(embed) <= LIMITS["total"]
    assert "[link (0)](https://e.com/0)" in embed["description"]  # brackets in link text cannot break the link
    assert embed["description"].rstrip().endswith(")")  # only whole links, never a cut one


def test_empty_title_and_field_values_are_filled():
    [embed] = discord_payload(Message(title="  ", fields=[MessageField(title="", value="")]))["embeds"]
    assert embed["title"] == "(no title)"
    assert embed["fields"] == [{"name": "-", "value": "-", "inline": True}]
    assert "url" not in embed and "description" not in embed


# --------------------------------------------------------------------------- DiscordChannel


async def test_posts_with_wait_and_returns_the_message_id(fake: FakeDiscord, make_channel):
    sent = await make_channel().send(build_message(), "wf-1/notify/team-discord", 1)

    [posted] = fake.messages
    assert sent.message_id == posted["id"] and not sent.duplicate
    assert posted["embeds"] == discord_payload(build_message())["embeds"]
    assert posted["allowed_mentions"] == {"parse": []}
    [call] = fake.calls("execute")
    assert call.status == 200 and call.query == {"wait": "true"}
    assert call.path == f"/api/v10/webhooks/{fake.webhook_id}/{fake.token}"
    assert call.headers["content-type"] == "application/json"


async def test_update_of_edits_in_place(fake: FakeDiscord, make_channel):
    channel = make_channel()
    first = await channel.send(build_message(title="Deploy api: running", severity="info"), "k1", 1)

    second = await channel.send(
        build_message(title="Deploy api: done", severity="success"), "k2", 1, SendContext(update_of=first.message_id)
    )

    assert second.message_id == first.message_id
    [message] = fake.messages
    assert message["edited"] == 1
    assert message["embeds"][0]["title"] == "Deploy api: done"
    assert message["embeds"][0]["color"] == 0x00FF00
    [edit] = fake.calls("edit")
    assert edit.verb == "PATCH" and edit.path.endswith(f"/messages/{first.message_id}")
    assert len(fake.calls("execute")) == 1


async def test_update_of_a_deleted_message_is_permanent(fake: FakeDiscord, make_channel):
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1, SendContext(update_of="1"))
    assert not err.value.retryable
    assert "Unknown Message" in str(err.value) and "10008" in str(err.value)


async def test_proxy_error_page_is_retryable(fake: FakeDiscord, make_channel):
    fake.fail_next(status=502, body="<html>502 Bad Gateway</html>")
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert err.value.retryable


async def test_rate_limit_uses_the_bodys_retry_after(fake: FakeDiscord, make_channel):
    fake.rate_limit_next(retry_after=0.35)
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert err.value.retryable and err.value.kind == "RateLimited"
    assert err.value.retry_after == pytest.approx(0.35)  # the body's float, not the header's rounded "1"
    assert fake.calls("execute")[0].status == 429


async def test_rate_limit_without_a_json_body_uses_the_header(fake: FakeDiscord, make_channel):
    fake.respond_next(status=429, body="<html>slow down</html>", headers={"Retry-After": "7"}, content_type="text/html")
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert err.value.retryable and err.value.retry_after == 7


async def test_wrong_token_is_permanent_and_the_token_is_not_in_the_error(fake: FakeDiscord, make_channel):
    url = fake.webhook_url.replace(fake.token, "not-the-token")
    with pytest.raises(ChannelError) as err:
        await make_channel(webhook_url=url).send(build_message(), "k", 1)
    assert not err.value.retryable and err.value.kind == "BadCredentials"
    assert "Invalid Webhook Token" in str(err.value)
    assert "not-the-token" not in str(err.value) and fake.token not in str(err.value)


async def test_deleted_webhook_is_permanent(fake: FakeDiscord, make_channel):
    url = fake.webhook_url.replace(fake.webhook_id, "1")
    with pytest.raises(ChannelError) as err:
        await make_channel(webhook_url=url).send(build_message(), "k", 1)
    assert not err.value.retryable
    assert "Unknown Webhook" in str(err.value) and "404" in str(err.value)


async def test_invalid_body_is_permanent_with_discords_detail(fake: FakeDiscord, make_channel, monkeypatch):
    monkeypatch.setattr(discord_module, "discord_payload", lambda message: {"embeds": [{"title": "x" * 300}]})
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert not err.value.retryable
    assert "Invalid Form Body" in str(err.value)
    assert "embeds.0.title: Must be 256 or fewer in length." in str(err.value)


async def test_lost_response_is_retryable_and_the_retry_posts_again(fake: FakeDiscord, make_channel):
    """The documented at-least-once corner: Discord webhooks have no idempotency key to dedupe on."""
    fake.fail_after_accept()
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert err.value.retryable
    await make_channel().send(build_message(), "k", 2)
    assert len(fake.messages) == 2


async def test_rendered_message_with_everything_is_accepted(fake: FakeDiscord, make_channel):
    message = build_message(
        title="T" * 400,
        text="x" * 9000,
        fields=[MessageField(title=f"f{i}" * 100, value="v" * 3000) for i in range(40)],
        links=[Link(text=f"link {i}", url=f"https://e.com/{i}") for i in range(50)],
    )
    await make_channel().send(message, "big", 1)
    [call] = fake.calls("execute")
    assert call.status == 200, call.response


def test_misconfigured_url_is_rejected(deps):
    for url in ("https://discord.com/channels/1/2", "ftp://discord.com/api/webhooks/1/t", "not a url"):
        with pytest.raises(ChannelError) as err:
            DiscordChannel("d", {"webhook_url": url}, deps)
        assert not err.value.retryable and err.value.kind == "ChannelMisconfigured"
    with pytest.raises(ChannelError):
        DiscordChannel("d", {}, deps)


def test_pacing_per_webhook(fake: FakeDiscord, make_channel):
    channel, same_webhook = make_channel(), make_channel()
    for _ in range(DiscordChannel.burst):
        channel.pace(now=100.0)
    with pytest.raises(ChannelError) as err:
        same_webhook.pace(now=100.0)  # shares the webhook's bucket
    assert err.value.retryable and err.value.kind == "Paced"
    assert err.value.retry_after == pytest.approx(1 / DiscordChannel.rate_per_second)
    other = make_channel(webhook_url=fake.webhook_url.replace(fake.webhook_id, "42"))
    other.pace(now=100.0)  # another webhook: its own bucket
    channel.pace(now=100.0 + 1 / DiscordChannel.rate_per_second)  # a token came back


# --------------------------------------------------------------------------- the fake itself


async def test_fake_contract(fake: FakeDiscord):
    async with httpx.AsyncClient() as client:
        no_wait = await client.post(fake.webhook_url, json={"content": "hi"})
        assert no_wait.status_code == 204 and no_wait.content == b""
        empty = await client.post(fake.webhook_url, json={"content": ""})
        assert empty.status_code == 400 and empty.json()["code"] == 50006
        form = await client.post(fake.webhook_url, data={"content": "hi"})
        assert form.status_code == 400
        too_long = await client.post(fake.webhook_url, json={"content": "x" * 2001})
        assert too_long.json()["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
        blank_field = await client.post(fake.webhook_url, json={"embeds": [{"fields": [{"name": "a", "value": ""}]}]})
        assert "value" in blank_field.json()["errors"]["embeds"]["0"]["fields"]["0"]
        big = {"title": "t" * 256, "description": "d" * 4096, "fields": [{"name": "n", "value": "v" * 1024}] * 2}
        assert (await client.post(fake.webhook_url, json={"embeds": [big]})).json()["errors"]["embeds"]["_errors"]
        posted = (await client.post(fake.webhook_url, params={"wait": "true"}, json={"content": "yo"})).json()
        got = await client.get(f"{fake.webhook_url}/messages/{posted['id']}")
        assert got.json()["content"] == "yo" and got.json()["channel_id"] == fake.channel_id
    assert [m["content"] for m in fake.messages] == ["hi", "yo"]


async def test_fake_rate_limit_shape(fake: FakeDiscord):
    fake.rate_limit_next(retry_after=0.25)
    async with httpx.AsyncClient() as client:
        response = await client.post(fake.webhook_url, json={"content": "hi"})
    assert response.status_code == 429
    assert response.json() == {"message": "You are being rate limited.", "retry_after": 0.25, "global": False}
    assert response.headers["retry-after"] == "1"
    assert fake.messages == []
