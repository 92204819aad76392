"""The ``jira`` channel against a local fake of the Jira REST API v2 (and the fake's own contract)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.channels.base import ChannelDeps, ChannelError, SendContext
from activities.channels.jira import JiraChannel, issue_label, render_wiki, send_ref, wiki_escape
from tests.fakes.jira import FakeJira
from workflows.models import Link, Message, MessageField


@pytest.fixture(scope="module")
def jira_server():
    with FakeJira(projects=["OPS"]) as fake:
        yield fake


@pytest.fixture
def jira(jira_server: FakeJira):
    jira_server.reset()
    jira_server.cloud = True
    yield jira_server
    jira_server.reset()
    jira_server.cloud = True


@pytest.fixture
async def make_channel(jira: FakeJira, tmp_path: Path):
    client = httpx.AsyncClient()
    deps = ChannelDeps(http=client, home=tmp_path)

    def make(**overrides: Any) -> JiraChannel:
        settings = {"url": jira.url, "user": jira.user, "token": jira.token, "project": "OPS", **overrides}
        return JiraChannel("jira", settings, deps)

    yield make
    await client.aclose()


def incident(**overrides: Any) -> Message:
    data: dict[str, Any] = dict(
        title="HighErrorRate on api (5.2% > 1%)",
        text="Error rate above threshold for 10m.\nSee *dashboard* [here]",
        severity="critical",
        fields=[MessageField(title="Service", value="api"), MessageField(title="Env", value="prod|eu")],
        links=[Link(text="Dashboard", url="https://grafana.example.com/d/1")],
        labels={"alertname": "HighErrorRate", "service": "api"},
        source="incident/abc",
    )
    data.update(overrides)
    return Message(**data)


# =========================================================================== rendering


def test_wiki_rendering_escapes_markup_and_has_table_and_links():
    text = render_wiki(incident(), ref="tocsin ref 123")
    assert "*Severity:* critical" in text
    assert "See \\*dashboard\\* \\[here\\]" in text
    assert "||Field||Value||" in text and "|Service|api|" in text and "|Env|prod\\|eu|" in text
    assert "[Dashboard|https://grafana.example.com/d/1]" in text
    assert text.rstrip().endswith("(tocsin ref 123)_")
    assert wiki_escape("{code}") == "\\{code\\}"


def test_labels_and_refs_are_stable_hashes():
    assert issue_label("incident/abc") == issue_label("incident/abc") != issue_label("incident/abd")
    assert issue_label("x").startswith("tocsin-") and len(issue_label("x")) == len("tocsin-") + 12
    assert send_ref("k") == send_ref("k") != send_ref("j")


# =========================================================================== creating


async def test_creates_an_issue_with_v2_fields_and_labels(jira: FakeJira, make_channel):
    sent = await make_channel(issue_type="Incident", labels=["ops"]).send(
        incident(), "incident/abc/trigger/jira", 1, SendContext(action="trigger", dedup_key="incident/abc")
    )

    [issue] = jira.issues
    assert sent.message_id == issue["key"] == "OPS-1"
    assert sent.url == f"{jira.url}/browse/OPS-1" and not sent.duplicate
    fields = issue["fields"]
    assert fields["summary"] == "HighErrorRate on api (5.2% > 1%)"
    assert fields["issuetype"] == {"name": "Incident"}
    assert fields["labels"] == ["tocsin", issue_label("incident/abc"), "ops"]
    assert isinstance(fields["description"], str) and "||Field||Value||" in fields["description"]
    [create] = jira.calls("issue.create")
    expected = base64.b64encode(f"{jira.user}:{jira.token}".encode()).decode()
    assert create.headers["authorization"] == f"Basic {expected}"
    assert create.headers["content-type"].startswith("application/json")
    [search] = jira.calls("search.jql")
    assert search.query["jql"] == f'project = "OPS" AND labels = "{issue_label("incident/abc")}" ORDER BY created DESC'


async def test_summary_is_one_line_and_at_most_255(jira: FakeJira, make_channel):
    await make_channel().send(incident(title="line one\nline two " + "x" * 400), "k", 1)
    [issue] = jira.issues
    summary = issue["fields"]["summary"]
    assert "\n" not in summary and len(summary) == 255 and summary.startswith("line one line two")


async def test_second_trigger_of_the_same_incident_returns_the_same_issue(jira: FakeJira, make_channel):
    channel = make_channel()
    ctx = SendContext(action="trigger", dedup_key="incident/abc")
    first = await channel.send(incident(), "incident/abc/trigger-1/jira", 1, ctx)
    second = await channel.send(incident(), "incident/abc/trigger-2/jira", 1, ctx)
    assert len(jira.issues) == 1
    assert second.message_id == first.message_id and second.duplicate


async def test_retry_after_lost_create_finds_the_label(jira: FakeJira, make_channel):
    jira.fail_after_accept(route="issue.create")
    with pytest.raises(ChannelError) as err:
        await make_channel().send(incident(), "notify/1/jira", 1)
    assert err.value.retryable
    again = await make_channel().send(incident(), "notify/1/jira", 2)
    [issue] = jira.issues
    assert again.duplicate and again.message_id == issue["key"]
    assert issue["fields"]["labels"][1] == issue_label("notify/1/jira")
    assert len(jira.calls("issue.create")) == 1


async def test_plain_notifies_with_different_keys_open_different_issues(jira: FakeJira, make_channel):
    channel = make_channel()
    await channel.send(incident(), "a", 1)
    await channel.send(incident(), "b", 1)
    assert [i["key"] for i in jira.issues] == ["OPS-1", "OPS-2"]


async def test_a_done_issue_is_not_reused_by_a_new_trigger(jira: FakeJira, make_channel):
    channel = make_channel(resolve_transition="Done")
    ctx = SendContext(action="trigger", dedup_key="inc-5")
    await channel.send(incident(), "t1", 1, ctx)
    await channel.send(incident(), "r1", 1, SendContext(action="resolve", dedup_key="inc-5"))
    sent = await channel.send(incident(), "t2", 1, ctx)
    assert sent.message_id == "OPS-2" and not sent.duplicate


async def test_data_center_falls_back_to_the_classic_search(jira: FakeJira, make_channel):
    jira.cloud = False
    channel = make_channel()
    await channel.send(incident(), "dc/1", 1)
    again = await channel.send(incident(), "dc/1", 2)
    assert again.duplicate and len(jira.issues) == 1
    assert len(jira.calls("search.jql")) == 1  # 404 once, then remembered
    assert len(jira.calls("search")) == 2


# =========================================================================== resolving


async def test_resolve_comments_on_the_issue(jira: FakeJira, make_channel):
    channel = make_channel()
    await channel.send(incident(), "t", 1, SendContext(action="trigger", dedup_key="inc-1"))
    sent = await channel.send(
        incident(severity="success"), "inc-1/resolve/jira", 1, SendContext(action="resolve", dedup_key="inc-1")
    )
    [comment] = jira.comments("OPS-1")
    assert sent.message_id == "OPS-1" and not sent.duplicate
    assert comment["body"].startswith("h3. Resolved: HighErrorRate on api")
    assert send_ref("inc-1/resolve/jira") in comment["body"]
    assert jira.issue("OPS-1")["fields"]["status"]["name"] == "To Do"  # no transition configured
    assert jira.calls("transitions.list") == []


async def test_resolve_runs_the_configured_transition(jira: FakeJira, make_channel):
    channel = make_channel(resolve_transition="done")
    await channel.send(incident(), "t", 1, SendContext(action="trigger", dedup_key="inc-1"))
    await channel.send(incident(), "r", 1, SendContext(action="resolve", dedup_key="inc-1"))
    assert jira.issue("OPS-1")["fields"]["status"]["name"] == "Done"
    [move] = jira.calls("transitions.do")
    assert move.body == {"transition": {"id": "31"}}


async def test_resolve_retry_does_not_comment_twice(jira: FakeJira, make_channel):
    channel = make_channel(resolve_transition="Done")
    await channel.send(incident(), "t", 1, SendContext(action="trigger", dedup_key="inc-1"))
    jira.fail_next(route="transitions.do", status=503)
    ctx = SendContext(action="resolve", dedup_key="inc-1")
    with pytest.raises(ChannelError) as err:
        await channel.send(incident(), "inc-1/resolve/jira", 1, ctx)
    assert err.value.retryable
    again = await channel.send(incident(), "inc-1/resolve/jira", 2, ctx)
    assert again.duplicate and len(jira.comments("OPS-1")) == 1
    assert jira.issue("OPS-1")["fields"]["status"]["name"] == "Done"


async def test_acknowledge_comments(jira: FakeJira, make_channel):
    channel = make_channel()
    await channel.send(incident(), "t", 1, SendContext(action="trigger", dedup_key="inc-1"))
    await channel.send(incident(), "a", 1, SendContext(action="acknowledge", dedup_key="inc-1"))
    assert jira.comments("OPS-1")[0]["body"].startswith("h3. Acknowledged: ")


async def test_resolve_with_no_issue_is_a_no_op(jira: FakeJira, make_channel):
    sent = await make_channel().send(incident(), "r", 1, SendContext(action="resolve", dedup_key="never"))
    assert sent.duplicate and sent.message_id is None
    assert jira.calls("comment.create") == [] and jira.issues == []


# =========================================================================== failures


async def test_bad_project_is_permanent_with_jiras_message(jira: FakeJira, make_channel):
    with pytest.raises(ChannelError) as err:
        await make_channel(project="NOPE").send(incident(), "k", 1)
    assert not err.value.retryable and err.value.kind == "JiraRejected"
    assert "(400)" in str(err.value) and "The value 'NOPE' does not exist for the field 'project'" in str(err.value)


async def test_create_rejection_is_permanent_with_jiras_errors(jira: FakeJira, make_channel):
    jira.projects.add("GHOST")  # searchable, but creating in it fails
    try:
        jira.respond_next(
            status=400,
            route="issue.create",
            body={"errorMessages": [], "errors": {"project": "valid project is required"}},
        )
        with pytest.raises(ChannelError) as err:
            await make_channel(project="GHOST").send(incident(), "k", 1)
    finally:
        jira.projects.discard("GHOST")
    assert not err.value.retryable and "project: valid project is required" in str(err.value)


async def test_bad_issue_type_is_permanent(jira: FakeJira, make_channel):
    with pytest.raises(ChannelError) as err:
        await make_channel(issue_type="Epic Saga").send(incident(), "k", 1)
    assert not err.value.retryable and "issuetype: valid issue type is required" in str(err.value)


async def test_bad_token_is_permanent(jira: FakeJira, make_channel):
    with pytest.raises(ChannelError) as err:
        await make_channel(token="wrong").send(incident(), "k", 1)
    assert not err.value.retryable and err.value.kind == "BadCredentials" and "401" in str(err.value)
    assert "not authenticated" in str(err.value)


async def test_500_is_retryable(jira: FakeJira, make_channel):
    jira.fail_next(status=500, route="issue.create")
    with pytest.raises(ChannelError) as err:
        await make_channel().send(incident(), "k", 1)
    assert err.value.retryable and "Internal server error" in str(err.value)


async def test_eventually_consistent_search_is_the_documented_corner(make_channel, tmp_path: Path):
    """With Cloud's search lag, a retry right after a lost create answer cannot see the issue."""
    with FakeJira(projects=["OPS"], search_lag=30) as lagging:
        deps = ChannelDeps(http=httpx.AsyncClient(), home=tmp_path)
        channel = JiraChannel(
            "jira", {"url": lagging.url, "user": lagging.user, "token": lagging.token, "project": "OPS"}, deps
        )
        lagging.fail_after_accept(route="issue.create")
        with pytest.raises(ChannelError):
            await channel.send(incident(), "k", 1)
        await channel.send(incident(), "k", 2)
        await deps.http.aclose()
        assert len(lagging.issues) == 2  # the corner the module docstring names


# =========================================================================== the fake's own contract


async def test_fake_validates_like_jira(jira: FakeJira):
    auth = (jira.user, jira.token)
    async with httpx.AsyncClient(base_url=jira.url, auth=auth) as api:
        base = {"project": {"key": "OPS"}, "issuetype": {"name": "Task"}}
        newline = await api.post("/rest/api/2/issue", json={"fields": {**base, "summary": "a\nb"}})
        assert newline.status_code == 400 and "newline" in newline.json()["errors"]["summary"]
        adf = await api.post(
            "/rest/api/2/issue", json={"fields": {**base, "summary": "s", "description": {"type": "doc"}}}
        )
        assert adf.status_code == 400 and "description" in adf.json()["errors"]
        spaces = await api.post("/rest/api/2/issue", json={"fields": {**base, "summary": "s", "labels": ["a b"]}})
        assert spaces.status_code == 400 and "labels" in spaces.json()["errors"]
        legacy = await api.get("/rest/api/2/search", params={"jql": "project = OPS"})
        assert legacy.status_code == 410
        unbounded = await api.get("/rest/api/2/search/jql", params={"jql": "ORDER BY created DESC"})
        assert unbounded.status_code == 400 and "Unbounded" in unbounded.json()["errorMessages"][0]
        form = await api.post(
            "/rest/api/2/issue", content=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert form.status_code == 415
    assert jira.issues == []
