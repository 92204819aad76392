"""``tocsin config check`` builds every channel (no network): bad settings fail there, not at the first send."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import cli


def _config(channels: dict[str, Any]) -> dict[str, Any]:
    return {
        "channels": channels,
        "receivers": [{"name": "team", "channels": list(channels)}],
        "route": {"receiver": "team"},
    }


def test_malformed_discord_url_is_reported_with_its_key_path(write_config: Any) -> None:
    path: Path = write_config(_config({"chat": {"type": "discord", "webhook_url": "https://example.com/not-a-hook"}}))
    done = cli("config", "check", "--config", str(path))
    assert done.returncode == 2
    assert done.stderr.startswith("tocsin: channels.chat:") and "webhook_url" in done.stderr


def test_missing_secret_is_reported_with_the_variable(write_config: Any) -> None:
    path = write_config(_config({"ops": {"type": "slack", "token": "${TOCSIN_TEST_UNSET_TOKEN}", "channel": "#ops"}}))
    done = cli("config", "check", "--config", str(path))
    assert done.returncode == 2
    assert "channels.ops: environment variable TOCSIN_TEST_UNSET_TOKEN is not set" in done.stderr


def test_channels_that_build_pass(write_config: Any) -> None:
    path = write_config(
        _config(
            {
                "ops": {"type": "slack", "token": "${TOCSIN_TEST_TOKEN}", "channel": "#ops"},
                "chat": {"type": "discord", "webhook_url": "https://discord.com/api/webhooks/1/abc"},
            }
        )
    )
    done = cli("config", "check", "--config", str(path), env={"TOCSIN_TEST_TOKEN": "xoxb-1"})
    assert done.returncode == 0, done.stderr
    assert "2 channels" in done.stdout
