"""The Slack door without Temporal: signatures (Slack's documented example with a frozen clock, valid,
tampered, stale, missing), slash-command parsing, the retry memory, and the routes' answers that come
before any operation runs (403 unconfigured, 401 unsigned, usage, unmapped users, refusals by role)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from operations.auth import recent_refusals
from operations.config import ConfigStore
from starters.gateway import create_app
from starters.slack.blocks import metrics_blocks, status_blocks
from starters.slack.commands import Invocation, Usage, parse_command
from starters.slack.verify import Deduper, SlackSettings, check_signature
from tests.fakes.slack import validate_blocks
from tests.fakes.slack_inbound import FakeSlackInbound, form_body, interaction_body, signed
from workers.settings import Settings

DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = 1531420618
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
SECRET = "test-signing-secret"


def _doc_headers(signature: str = DOC_SIGNATURE, timestamp: int = DOC_TIMESTAMP) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": signature}


# ---------------------------------------------------------------------------------------- signatures


def test_slacks_documented_example_passes_with_a_frozen_clock() -> None:
    assert check_signature(DOC_SECRET, DOC_BODY, _doc_headers(), now=lambda: DOC_TIMESTAMP + 10) is None


def test_documented_example_is_stale_at_todays_time() -> None:
    assert check_signature(DOC_SECRET, DOC_BODY, _doc_headers()) == "stale"


def test_tampered_body_wrong_secret_and_wrong_signature_fail() -> None:
    frozen = lambda: DOC_TIMESTAMP  # noqa: E731
    assert check_signature(DOC_SECRET, DOC_BODY.replace(b"text=", b"text=x"), _doc_headers(), now=frozen) == (
        "bad-signature"
    )
    assert check_signature("another-secret", DOC_BODY, _doc_headers(), now=frozen) == "bad-signature"
    assert check_signature(DOC_SECRET, DOC_BODY, _doc_headers("v0=" + "0" * 64), now=frozen) == "bad-signature"
    assert check_signature(DOC_SECRET, b"\xff\xfe", _doc_headers(), now=frozen) == "bad-signature"


def test_stale_timestamp_beyond_five_minutes_fails_even_when_signed() -> None:
    body = b"command=%2Ftocsin&text=help"
    old = int(time.time()) - 301
    assert check_signature(SECRET, body, signed(SECRET, body, timestamp=old)) == "stale"
    future = int(time.time()) + 301
    assert check_signature(SECRET, body, signed(SECRET, body, timestamp=future)) == "stale"
    recent = int(time.time()) - 290
    assert check_signature(SECRET, body, signed(SECRET, body, timestamp=recent)) is None


def test_missing_or_malformed_headers_fail() -> None:
    body = b"command=%2Ftocsin"
    headers = signed(SECRET, body)
    assert check_signature(SECRET, body, headers) is None
    assert check_signature(SECRET, body, {k.lower(): v for k, v in headers.items()}) is None
    assert check_signature(SECRET, body, {}) == "missing"
    assert check_signature(SECRET, body, {"X-Slack-Signature": headers["X-Slack-Signature"]}) == "missing"
    assert check_signature(SECRET, body, {"X-Slack-Request-Timestamp": headers["X-Slack-Request-Timestamp"]}) == (
        "missing"
    )
    assert check_signature(SECRET, body, {**headers, "X-Slack-Request-Timestamp": "soon"}) == "malformed"


def test_settings_from_environment() -> None:
    assert SlackSettings.from_env({}) == SlackSettings("", "", "https://slack.com/api/")
    got = SlackSettings.from_env(
        {"SLACK_SIGNING_SECRET": " s ", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_API_URL": "http://127.0.0.1:9/api"}
    )
    assert got == SlackSettings("s", "xoxb-1", "http://127.0.0.1:9/api/")


# ---------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("command", "text", "expected"),
    [
        ("/tocsin", "deploy payments prod 1.2.3", Invocation("deploy", ("payments", "prod", "1.2.3"))),
        ("/deploy", "payments prod 1.2.3", Invocation("deploy", ("payments", "prod", "1.2.3"), command="/deploy")),
        ("/tocsin", "rollback pay prod  it  broke", Invocation("rollback", ("pay", "prod"), "it broke")),
        ("/rollback", "pay prod bad", Invocation("rollback", ("pay", "prod"), "bad", command="/rollback")),
        ("/tocsin", "status", Invocation("status")),
        ("/tocsin", "STATUS payments", Invocation("status", ("payments",))),
        ("/status", "", Invocation("status", command="/status")),
        ("/metrics", "pay", Invocation("metrics", ("pay",), command="/metrics")),
        ("/tocsin", "approve deploy/pay/prod/1.2", Invocation("approve", ("deploy/pay/prod/1.2",))),
        ("/approve", "deploy/pay/prod/1.2", Invocation("approve", ("deploy/pay/prod/1.2",), command="/approve")),
        (
            "/tocsin",
            "reject deploy/p/prod/1 too &amp; risky",
            Invocation("reject", ("deploy/p/prod/1",), "too & risky"),
        ),
        ("/tocsin", "incident critical DB down", Invocation("incident", ("critical",), "DB down")),
        ("/incident", "Warning disk 90%", Invocation("incident", ("Warning",), "disk 90%", command="/incident")),
        ("/tocsin", "ack incident/ab12", Invocation("ack", ("incident/ab12",))),
        ("/tocsin", "resolve incident/ab12", Invocation("resolve", ("incident/ab12",))),
        ("/tocsin", "resolve incident/ab12 fixed it", Invocation("resolve", ("incident/ab12",), "fixed it")),
        ("/tocsin", "", Invocation("help")),
        ("/tocsin", "help", Invocation("help")),
    ],
)
def test_parse_command(command: str, text: str, expected: Invocation) -> None:
    assert parse_command(command, text) == expected


@pytest.mark.parametrize(
    ("command", "text", "usage"),
    [
        ("/tocsin", "deploy payments prod", "Usage: /tocsin deploy SERVICE ENV VERSION"),
        ("/tocsin", "deploy payments prod 1.2 extra", "Usage: /tocsin deploy SERVICE ENV VERSION"),
        ("/deploy", "payments", "Usage: /deploy SERVICE ENV VERSION"),
        ("/tocsin", "deploy pay$ prod 1", "SERVICE 'pay$' is not a valid name"),
        ("/tocsin", "rollback pay prod", "Usage: /tocsin rollback SERVICE ENV REASON…"),
        ("/tocsin", "status a b", "Usage: /tocsin status [SERVICE]"),
        ("/tocsin", "approve", "Usage: /tocsin approve ID"),
        ("/approve", "a b", "Usage: /approve ID"),
        ("/tocsin", "reject deploy/p/prod/1", "Usage: /tocsin reject ID REASON…"),
        ("/tocsin", "incident critical", "Usage: /tocsin incident SEVERITY TITLE…"),
        ("/tocsin", "incident urgent DB down", "SEVERITY must be one of info|warning|error|critical"),
        ("/tocsin", "ack", "Usage: /tocsin ack ID"),
        ("/tocsin", "resolve", "Usage: /tocsin resolve ID [NOTE…]"),
        ("/tocsin", "frobnicate", "Unknown subcommand 'frobnicate'"),
        ("/other", "x", "Unknown command /other"),
    ],
)
def test_bad_arguments_answer_the_usage_line(command: str, text: str, usage: str) -> None:
    with pytest.raises(Usage) as err:
        parse_command(command, text)
    assert usage in str(err.value)


def test_deduper_remembers_within_ttl_and_stays_bounded() -> None:
    now = [0.0]
    seen = Deduper(ttl=10, size=3, clock=lambda: now[0])
    assert seen.first(("a",)) and not seen.first(("a",))
    now[0] = 10.5
    assert seen.first(("a",))
    for key in ("b", "c", "d"):
        assert seen.first((key,))
    assert seen.first(("a",))  # pushed out by the bound
    assert not seen.first(("d",))


# ---------------------------------------------------------------------------------------- routes


@pytest.fixture
def slack() -> Iterator[FakeSlackInbound]:
    with FakeSlackInbound() as fake:
        yield fake


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "tocsin.yaml"
    config = {
        "channels": {"console": {"type": "console"}},
        "receivers": [{"name": "default", "channels": ["console"]}],
        "route": {"receiver": "default"},
        "users": [
            {"name": "alice", "slack": "UALICE", "roles": ["responder", "approver:prod"]},
            {"name": "bob", "slack": "UBOB", "roles": []},
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
async def gateway(
    config_path: Path, slack: FakeSlackInbound, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack.token)
    monkeypatch.setenv("SLACK_API_URL", slack.url)
    settings = replace(Settings(), gateway_token="t")
    app = create_app(settings, client=object(), store=ConfigStore(config_path))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


def _command(slack: FakeSlackInbound, user: str, text: str, command: str = "/tocsin", trigger: str = "1.2.3") -> bytes:
    return form_body(
        command=command, text=text, user_id=user, user_name=user.lower(), trigger_id=trigger,
        response_url=slack.response_url(trigger),
    )  # fmt: skip


async def test_no_signing_secret_answers_403_and_accepts_nothing(
    gateway: httpx.AsyncClient, slack: FakeSlackInbound, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    body = _command(slack, "UALICE", "status")
    for path in ("/webhooks/slack/commands", "/webhooks/slack/interactions"):
        resp = await gateway.post(path, content=body, headers=signed(SECRET, body))
        assert resp.status_code == 403 and "Slack not configured" in resp.json()["error"], resp.text
    assert slack.responses == []


async def test_unsigned_tampered_and_stale_requests_are_401_and_counted(
    gateway: httpx.AsyncClient, slack: FakeSlackInbound
) -> None:
    body = _command(slack, "UALICE", "help")
    cases = {
        "missing": {"Content-Type": "application/x-www-form-urlencoded"},
        "bad-signature": signed("wrong-secret", body),
        "stale": signed(SECRET, body, timestamp=int(time.time()) - 600),
    }
    for reason, headers in cases.items():
        before = await _counter(gateway, reason)
        resp = await gateway.post("/webhooks/slack/commands", content=body, headers=headers)
        assert resp.status_code == 401 and reason in resp.json()["error"], resp.text
        assert await _counter(gateway, reason) == before + 1
    resp = await gateway.post(
        "/webhooks/slack/interactions", content=body + b"x", headers=signed(SECRET, body)
    )  # tampered
    assert resp.status_code == 401
    resp = await gateway.post("/webhooks/slack/commands", content=body, headers=signed(SECRET, body))
    assert resp.status_code == 200 and "Tocsin commands" in resp.json()["text"]


async def _counter(client: httpx.AsyncClient, reason: str) -> float:
    text = (await client.get("/metrics")).text
    prefix = f'tocsin_slack_rejected_total{{reason="{reason}"}} '
    return next((float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)), 0.0)


async def test_bad_arguments_answer_usage_ephemerally(gateway: httpx.AsyncClient, slack: FakeSlackInbound) -> None:
    body = _command(slack, "UALICE", "payments prod", command="/deploy")
    resp = await gateway.post("/webhooks/slack/commands", content=body, headers=signed(SECRET, body))
    assert resp.status_code == 200
    assert resp.json() == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": "Usage: /deploy SERVICE ENV VERSION",
    }


async def test_unmapped_slack_user_is_refused_with_what_is_missing_and_recorded(
    gateway: httpx.AsyncClient, slack: FakeSlackInbound, caplog: pytest.LogCaptureFixture
) -> None:
    body = _command(slack, "UNOBODY", "status")
    with caplog.at_level("WARNING", logger="tocsin.audit"):
        resp = await gateway.post("/webhooks/slack/commands", content=body, headers=signed(SECRET, body))
    assert resp.status_code == 200 and resp.json()["response_type"] == "ephemeral"
    assert "your Slack user UNOBODY (@unobody) is not in users[].slack" in resp.json()["text"]
    assert any("UNOBODY" in r.getMessage() for r in caplog.records if r.name == "tocsin.audit")
    last = recent_refusals()[-1]
    assert last.kind == "unmapped" and last.actor.credential == "UNOBODY" and last.actor.method == "slack"


def _click(slack: FakeSlackInbound, user: str, action: str, value: str, ts: str = "1700000000.000100") -> bytes:
    return interaction_body(
        {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower()},
            "trigger_id": f"trig-{ts}",
            "response_url": slack.response_url(f"click-{ts}"),
            "actions": [{"action_id": action, "value": value, "action_ts": ts, "type": "button"}],
        }
    )


async def test_click_without_the_role_gets_the_operations_reason(
    gateway: httpx.AsyncClient, slack: FakeSlackInbound
) -> None:
    body = _click(slack, "UBOB", "tocsin_ack", "incident/abc")
    resp = await gateway.post("/webhooks/slack/interactions", content=body, headers=signed(SECRET, body))
    assert resp.status_code == 200 and resp.content == b""
    [reply] = await slack.await_responses("click-1700000000.000100")
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    assert reply["text"] == "Refused: bob does not hold the role responder"


async def test_unmapped_click_refused_and_reject_opens_a_modal(
    gateway: httpx.AsyncClient, slack: FakeSlackInbound
) -> None:
    body = _click(slack, "UNOBODY", "tocsin_approve", "deploy/pay/prod/1", ts="1.1")
    await gateway.post("/webhooks/slack/interactions", content=body, headers=signed(SECRET, body))
    [reply] = await slack.await_responses("click-1.1")
    assert "your Slack user UNOBODY (@unobody) is not in users[].slack" in reply["text"]
    body = _click(slack, "UALICE", "tocsin_reject", "deploy/pay/prod/1", ts="2.2")
    resp = await gateway.post("/webhooks/slack/interactions", content=body, headers=signed(SECRET, body))
    assert resp.status_code == 200
    [opened] = slack.views
    assert opened["trigger_id"] == "trig-2.2" and opened["view"]["callback_id"] == "tocsin_reject_reason"
    assert "deploy/pay/prod/1" in opened["view"]["private_metadata"]
    empty: dict[str, Any] = {
        "type": "view_submission",
        "user": {"id": "UALICE"},
        "view": {**opened["view"], "id": "V1", "state": {"values": {"reason": {"reason_input": {"value": " "}}}}},
    }
    body = interaction_body(empty)
    resp = await gateway.post("/webhooks/slack/interactions", content=body, headers=signed(SECRET, body))
    assert resp.json() == {"response_action": "errors", "errors": {"reason": "Say why you reject it"}}


async def test_retried_click_acts_once(gateway: httpx.AsyncClient, slack: FakeSlackInbound) -> None:
    body = _click(slack, "UBOB", "tocsin_resolve", "incident/xyz", ts="3.3")
    for retry in (None, 1, 2):
        resp = await gateway.post(
            "/webhooks/slack/interactions", content=body, headers=signed(SECRET, body, retry=retry)
        )
        assert resp.status_code == 200
    await slack.await_responses("click-3.3")
    assert len(slack.responses_to("click-3.3")) == 1


async def test_double_click_within_seconds_acts_once(gateway: httpx.AsyncClient, slack: FakeSlackInbound) -> None:
    for ts in ("4.1", "4.2"):  # two clicks: different action_ts, same user, button and workflow
        body = _click(slack, "UBOB", "tocsin_snooze", "incident/double", ts=ts)
        resp = await gateway.post("/webhooks/slack/interactions", content=body, headers=signed(SECRET, body))
        assert resp.status_code == 200
    assert len(slack.responses_to("click-4.1")) == 1 and slack.responses_to("click-4.2") == []
    body = _click(slack, "UBOB", "tocsin_escalate", "incident/double", ts="4.3")  # another button acts
    await gateway.post("/webhooks/slack/interactions", content=body, headers=signed(SECRET, body))
    assert len(slack.responses_to("click-4.3")) == 1


async def test_link_buttons_and_other_payloads_are_ignored(gateway: httpx.AsyncClient, slack: FakeSlackInbound) -> None:
    body = _click(slack, "UALICE", "tocsin_link_0", "https://ci.example.com", ts="5.1")
    resp = await gateway.post("/webhooks/slack/interactions", content=body, headers=signed(SECRET, body))
    assert resp.status_code == 200 and slack.responses == []
    body = b"payload=not-json"
    resp = await gateway.post("/webhooks/slack/interactions", content=body, headers=signed(SECRET, body))
    assert resp.status_code == 400


def test_status_and_metrics_blocks_are_valid_block_kit_and_invent_no_numbers() -> None:
    status = {
        "incidents": [
            {"id": f"incident/{i}", "status": "notified", "severity": "critical", "title": f"T{i}"} for i in range(20)
        ],
        "deployments": [{"id": "deploy/a/prod/1", "status": "pending_approval"}],
        "pipelines": [{"id": "pipeline/a/main", "status": "failure"}, {"id": "pipeline/b/main", "status": "success"}],
        "mtta_seconds": {"count": 2, "avg": 90.0, "max": 150.0},
        "mttr_seconds": {"count": 0, "avg": 0.0, "max": 0.0},
    }
    blocks = status_blocks(status, "a")
    assert validate_blocks(blocks) is None
    assert "*Open incidents* (20)" in blocks[1]["text"]["text"] and "…and 5 more" in blocks[1]["text"]["text"]
    assert "pipeline/a/main" in blocks[3]["text"]["text"] and "pipeline/b/main" not in blocks[3]["text"]["text"]
    metrics = metrics_blocks(status)
    assert validate_blocks(metrics) is None
    fields = [f["text"] for f in metrics[1]["fields"]]
    assert fields[0] == "*MTTA*\navg 1m30s, max 2m30s over 2 incident(s)" and fields[1] == "*MTTR*\nno data yet"
    assert "DORA keys" in metrics[2]["elements"][0]["text"] and "not available" in metrics[2]["elements"][0]["text"]
    report = {
        "window": "30d", "until": "2026-11-30T12:00:00+00:00", "service": "a",
        "dora": [{
            "service": "a", "env": "prod", "deployments": 3, "deployment_frequency_per_day": 0.1,
            "lead_time_median_seconds": 5400.0, "lead_time_p90_seconds": 7200.0, "lead_time_changes": 3,
            "change_failure_rate": 1 / 3, "failed_changes": 1, "changes": 3,
            "time_to_restore_median_seconds": 600.0, "restored": 1, "unrestored": 0,
        }],
        "builds": {"success_rate": 0.9, "successes": 9, "failures": 1, "flaky": 0, "builds": 10,
                   "duration_avg_seconds": 300.0},
        "incidents": {"incidents": 2, "open": 0, "mtta_seconds": 90.0, "mtta_median_seconds": 90.0,
                      "mttr_seconds": 600.0, "mttr_median_seconds": 600.0},
    }  # fmt: skip
    dora = metrics_blocks(status, "a", report)
    assert validate_blocks(dora) is None
    text = dora[2]["text"]["text"]
    assert "a in prod:" in text and "0.10/day (3 deployments)" in text and "33.3% (1/3 changes)" in text
    assert "median 1h30m, p90 2h" in text and "Builds: success rate 90.0%" in text


async def test_retried_command_acts_once_and_ssl_check_is_answered(
    gateway: httpx.AsyncClient, slack: FakeSlackInbound
) -> None:
    body = _command(slack, "UBOB", "ack incident/retried", trigger="7.7")
    for retry in (None, 1):
        resp = await gateway.post("/webhooks/slack/commands", content=body, headers=signed(SECRET, body, retry=retry))
        assert resp.status_code == 200
    [reply] = slack.responses_to("7.7")
    assert reply["text"] == "Refused: bob does not hold the role responder"
    body = form_body(ssl_check="1", token="x")
    resp = await gateway.post("/webhooks/slack/commands", content=body, headers=signed(SECRET, body))
    assert resp.status_code == 200 and resp.content == b""
