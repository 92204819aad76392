"""``deploy/slack-app-manifest.yaml`` creates an app whose commands, URLs and scopes match Tocsin's contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "slack-app-manifest.yaml"

COMMANDS_ROUTE = "/webhooks/slack/commands"
INTERACTIONS_ROUTE = "/webhooks/slack/interactions"
"""The gateway's Slack routes (CONTRACT.md, "Gateway")."""
COMMANDS = {"/tocsin", "/deploy", "/rollback", "/status", "/metrics", "/approve", "/incident"}
"""One ``/tocsin`` with subcommands, and the seed's separate commands (an app may register either)."""
BOT_SCOPES = {"chat:write", "chat:write.public", "commands", "users:read"}
"""Post and edit messages, post to public channels, slash commands, look people up."""


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text())
    assert isinstance(data, dict)
    return data


def test_manifest_is_version_1_with_a_name_and_a_bot_user(manifest: dict[str, Any]) -> None:
    assert manifest["_metadata"]["major_version"] == 1
    info = manifest["display_information"]
    assert info["name"] == "Tocsin" and 0 < len(info["name"]) <= 35
    assert len(info.get("description", "")) <= 140
    bot = manifest["features"]["bot_user"]
    assert bot["display_name"] and len(bot["display_name"]) <= 80


def test_slash_commands_all_point_at_the_commands_route(manifest: dict[str, Any]) -> None:
    commands = manifest["features"]["slash_commands"]
    assert {c["command"] for c in commands} == COMMANDS
    assert len(commands) == len(COMMANDS)  # no duplicates
    for command in commands:
        url = urlsplit(command["url"])
        assert url.scheme == "https" and url.path == COMMANDS_ROUTE, command
        assert command["description"] and len(command["description"]) <= 100, command
        assert command.get("should_escape") is False, command  # Tocsin reads user ids as typed


def test_interactivity_points_at_the_interactions_route(manifest: dict[str, Any]) -> None:
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    url = urlsplit(interactivity["request_url"])
    assert url.scheme == "https" and url.path == INTERACTIONS_ROUTE
    hosts = {urlsplit(c["url"]).netloc for c in manifest["features"]["slash_commands"]} | {url.netloc}
    assert hosts == {"tocsin.example.com"}  # one address to replace
    assert manifest["settings"].get("socket_mode_enabled") is False  # Slack calls the gateway over HTTPS


def test_bot_scopes_cover_posting_editing_commands_and_user_lookups(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert BOT_SCOPES <= set(scopes)
    assert len(scopes) == len(set(scopes))
    assert "user" not in manifest["oauth_config"]["scopes"]  # a bot token only (SLACK_BOT_TOKEN)
