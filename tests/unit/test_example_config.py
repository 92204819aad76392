"""The shipped example config does what the issue promises, checked through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from operations.config import load_config_file
from tests.helpers import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "tocsin.yaml"


def route(at: str, *labels: str) -> str:
    done = cli("routes", "test", "--config", str(EXAMPLE), "--at", at, *labels)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    "at,severity,expected",
    [
        ("2026-11-23T03:00:00+09:00", "warning", "chat-digest"),  # Monday 03:00 KST: held for the digest
        ("2026-11-23T10:00:00+09:00", "warning", "chat"),  # market hours: straight to chat
        ("2026-11-28T14:00:00+09:00", "warning", "chat-digest"),  # Saturday: off-hours all day
        ("2026-11-23T10:00:00+09:00", "critical", "critical-market"),
        ("2026-11-23T20:00:00+09:00", "critical", "critical"),
        ("2026-11-23T10:00:00+09:00", "error", "error"),
        ("2026-11-23T10:00:00+09:00", "info", "log"),
    ],
)
def test_time_aware_routing_of_the_example(at: str, severity: str, expected: str) -> None:
    assert route(at, f"severity={severity}", "service=api") == expected


def test_digest_at_0800_seoul_and_market_hours_page_high_urgency() -> None:
    config = load_config_file(EXAMPLE)
    digest = config.receiver("chat-digest")
    assert (
        digest is not None and digest.digest and (digest.digest_at, digest.digest_timezone) == ("08:00", "Asia/Seoul")
    )
    market = config.receiver("critical-market")
    assert market is not None
    pagers = [config.channels[c] for c in market.channels if config.channels[c].type == "pagerduty"]
    assert [p.settings()["urgency"] for p in pagers] == ["high"]
    night = config.receiver("critical")
    assert night is not None
    assert [
        config.channels[c].settings()["urgency"] for c in night.channels if config.channels[c].type == "pagerduty"
    ] == ["low"]
    assert len(config.rollback_triggers) == 7


SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-test",
    "SENDGRID_API_KEY": "SG.test",
    "GITHUB_TOKEN": "ghp_test",
    "PAGERDUTY_ROUTING_KEY": "R0123456789abcdef0123456789abcdef",
    "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/123456/abcdef",
}


def test_example_passes_config_check() -> None:
    done = cli("config", "check", "--config", str(EXAMPLE), env=SECRETS)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr


def test_config_check_names_a_secret_missing_from_the_environment() -> None:
    done = cli(
        "config", "check", "--config", str(EXAMPLE), env={k: v for k, v in SECRETS.items() if k != "SLACK_BOT_TOKEN"}
    )
    assert done.returncode == 2
    assert "environment variable SLACK_BOT_TOKEN is not set" in done.stderr and "channels." in done.stderr
