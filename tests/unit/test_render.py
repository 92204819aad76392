"""Block Kit rendering of the channel-neutral message (``activities/channels/render.py``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activities.channels.render import SEVERITY_EMOJI, slack_blocks, slack_fallback_text
from tests.fakes.slack import validate_blocks
from workflows.models import SEVERITIES, Action, Link, Message, MessageField


def of_type(blocks: list[dict], kind: str) -> list[dict]:
    return [b for b in blocks if b["type"] == kind]


def field_sections(blocks: list[dict]) -> list[dict]:
    return [b for b in blocks if b["type"] == "section" and "fields" in b]


def test_minimal_message():
    blocks = slack_blocks(Message(title="Deployed"))
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Deployed", "emoji": True}}
    assert [b["type"] for b in blocks] == ["header", "context"]  # no text, fields or buttons: no empty blocks
    assert validate_blocks(blocks) is None


def test_block_order():
    message = Message(
        title="t", text="body", fields=[MessageField(title="a", value="1")], links=[Link(text="l", url="https://e.com")]
    )
    kinds = [b["type"] for b in slack_blocks(message)]
    assert kinds == ["header", "section", "section", "context", "actions"]


@pytest.mark.parametrize("length", [1, 149, 150])
def test_title_up_to_150_is_kept(length):
    title = "x" * length
    assert slack_blocks(Message(title=title))[0]["text"]["text"] == title


@pytest.mark.parametrize("length", [151, 400])
def test_long_title_is_trimmed_to_150_in_header(length):
    title = "y" * length
    header = slack_blocks(Message(title=title))[0]["text"]["text"]
    assert len(header) == 150
    assert header == "y" * 149 + "…"


def test_text_section_is_mrkdwn_and_trimmed_to_3000():
    [section] = of_type(slack_blocks(Message(title="t", text="z" * 5000)), "section")
    assert section["text"]["type"] == "mrkdwn"
    assert len(section["text"]["text"]) == 3000 and section["text"]["text"].endswith("…")


def test_fields_render_title_and_value():
    message = Message(
        title="t", fields=[MessageField(title="Branch", value="main"), MessageField(title="Commit", value="abc1234")]
    )
    [section] = field_sections(slack_blocks(message))
    assert section["fields"] == [
        {"type": "mrkdwn", "text": "*Branch*\nmain"},
        {"type": "mrkdwn", "text": "*Commit*\nabc1234"},
    ]


@pytest.mark.parametrize(("count", "sizes"), [(10, [10]), (11, [10, 1]), (23, [10, 10, 3]), (30, [10, 10, 10])])
def test_more_than_10_fields_split_into_sections(count, sizes):
    message = Message(title="t", fields=[MessageField(title=f"f{i}", value=str(i)) for i in range(count)])
    blocks = slack_blocks(message)
    sections = field_sections(blocks)
    assert [len(s["fields"]) for s in sections] == sizes
    flat = [f["text"] for s in sections for f in s["fields"]]
    assert flat == [f"*f{i}*\n{i}" for i in range(count)]  # order kept across sections
    assert validate_blocks(blocks) is None


def test_long_field_is_trimmed_to_2000():
    [section] = field_sections(slack_blocks(Message(title="t", fields=[MessageField(title="log", value="v" * 5000)])))
    assert len(section["fields"][0]["text"]) == 2000


def test_links_become_buttons_with_stable_action_ids():
    links = [Link(text=f"Link {i}", url=f"https://e.com/{i}") for i in range(3)]
    [actions] = of_type(slack_blocks(Message(title="t", links=links)), "actions")
    assert actions["elements"] == [
        {
            "type": "button",
            "action_id": f"tocsin_link_{i}",
            "text": {"type": "plain_text", "text": f"Link {i}"},
            "url": f"https://e.com/{i}",
        }
        for i in range(3)
    ]
    # stable: rendering again (e.g. on a retry, or for chat.update) gives the same ids
    [again] = of_type(slack_blocks(Message(title="t", links=links)), "actions")
    assert [e["action_id"] for e in again["elements"]] == [e["action_id"] for e in actions["elements"]]


def test_at_most_five_link_buttons_and_text_trimmed():
    links = [Link(text="L" * 100, url=f"https://e.com/{i}") for i in range(8)]
    [actions] = of_type(slack_blocks(Message(title="t", links=links)), "actions")
    assert [e["action_id"] for e in actions["elements"]] == [f"tocsin_link_{i}" for i in range(5)]
    assert all(len(e["text"]["text"]) == 75 for e in actions["elements"])


def test_actions_follow_links_and_keep_their_ids():
    message = Message(
        title="t",
        links=[Link(text="Run", url="https://ci/1")],
        actions=[
            Action(action_id="ack", text="Acknowledge", style="primary"),
            Action(action_id="rollback", text="Roll back", value="v42", url="https://cd/rb", style="danger"),
        ],
    )
    [actions] = of_type(slack_blocks(message), "actions")
    ack, rollback = actions["elements"][1:]
    assert actions["elements"][0]["action_id"] == "tocsin_link_0"
    assert ack == {
        "type": "button",
        "action_id": "ack",
        "text": {"type": "plain_text", "text": "Acknowledge"},
        "value": "ack",
        "style": "primary",
    }
    assert rollback["value"] == "v42" and rollback["url"] == "https://cd/rb" and rollback["style"] == "danger"


def test_no_more_than_25_buttons():
    message = Message(
        title="t",
        links=[Link(text="l", url=f"https://e/{i}") for i in range(5)],
        actions=[Action(action_id=f"a{i}", text="a") for i in range(40)],
    )
    [actions] = of_type(slack_blocks(message), "actions")
    assert len(actions["elements"]) == 25
    assert validate_blocks(slack_blocks(message)) is None


@pytest.mark.parametrize("severity", SEVERITIES)
def test_severity_in_context(severity):
    [context] = of_type(slack_blocks(Message(title="t", severity=severity)), "context")
    [element] = context["elements"]
    assert element["type"] == "mrkdwn"
    assert element["text"] == f"{SEVERITY_EMOJI[severity]} *{severity}*"


def test_source_in_context():
    [context] = of_type(slack_blocks(Message(title="t", severity="warning", source="pipeline-acme")), "context")
    assert context["elements"][0]["text"] == ":warning: *warning* · `pipeline-acme`"


def test_fallback_text():
    assert slack_fallback_text(Message(title="Build failed")) == "Build failed"
    assert slack_fallback_text(Message(title="Build failed", text="first\nsecond")) == "Build failed — first"
    assert len(slack_fallback_text(Message(title="t" * 5000))) == 3000


def test_mrkdwn_control_characters_are_escaped():
    message = Message(
        title="t", text="expected <!channel> & a < b", fields=[MessageField(title="Author", value="<@U123>")]
    )
    blocks = slack_blocks(message)
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    texts += [f["text"] for s in field_sections(blocks) for f in s["fields"]]
    assert all("<" not in t for t in texts)
    assert "&lt;!channel&gt; &amp; a &lt; b" in texts[0]


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)


@settings(max_examples=60, deadline=None)
@given(
    title=st.text(st.characters(blacklist_categories=("Cs", "Z", "C")), min_size=1, max_size=300),
    text=_text,
    severity=st.sampled_from(SEVERITIES),
    fields=st.lists(st.tuples(_text, _text), max_size=35),
    n_links=st.integers(0, 8),
    n_actions=st.integers(0, 30),
)
def test_rendered_blocks_pass_slack_validation(title, text, severity, fields, n_links, n_actions):
    message = Message(
        title=title,
        text=text,
        severity=severity,
        fields=[MessageField(title=t, value=v) for t, v in fields],
        links=[Link(text=f"link {i}", url=f"https://e.com/{i}") for i in range(n_links)],
        actions=[Action(action_id=f"act_{i}", text=f"act {i}") for i in range(n_actions)],
    )
    assert validate_blocks(slack_blocks(message)) is None


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("<!channel> deploy broke", "&lt;!channel&gt; deploy broke"),
        ("ping <@U123> and <!here>", "ping &lt;@U123&gt; and &lt;!here&gt;"),
        ("<https://evil.example|click here>", "&lt;https://evil.example|click here&gt;"),
        ("<!subteam^S123> & <#C999>", "&lt;!subteam^S123&gt; &amp; &lt;#C999&gt;"),
    ],
)
def test_fallback_text_escapes_mentions_and_links_from_untrusted_text(text: str, shown: str):
    """Slack parses ``text`` (the notification) too: markup from alerts shows literally, in title and text."""
    assert slack_fallback_text(Message(title="Alert", text=text)) == f"Alert — {shown}"
    assert slack_fallback_text(Message(title=text)) == shown
