"""Integration: `tocsin notify` to one receiver holding all ten channel types, on a real dev server.

Each channel talks to a local fake of its API (checking the request shape the
real API requires) or, for email, to a real SMTP server (aiosmtpd). Two
injected 500s still produce exactly one visible message; a dead primary fails
over within 30 s; no secret in the text reaches any channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import json
import socket
import time
from collections.abc import Iterator
from email.message import Message as MimeMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from temporalio.testing import WorkflowEnvironment

from tests.fakes import FakeSlack
from tests.fakes.discord import FakeDiscord
from tests.fakes.github import FakeGitHub
from tests.fakes.jira import FakeJira
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.teams import FakeTeams
from tests.fakes.twilio import FakeTwilio
from tests.fakes.webhook import FakeWebhookReceiver
from tests.helpers import address_of, cli, outbox, tocsin_worker
from workflows.notify.workflow import NotifyWorkflow

SECRETS = ["xoxb-123456789012-abcdefghijklmnop", "AKIAIOSFODNN7EXAMPLE", "hunter2hunter2"]
TEXT = f"deploy of payments failed; slack token {SECRETS[0]}, aws key {SECRETS[1]}, password={SECRETS[2]} — see logs"


class Mailbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[MimeMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fakes() -> Iterator[dict[str, Any]]:
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=_port())
    smtp.start()
    with contextlib.ExitStack() as stack:
        made = {
            "slack": stack.enter_context(FakeSlack()),
            "discord": stack.enter_context(FakeDiscord()),
            "teams": stack.enter_context(FakeTeams()),
            "sendgrid": stack.enter_context(FakeSendGrid()),
            "pagerduty": stack.enter_context(FakePagerDuty()),
            "twilio": stack.enter_context(FakeTwilio()),
            "github": stack.enter_context(FakeGitHub(repos=["acme/payments"])),
            "jira": stack.enter_context(FakeJira(projects=["OPS"])),
            "webhook": stack.enter_context(FakeWebhookReceiver(secret="whsec-test")),
            "smtp": smtp,
            "mailbox": mailbox,
        }
        try:
            yield made
        finally:
            smtp.stop()


def config_for(f: dict[str, Any], *, dead_primary: bool = False) -> dict[str, Any]:
    channels: dict[str, Any] = {
        "slack": {"type": "slack", "token": f["slack"].token, "channel": "#ops", "api_url": f["slack"].url},
        "discord": {"type": "discord", "webhook_url": f["discord"].webhook_url},
        "teams": {"type": "teams", "webhook_url": f["teams"].workflow_url},
        "email-sendgrid": {
            "type": "email",
            "provider": "sendgrid",
            "api_key": f["sendgrid"].api_key,
            "api_url": f["sendgrid"].url,
            "from": "tocsin@example.com",
            "to": ["ops@example.com"],
        },
        "email-smtp": {
            "type": "email",
            "provider": "smtp",
            "host": "127.0.0.1",
            "port": f["smtp"].port,
            "starttls": False,
            "from": "tocsin@example.com",
            "to": "oncall@example.com",
        },
        "pagerduty": {"type": "pagerduty", "routing_key": f["pagerduty"].routing_key, "api_url": f["pagerduty"].url},
        "sms": {
            "type": "sms",
            "provider": "twilio",
            "account_sid": f["twilio"].account_sid,
            "auth_token": f["twilio"].auth_token,
            "from": f["twilio"].from_number,
            "to": "+15005550010",
            "api_url": f["twilio"].base_url,
        },
        "github": {"type": "github", "token": f["github"].token, "repo": "acme/payments", "api_url": f["github"].url},
        "jira": {
            "type": "jira",
            "url": f["jira"].url,
            "user": f["jira"].user,
            "token": f["jira"].token,
            "project": "OPS",
            "issue_type": "Task",
        },
        "webhook": {"type": "webhook", "url": f["webhook"].url, "secret": "whsec-test"},
        "console": {"type": "console"},
    }
    receivers = [{"name": "everyone", "channels": list(channels)}]
    if dead_primary:
        channels["dead-slack"] = {
            "type": "slack",
            "token": f["slack"].token,
            "channel": "#dead",
            "api_url": "http://127.0.0.1:9/api/",
        }
        receivers.append({"name": "failover", "channels": ["dead-slack"], "backup": ["discord"]})
    return {"channels": channels, "receivers": receivers, "route": {"receiver": "everyone"}}


async def notify(
    env: WorkflowEnvironment, config: Path, task_queue: str, receiver: str, title: str, text: str = TEXT
) -> Any:
    done = await asyncio.to_thread(
        cli,
        "notify",
        "--receiver",
        receiver,
        "--title",
        title,
        "--text",
        text,
        "--severity",
        "critical",
        "--link",
        "https://runbooks.example.com/payments",
        address=address_of(env.client),
        env={"TOCSIN_TASK_QUEUE": task_queue, "TOCSIN_CONFIG": str(config)},
    )
    assert done.returncode == 0, done.stderr
    return await env.client.get_workflow_handle_for(NotifyWorkflow.run, done.stdout.strip()).result()


async def test_one_notification_reaches_all_ten_channel_types(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    with fakes() as f:
        f["slack"].fail_next(2, status=500, method="chat.postMessage")  # two 500s: still exactly one message
        config = write_config(config_for(f))
        async with tocsin_worker(dev_env.client, task_queue, tmp_path, config):
            result = await notify(dev_env, config, task_queue, "everyone", "Payments deploy failed")
        outcomes = {d.channel: (d.outcome, d.channel_type) for d in result.deliveries}
        assert outcomes == {
            name: ("delivered", kind)
            for name, kind in [
                ("slack", "slack"),
                ("discord", "discord"),
                ("teams", "teams"),
                ("email-sendgrid", "email"),
                ("email-smtp", "email"),
                ("pagerduty", "pagerduty"),
                ("sms", "sms"),
                ("github", "github"),
                ("jira", "jira"),
                ("webhook", "webhook"),
                ("console", "console"),
            ]
        }
        slack_record = next(d for d in result.deliveries if d.channel == "slack")
        assert slack_record.attempts == 3 and len(f["slack"].messages) == 1

        def dump(value: Any) -> str:
            return json.dumps(
                value,
                default=lambda o: o.decode(errors="replace") if isinstance(o, bytes) else str(o),
                ensure_ascii=False,
            )

        seen: dict[str, str] = {
            "slack": dump(f["slack"].messages),
            "discord": dump(f["discord"].messages),
            "teams": dump(f["teams"].cards),
            "sendgrid": dump(f["sendgrid"].mails),
            "pagerduty": dump(f["pagerduty"].events),
            "sms": dump(f["twilio"].messages),
            "github": dump(f["github"].issues("acme/payments")),
            "jira": dump(f["jira"].issues),
            "webhook": dump(f["webhook"].deliveries),
            "smtp": "\n".join(m.as_string() for m in f["mailbox"].messages),
            "console": dump(outbox(tmp_path)),
        }
        for name, blob in seen.items():
            assert "Payments deploy failed" in blob or name == "sms" and "Payments" in blob, name
            for secret in SECRETS:
                assert secret not in blob, f"{secret!r} leaked to {name}"
        assert len(f["discord"].messages) == 1 and len(f["teams"].cards) == 1
        assert f["pagerduty"].events[0]["payload"]["severity"] == "critical"
        assert f["webhook"].deliveries and len(f["mailbox"].messages) == 1
        smtp_mail = f["mailbox"].messages[0]
        assert smtp_mail["To"] == "oncall@example.com" and smtp_mail.is_multipart()


async def test_dead_primary_fails_over_to_backup_within_30s(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    with fakes() as f:
        config = write_config(config_for(f, dead_primary=True))
        async with tocsin_worker(dev_env.client, task_queue, tmp_path, config):
            started = time.monotonic()
            result = await notify(dev_env, config, task_queue, "failover", "Primary is down")
            landed = f["discord"].messages[0]["received"] if "received" in f["discord"].messages[0] else None
            elapsed = time.monotonic() - started
    by = {d.channel: d for d in result.deliveries}
    assert by["discord"].outcome == "delivered" and by["discord"].backup
    assert by["dead-slack"].outcome == "failed"
    assert len(f["discord"].messages) == 1
    assert 20 <= elapsed < 30, f"backup delivered after {elapsed:.1f}s (failover_after 20s, must land within 30s)"
    _ = landed
