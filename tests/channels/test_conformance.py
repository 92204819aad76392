"""One conformance suite for every HTTP channel in the registry (Alertmanager's ``notify/test`` idea).

Each channel type has one small entry in :data:`CASES`: which fake stands in for its API,
settings pointing the channel at that fake, the credentials that must never show in an
error, and what the API's 429 asks for. Every check runs through the delivery activity
(:meth:`DeliveryActivities.send` in Temporal's ``ActivityEnvironment``), so what is checked is
what Temporal and the API see: ``ApplicationError.non_retryable``, ``next_retry_delay`` and the
error text in the history, and the request bytes after redaction.

The shared behaviour:

- a timeout (the ``timeout`` setting honoured), a dropped connection and a refused connection
  are retryable, and the error names neither the configured URL nor any credential;
- 500, 502 and 503 are retryable, nothing is delivered, and the next attempt delivers once;
- a 429 is retryable (kind ``RateLimited``) and its retry hint becomes the next retry delay;
- 400, 401, 403, 404, 410, 413 and 422 are not retryable, and the API's reason is in the error;
- secrets in the message (built-in patterns and the config's ``redact_patterns``) never reach the API,
  wherever they are: title, text, fields, link and button URLs (credentials in the userinfo or the
  query string), labels (PagerDuty ``custom_details``, webhook bodies, GitHub status URLs);
  the console channel (not HTTP) keeps none in its outbox or on stdout either.

What is particular to one API (payload shapes, idempotency, threading, PagerDuty's dedup_key,
Slack's ``ok: false``, Teams' throttling inside a 200 body, ...) stays in ``test_channel_<type>.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.channels import REGISTRY
from activities.channels.pagerduty import RATE_LIMIT_BACKOFF
from activities.delivery import DeliveryActivities
from operations.config import ConfigStore
from tests.fakes.base import FakeServer
from tests.fakes.discord import FakeDiscord
from tests.fakes.github import FakeGitHub
from tests.fakes.jira import FakeJira
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.slack import FakeSlack
from tests.fakes.teams import FakeTeams
from tests.fakes.twilio import FakeTwilio
from tests.fakes.webhook import FakeWebhookReceiver
from workflows.config import ChannelConfig, Config
from workflows.models import Action, DeliveryRecord, Link, Message, MessageField, SendRequest

NOT_HTTP = {"console": "prints and appends to the local outbox"}
"""Registry types this suite does not cover, and why."""
RETRY_AFTER = 7
"""Seconds every fake's 429 asks for."""
TIMEOUT, DELAY = 0.3, 1.0
"""The channel's ``timeout`` setting in the timeout check, and how late the fake answers."""
REASON = "refused-by-the-conformance-suite"
"""The API's reason in every injected 4xx."""
HOOK_TOKEN = "hook-query-t0ken"
"""A token in the webhook URL's query string (receivers often authenticate that way)."""


@dataclass(frozen=True)
class Case:
    """How the suite drives one channel type against its fake."""

    name: str
    """The test id: the channel type, or ``type-variant``."""
    fake: Callable[[], FakeServer]
    """Builds the (not yet started) fake of the API."""
    settings: Callable[[Any], dict[str, Any]]
    """The channel's settings, pointing at a started fake."""
    secrets: Callable[[Any], list[str]]
    """Credentials of those settings, which must never show in an error."""
    rate_limit: dict[str, Any] = field(default_factory=dict)
    """Extra arguments of the fake's ``rate_limit_next`` for a 429 with ``Retry-After``."""
    retry_delay: float | None = RETRY_AFTER
    """The next retry delay the channel asks for after that 429."""
    aim: dict[str, str] = field(default_factory=dict)
    """Arguments that aim a fault at the delivering call, where it is not the first request."""

    @property
    def type(self) -> str:
        """The registry type."""
        return self.name.split("-")[0]


CASES = [
    Case("slack", FakeSlack, lambda f: {"token": f.token, "channel": "#builds", "api_url": f.url}, lambda f: [f.token]),
    Case("discord", FakeDiscord, lambda f: {"webhook_url": f.webhook_url}, lambda f: [f.token]),
    Case("teams", FakeTeams, lambda f: {"webhook_url": f.workflow_url}, lambda f: [f.sig]),
    # A legacy connector throttles inside a 200 and gives no hint: Temporal's own backoff applies.
    Case(
        "teams-connector",
        FakeTeams,
        lambda f: {"webhook_url": f.connector_url},
        lambda f: [f.connector_id],
        retry_delay=None,
    ),
    # PagerDuty sends no Retry-After; the channel waits what PagerDuty's docs advise.
    Case(
        "pagerduty",
        FakePagerDuty,
        lambda f: {"routing_key": f.routing_key, "api_url": f.url},
        lambda f: [f.routing_key],
        retry_delay=RATE_LIMIT_BACKOFF,
    ),
    Case(
        "github",
        FakeGitHub,
        lambda f: {"token": f.token, "repo": "acme/api", "api_url": f.url},
        lambda f: [f.token],
        rate_limit={"kind": "429"},
    ),
    Case(
        "jira",
        FakeJira,
        lambda f: {"url": f.url, "user": f.user, "token": f.token, "project": "OPS"},
        lambda f: [f.token],
        aim={"route": "issue.create"},
    ),  # a search comes first
    Case(
        "email",
        FakeSendGrid,
        lambda f: {
            "provider": "sendgrid",
            "api_key": f.api_key,
            "api_url": f.url,
            "from": "ci@example.com",
            "to": "oncall@example.com",
        },
        lambda f: [f.api_key],
        rate_limit={"with_retry_after": True},
    ),
    Case(
        "sms",
        FakeTwilio,
        lambda f: {
            "account_sid": f.account_sid,
            "auth_token": f.auth_token,
            "from": f.from_number,
            "to": "+15551230001",
            "api_url": f.base_url,
        },
        lambda f: [f.auth_token],
    ),
    Case(
        "webhook",
        lambda: FakeWebhookReceiver(secret="whsec-conformance"),
        lambda f: {"url": f"{f.url}?token={HOOK_TOKEN}", "secret": f.secret},
        lambda f: [f.secret, HOOK_TOKEN],
    ),
]

MESSAGE = Message(
    title="Conformance: build failed on main",
    text="Failing for 2 builds in a row.\nSecond line.",
    severity="error",
    fields=[MessageField(title="Branch", value="main")],
    source="conformance",
)
SECRETS = ("hunter2-pw", "pg-s3cret-pw", "AKIAABCDEFGHIJKLMNOP", "INC-SECRET-4242")
SECRET_MESSAGE = Message(
    title="Deploy failed: password=hunter2-pw",
    text="dsn postgres://app:pg-s3cret-pw@db.internal/app key AKIAABCDEFGHIJKLMNOP ref INC-SECRET-4242\nmore",
    severity="error",
    fields=[MessageField(title="Settings", value="password=hunter2-pw")],
    source="conformance",
)
LINK = "https://ci-bot:ci-b0t-pw@ci.example.com/run/1?token=tok-9f8e7d&page=2"
EVERYWHERE_SECRETS = (
    *SECRETS,
    "ci-b0t-pw",
    "tok-9f8e7d",
    "pg-adm1n-pw",
    "ak-5c4b3a",
    "sig-1a2b3c",
    "fieldv4lue",
    "l4bel-pw",
    "AKIAQRSTUVWXYZABCDEF",
)
EVERYWHERE_MESSAGE = Message(
    title="Deploy failed: password=hunter2-pw",
    text=(
        "alert from https://admin:pg-adm1n-pw@prom.example.com/graph?g0.expr=up&api_key=ak-5c4b3a "
        "ref INC-SECRET-4242\nmore"
    ),
    severity="error",
    fields=[MessageField(title="Password", value="fieldv4lue"), MessageField(title="Run", value=LINK)],
    links=[Link(text="View run", url=LINK)],
    actions=[Action(action_id="open", text="Open", url="https://hooks.example.com/x?sig=sig-1a2b3c")],
    labels={"alertname": "HighPasswd", "url": LINK, "db_password": "l4bel-pw", "key_id": "AKIAQRSTUVWXYZABCDEF"},
    source="conformance",
)
"""Secrets in every part of a message a channel renders: text, fields, links, buttons, labels."""
EXTRA_PATTERN = r"INC-SECRET-\d+"
"""A ``redact_patterns`` entry of the config (beside the built-in patterns)."""


class MemoryConfigStore(ConfigStore):
    """A config store holding one config in memory (the worker's store reads a file)."""

    def __init__(self, config: Config):  # no file: nothing of the parent's to set up
        self._config = config

    def get(self) -> Config:
        return self._config


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, FakeServer]]:
    """One fake per case, started when first needed, stopped with the module."""
    started: dict[str, FakeServer] = {}
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(params=CASES, ids=[case.name for case in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def fake(case: Case, servers: dict[str, FakeServer]) -> Iterator[Any]:
    server = servers.get(case.name)
    if server is None:
        server = servers[case.name] = case.fake().start()
    server.reset()
    yield server
    server.reset()


async def deliver(
    case: Case,
    fake: Any,
    home: Path,
    *,
    settings: dict[str, Any] | None = None,
    message: Message = MESSAGE,
    attempt: int = 1,
) -> DeliveryRecord:
    """One send through the delivery activity, as Temporal runs it (attempt ``attempt``)."""
    spec = ChannelConfig(type=case.type, **(settings or case.settings(fake)))  # type: ignore[arg-type]
    store = MemoryConfigStore(Config(channels={"conformance": spec}, redact_patterns=[EXTRA_PATTERN]))
    activities = DeliveryActivities(store, home=home, http=httpx.AsyncClient())
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    request = SendRequest(
        channel="conformance",
        receiver="conformance",
        message=message,
        idempotency_key=f"wf-conformance|notify|{case.name}",
    )
    try:
        return await env.run(activities.send, request)
    finally:
        await activities.aclose()


async def failure(case: Case, fake: Any, home: Path, **kwargs: Any) -> ApplicationError:
    """The error of a send that must fail."""
    with pytest.raises(ApplicationError) as err:
        await deliver(case, fake, home, **kwargs)
    return err.value


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_names_no_secret(err: ApplicationError, case: Case, fake: Any, settings: dict[str, Any]) -> None:
    """Neither a configured URL nor a credential is in the error (it lands in workflow history)."""
    text = f"{err} {err.message}"
    urls = [v for v in settings.values() if isinstance(v, str) and "://" in v]
    assert not [s for s in [*urls, *case.secrets(fake)] if s in text], text


def delivered(fake: Any) -> list[Any]:
    """What the fake accepted (messages, mails, events, ...)."""
    return fake.wait_for(0, timeout=0)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- the registry


def test_every_channel_type_is_covered_or_named_as_not_http() -> None:
    assert set(REGISTRY) == {case.type for case in CASES} | set(NOT_HTTP)
    assert not {case.type for case in CASES} & set(NOT_HTTP)


# --------------------------------------------------------------------------- transport failures


async def test_timeout_is_retryable_and_names_no_secret(case: Case, fake: Any, tmp_path: Path) -> None:
    fake.delay_next(seconds=DELAY, **case.aim)
    settings = {**case.settings(fake), "timeout": TIMEOUT}
    started = time.perf_counter()
    err = await failure(case, fake, tmp_path, settings=settings)
    assert time.perf_counter() - started < DELAY - 0.2  # the timeout setting is honoured
    assert not err.non_retryable and "no answer" in err.message
    assert_names_no_secret(err, case, fake, settings)
    late = (lambda: fake.calls(case.aim["route"])) if case.aim else (lambda: fake.requests)
    for _ in range(250):  # the slow request still lands; let it, before the next test
        if late():
            break
        await asyncio.sleep(0.02)


async def test_dropped_connection_is_retryable_and_names_no_secret(case: Case, fake: Any, tmp_path: Path) -> None:
    fake.drop_next(**case.aim)
    err = await failure(case, fake, tmp_path)
    assert not err.non_retryable
    assert_names_no_secret(err, case, fake, case.settings(fake))


async def test_refused_connection_is_retryable_and_names_no_secret(case: Case, fake: Any, tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{closed_port()}"
    settings = {
        k: v.replace(fake.base_url, nowhere) if isinstance(v, str) else v for k, v in case.settings(fake).items()
    }
    err = await failure(case, fake, tmp_path, settings=settings)
    assert not err.non_retryable
    assert_names_no_secret(err, case, fake, settings)
    assert fake.requests == []


# --------------------------------------------------------------------------- HTTP statuses


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_error_is_retryable_and_the_retry_delivers_once(
    case: Case, fake: Any, tmp_path: Path, status: int
) -> None:
    fake.fail_next(status=status, **case.aim)
    err = await failure(case, fake, tmp_path)
    assert not err.non_retryable and str(status) in err.message
    assert delivered(fake) == []

    record = await deliver(case, fake, tmp_path, attempt=2)

    assert record.outcome == "delivered" and record.attempts == 2
    assert len(delivered(fake)) == 1


async def test_rate_limit_is_retryable_and_sets_the_next_retry_delay(case: Case, fake: Any, tmp_path: Path) -> None:
    fake.rate_limit_next(retry_after=RETRY_AFTER, **case.rate_limit, **case.aim)
    err = await failure(case, fake, tmp_path)
    assert not err.non_retryable and err.type == "RateLimited"
    expected = None if case.retry_delay is None else timedelta(seconds=case.retry_delay)
    assert err.next_retry_delay == expected
    assert delivered(fake) == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
async def test_client_error_is_not_retryable_and_carries_the_reason(
    case: Case, fake: Any, tmp_path: Path, status: int
) -> None:
    fake.respond_next(status=status, body={"error": REASON, "message": REASON}, **case.aim)
    err = await failure(case, fake, tmp_path)
    assert err.non_retryable and REASON in err.message
    assert delivered(fake) == []


# --------------------------------------------------------------------------- what reaches the API


async def test_secrets_in_the_text_never_reach_the_api(case: Case, fake: Any, tmp_path: Path) -> None:
    record = await deliver(case, fake, tmp_path, message=SECRET_MESSAGE)

    assert record.outcome == "delivered"
    # Backslashes out: Jira's wiki markup escapes "-" as "\-", which would hide a leak from the check.
    sent = [(r.raw.decode("utf-8", "replace") + r.path + json.dumps(r.query)).replace("\\", "") for r in fake.requests]
    assert not [s for s in SECRETS if any(s in text for text in sent)]
    assert any("REDACTED" in text for text in sent)  # the text did reach the API, redacted


def sent_text(fake: Any) -> list[str]:
    """Every request the fake saw, as text (JSON and form escapes undone, so a leak cannot hide)."""
    out = []
    for r in fake.requests:
        raw = unquote_plus(r.raw.decode("utf-8", "replace")) + r.path + json.dumps(r.query)
        out.append(raw.replace("\\u0026", "&").replace("\\", ""))
    return out


async def test_secrets_anywhere_in_the_message_never_reach_the_api(case: Case, fake: Any, tmp_path: Path) -> None:
    record = await deliver(case, fake, tmp_path, message=EVERYWHERE_MESSAGE)

    assert record.outcome == "delivered"
    sent = sent_text(fake)
    assert not [s for s in EVERYWHERE_SECRETS if any(s in text for text in sent)]
    assert any("REDACTED" in text for text in sent)


async def test_console_outbox_and_stdout_keep_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    console = Case("console", FakeWebhookReceiver, lambda f: {}, lambda f: [])
    record = await deliver(console, None, tmp_path, settings={}, message=EVERYWHERE_MESSAGE)

    assert record.outcome == "delivered"
    outbox = (tmp_path / "outbox.jsonl").read_text(encoding="utf-8")
    printed = capsys.readouterr().out
    assert not [s for s in EVERYWHERE_SECRETS if s in outbox or s in printed]
    assert "REDACTED" in outbox and "REDACTED" in printed and "HighPasswd" in outbox
