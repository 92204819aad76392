"""Untrusted text pings nobody: mentions and links from alerts, CI logs and notes show literally.

Every message goes through the delivery activity into the channel's fake (the conformance
suite's ``deliver``), and what the API received is checked the way that API would read it:

- Slack parses ``<!channel>``, ``<@U…>`` and ``<url|label>`` in ``text`` *and* mrkdwn blocks: no
  ``<`` of the message survives unescaped (header and button texts are ``plain_text``, never parsed);
- Discord: ``allowed_mentions`` parses nothing and there is no ``content`` (embeds never ping);
- Teams: a mention needs ``msteams.entities``, and no card carries any;
- Jira wiki markup: ``[~user]`` is escaped;
- GitHub Markdown: every ``@name`` is code (never a mention or team ping), raw HTML is escaped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.channels.test_conformance import CASES, Case, deliver, servers  # noqa: F401 - servers is a fixture
from workflows.models import Message, MessageField

UNTRUSTED = "<!channel> <@U0123ABC> <!here> <https://evil.example|click> @everyone @here [~admin] @acme/oncall"
MESSAGE = Message(
    title="Disk full <!channel> @everyone",
    text=f"{UNTRUSTED}\n<at>All</at> ask `@admin (a stray backtick)",
    severity="error",
    fields=[MessageField(title="Who", value="<@U999> @here [~root]")],
    source="untrusted",
)
BY_TYPE = {case.name: case for case in CASES}


@pytest.fixture(params=["slack", "discord", "teams", "jira", "github"])
def case(request: pytest.FixtureRequest) -> Case:
    return BY_TYPE[request.param]


@pytest.fixture
def fake(case: Case, servers: dict[str, Any]) -> Any:  # noqa: F811 - the conformance suite's fixture
    server = servers.get(case.name)
    if server is None:
        server = servers[case.name] = case.fake().start()
    server.reset()
    yield server
    server.reset()


def _bodies(fake: Any) -> list[Any]:
    return [r.body for r in fake.requests if r.body]


def _slack(fake: Any) -> None:
    [posted] = fake.messages
    assert "<" not in posted["text"] and "&lt;!channel&gt;" in posted["text"]
    for block in posted["blocks"]:
        texts = [block.get("text") or {}] + list(block.get("fields") or []) + list(block.get("elements") or [])
        for text in texts:
            if text.get("type") == "mrkdwn":
                assert "<" not in text["text"], text


def _discord(fake: Any) -> None:
    [body] = _bodies(fake)
    assert body["allowed_mentions"] == {"parse": []}
    assert "content" not in body  # mentions ping only from content; the message is an embed


def _teams(fake: Any) -> None:
    [body] = _bodies(fake)
    card = body["attachments"][0]["content"]
    assert "entities" not in json.dumps(card) and set(card.get("msteams", {})) <= {"width"}


def _jira(fake: Any) -> None:
    [create] = [r.body for r in fake.requests if r.verb == "POST"]
    description = create["fields"]["description"]
    assert "[~" not in description and "\\[\\~admin\\]" in description


def _github(fake: Any) -> None:
    [issue] = [r.body for r in fake.requests if r.verb == "POST"]
    body = issue["body"]
    for m in re.finditer(r"(?<!\w)@[A-Za-z0-9][A-Za-z0-9-]*(?:/[A-Za-z0-9_.-]+)?", body):
        in_code = body[: m.start()].endswith("<code>") or (
            body[m.start() - 1 : m.start()] == "`" and body[m.end() : m.end() + 1] == "`"
        )
        assert in_code, f"bare mention {m.group(0)!r} in {body!r}"
    assert "`@everyone`" in body and "`@acme/oncall`" in body and "<!channel>" not in body


CHECKS = {"slack": _slack, "discord": _discord, "teams": _teams, "jira": _jira, "github": _github}


async def test_untrusted_text_pings_nobody(case: Case, fake: Any, tmp_path: Path) -> None:
    record = await deliver(case, fake, tmp_path, message=MESSAGE)

    assert record.outcome == "delivered"
    CHECKS[case.name](fake)
