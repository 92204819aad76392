"""The ``teams`` channel against a local fake of Teams webhooks (Workflows and legacy connectors)."""

from __future__ import annotations

import json

import httpx
import pytest

from activities.channels.base import ChannelDeps, ChannelError, SendContext
from activities.channels.teams import MAX_BYTES, TeamsChannel, teams_card, teams_payload
from tests.fakes.teams import FakeTeams, validate_teams_message
from workflows.models import Action, Link, Message, MessageField


@pytest.fixture(scope="module")
def teams_server():
    with FakeTeams() as fake:
        yield fake


@pytest.fixture
def fake(teams_server: FakeTeams):
    teams_server.reset()
    yield teams_server
    teams_server.reset()


@pytest.fixture(params=["workflow", "connector"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def make_channel(fake: FakeTeams, deps: ChannelDeps, kind: str):
    """TeamsChannels on the Workflows trigger or the legacy connector (the test is run for both)."""

    def make(**overrides) -> TeamsChannel:
        url = fake.workflow_url if kind == "workflow" else fake.connector_url
        return TeamsChannel("team-teams", {"webhook_url": url, **overrides}, deps)

    return make


def build_message(**overrides) -> Message:
    data = dict(
        title="Build failed: acme/api@main (ci)",
        text="Failing for 2 builds in a row.\nSecond line.",
        severity="error",
        fields=[MessageField(title="Branch", value="main"), MessageField(title="Commit", value="abc1234")],
        links=[Link(text="View run", url="https://ci.example.com/runs/42")],
        source="pipeline-acme-api",
    )
    data.update(overrides)
    return Message(**data)


# --------------------------------------------------------------------------- rendering


def test_card_shape():
    payload = teams_payload(build_message())
    assert payload["type"] == "message"
    [attachment] = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    title, text, facts, context = card["body"]
    assert title == {
        "type": "TextBlock",
        "text": "Build failed: acme/api@main (ci)",
        "weight": "bolder",
        "size": "medium",
        "wrap": True,
        "color": "attention",
    }
    assert text == {"type": "TextBlock", "text": "Failing for 2 builds in a row.\nSecond line.", "wrap": True}
    assert facts == {
        "type": "FactSet",
        "facts": [{"title": "Branch", "value": "main"}, {"title": "Commit", "value": "abc1234"}],
    }
    assert context["text"] == "error · pipeline-acme-api" and context["isSubtle"] is True
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "View run", "url": "https://ci.example.com/runs/42"}]
    assert validate_teams_message(payload) is None


@pytest.mark.parametrize(
    "severity, colour",
    [("critical", "attention"), ("error", "attention"), ("warning", "warning"), ("success", "good"), ("info", None)],
)
def test_title_colour(severity, colour):
    title = teams_card(build_message(severity=severity))["body"][0]
    assert title.get("color") == colour


def test_minimal_message_has_no_empty_parts():
    card = teams_card(Message(title="Hi"))
    assert [el["type"] for el in card["body"]] == ["TextBlock", "TextBlock"]
    assert "actions" not in card


def test_huge_message_fits_teams_size_limit():
    message = build_message(
        text="x" * 100_000,
        fields=[MessageField(title=f"f{i}", value="v" * 5000) for i in range(100)],
        actions=[Action(action_id="ack", text="Ack", url="https://t.example.com/ack")],
    )
    payload = teams_payload(message)
    assert len(json.dumps(payload, ensure_ascii=False).encode()) <= MAX_BYTES
    card = payload["attachments"][0]["content"]
    assert card["body"][0]["text"] == message.title
    assert card["actions"][-1]["url"] == "https://t.example.com/ack"


# --------------------------------------------------------------------------- TeamsChannel (both webhook kinds)


async def test_posts_the_card(fake: FakeTeams, make_channel, kind):
    sent = await make_channel().send(build_message(), "wf-1/notify/team-teams", 1)

    assert sent.message_id is None and not sent.duplicate
    [posted] = fake.cards
    assert posted["target"] == kind
    assert posted["payload"] == teams_payload(build_message())
    [call] = fake.calls(kind)
    assert call.status == (202 if kind == "workflow" else 200)
    assert call.headers["content-type"] == "application/json"


async def test_huge_message_is_accepted(fake: FakeTeams, make_channel, kind):
    message = build_message(
        text="x" * 100_000, fields=[MessageField(title=f"f{i}", value="v" * 5000) for i in range(100)]
    )
    await make_channel().send(message, "big", 1)
    assert len(fake.cards) == 1


async def test_connector_throttling_inside_a_200_is_retryable_without_a_hint(fake: FakeTeams, deps):
    """The legacy connector says 429 inside a 200 (a Workflows trigger's real 429: the conformance suite)."""
    fake.rate_limit_next(retry_after=4)
    with pytest.raises(ChannelError) as err:
        await TeamsChannel("t", {"webhook_url": fake.connector_url}, deps).send(build_message(), "k", 1)
    assert err.value.retryable and err.value.kind == "RateLimited" and err.value.retry_after is None
    [call] = fake.calls("connector")
    assert call.status == 200 and "HTTP error 429" in call.response
    assert fake.cards == []


@pytest.mark.parametrize(
    "body, retryable",
    [
        (
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 413 with "
            "ContextId tcid=0",
            False,
        ),
        ("Microsoft Teams endpoint returned HTTP error 503 with ContextId tcid=0", True),
        ("Microsoft Teams endpoint returned HTTP error 401", False),
    ],
)
async def test_errors_reported_in_a_200_body_are_classified(fake: FakeTeams, make_channel, body, retryable):
    fake.respond_next(status=200, body=body)
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert err.value.retryable is retryable
    assert body[:40] in str(err.value)


async def test_workflows_bad_signature_is_permanent_and_secret_free(fake: FakeTeams, deps):
    url = fake.workflow_url.replace(f"sig={fake.sig}", "sig=wrong-sig")
    with pytest.raises(ChannelError) as err:
        await TeamsChannel("t", {"webhook_url": url}, deps).send(build_message(), "k", 1)
    assert not err.value.retryable and err.value.kind == "BadCredentials"
    assert "wrong-sig" not in str(err.value) and fake.sig not in str(err.value)


async def test_removed_webhook_is_permanent(fake: FakeTeams, deps):
    for url in (
        fake.workflow_url.replace(fake.workflow_id, "ab" * 16),
        fake.connector_url.replace(fake.connector_id, "gone"),
    ):
        with pytest.raises(ChannelError) as err:
            await TeamsChannel("t", {"webhook_url": url}, deps).send(build_message(), "k", 1)
        assert not err.value.retryable and "404" in str(err.value)


async def test_invalid_card_is_permanent_with_the_reason(fake: FakeTeams, make_channel, monkeypatch, kind):
    import activities.channels.teams as teams_module

    def bad_payload(message):
        payload = teams_payload(message)
        payload["attachments"][0]["content"]["body"][0]["style"] = "heading"  # a 1.5 feature in a 1.4 card
        return payload

    monkeypatch.setattr(teams_module, "teams_payload", bad_payload)
    with pytest.raises(ChannelError) as err:
        await make_channel().send(build_message(), "k", 1)
    assert not err.value.retryable
    assert "400" in str(err.value) and "needs card version 1.5" in str(err.value)


async def test_update_of_posts_a_new_card(fake: FakeTeams, make_channel):
    """Teams webhooks cannot edit: an update is shown as a new card."""
    await make_channel().send(build_message(title="Deploy: done"), "k2", 1, SendContext(update_of="anything"))
    assert [c["card"]["body"][0]["text"] for c in fake.cards] == ["Deploy: done"]


def test_pacing(make_channel):
    channel = make_channel()
    for _ in range(4):
        channel.pace(now=50.0)
    with pytest.raises(ChannelError) as err:
        make_channel().pace(now=50.0)
    assert err.value.retryable and err.value.kind == "Paced"
    assert err.value.retry_after == pytest.approx(0.25)


def test_misconfigured_url_is_rejected(deps):
    with pytest.raises(ChannelError) as err:
        TeamsChannel("t", {"webhook_url": "teams.example.com/hook"}, deps)
    assert not err.value.retryable and err.value.kind == "ChannelMisconfigured"


# --------------------------------------------------------------------------- the fake itself


async def test_fake_contract(fake: FakeTeams):
    async with httpx.AsyncClient() as client:
        workflow = await client.post(fake.workflow_url, json=teams_payload(build_message()))
        assert workflow.status_code == 202 and workflow.content == b""
        connector = await client.post(fake.connector_url, json=teams_payload(build_message()))
        assert connector.status_code == 200 and connector.text == "1"
        unsigned = await client.post(fake.workflow_url.split("&sig=")[0], json=teams_payload(build_message()))
        assert unsigned.status_code == 401
        text = await client.post(fake.workflow_url, content=b"hi", headers={"content-type": "text/plain"})
        assert text.status_code == 400 and text.json()["error"]["code"] == "InvalidRequestContent"
        huge = await client.post(fake.connector_url, json={"type": "message", "x": "y" * 30_000})
        assert huge.status_code == 413
    assert [c["target"] for c in fake.cards] == ["workflow", "connector"]


def test_fake_card_validation():
    ok = teams_payload(build_message())
    assert validate_teams_message(ok) is None

    def broken(change) -> str | None:
        payload = json.loads(json.dumps(ok))
        change(payload)
        return validate_teams_message(payload)

    assert "type must be 'message'" in broken(lambda p: p.update(type="card"))
    assert "contentType" in broken(lambda p: p["attachments"][0].update(contentType="application/json"))
    assert "version" in broken(lambda p: p["attachments"][0]["content"].update(version="1.6"))
    assert "unknown element" in broken(lambda p: p["attachments"][0]["content"]["body"].append({"type": "Nope"}))
    assert "weight" in broken(lambda p: p["attachments"][0]["content"]["body"][0].update(weight="heavy"))
    assert "facts[0]" in broken(lambda p: p["attachments"][0]["content"]["body"][2]["facts"][0].pop("value"))
    assert "url" in broken(lambda p: p["attachments"][0]["content"]["actions"][0].update(url="/relative"))
    assert "Action.Execute needs card version 1.4" in broken(
        lambda p: (
            p["attachments"][0]["content"].update(version="1.3"),
            p["attachments"][0]["content"]["actions"].append({"type": "Action.Execute"}),
        )
    )
