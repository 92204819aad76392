"""Redaction rules of ``workflows/policy/redact.py``: URLs, pairs, models, and what must survive."""

from __future__ import annotations

import pytest

from activities.redact import Redactor as ActivityRedactor
from workflows.incident.models import Alert
from workflows.models import Action, Link, Message, MessageField
from workflows.pipeline.models import BuildEvent, SecuritySummary, TestFailure, TestSummary
from workflows.policy.redact import (
    REDACTED,
    URL_REDACTED,
    Redactor,
    is_secret_name,
    redact_alert,
    redact_alerts,
    redact_build_event,
    redact_mapping,
    redact_message,
    redactor_for,
)

redact = Redactor()


def test_activities_keep_their_import_path():
    assert ActivityRedactor is Redactor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see https://ci-bot:hunter2@ci.example.com/run/1", "see https://ci-bot:[REDACTED]@ci.example.com/run/1"),
        ("redis://:p4ss@cache:6379/0", "redis://:[REDACTED]@cache:6379/0"),
        ("https://u:p@ss@h/x", "https://u:[REDACTED]@h/x"),  # an "@" in the password: up to the last one
        ("https://h/x?token=abc123&page=2", "https://h/x?token=[REDACTED]&page=2"),
        ("https://h/cb#access_token=zz9&state=1", "https://h/cb#access_token=[REDACTED]&state=1"),
        ("https://h/x?api_key=k3y", "https://h/x?api_key=[REDACTED]"),
        ("https://h/x?apikey=k3y&key=AIzaSy0", "https://h/x?apikey=[REDACTED]&key=[REDACTED]"),
        (
            "https://acct.blob.core.windows.net/c?sv=2020&sig=abc%2Bd&se=1",
            "https://acct.blob.core.windows.net/c?sv=2020&sig=[REDACTED]&se=1",
        ),
        ("https://s3/x?X-Amz-Signature=f00&X-Amz-Date=1", "https://s3/x?X-Amz-Signature=[REDACTED]&X-Amz-Date=1"),
        ("https://abcd1234efgh5678ijkl9012@git.example.com/x", "https://[REDACTED]@git.example.com/x"),
    ],
)
def test_credentials_in_urls(text: str, expected: str):
    assert redact(text) == expected


def test_url_fields_get_a_marker_that_keeps_the_url_valid():
    url = "https://ci-bot:hunter2@ci.example.com/run/1?access_token=abc&x=1"
    assert redact.url(url) == f"https://ci-bot:{URL_REDACTED}@ci.example.com/run/1?access_token={URL_REDACTED}&x=1"
    assert "[" not in redact.url(url)
    assert redact.url(redact.url(url)) == redact.url(url)  # door, then delivery: stable


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ('{"password": "hunter2", "user": "x"}', "hunter2"),
        ("DB_PASSWORD=s3cret-value later", "s3cret-value"),
        ("X-Api-Key: k3y-123", "k3y-123"),
        ("client_secret=abcdef", "abcdef"),
        ("access_token=tok", "=tok"),
        ("token: abc123", "abc123"),
        ("password: correcthorsebatterystaple", "correcthorse"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
        ("glpat-abcdefghijklmnopqrstu in log", "glpat-abcdefghijklmnopqrstu"),
        ("sk_live_abcdefghijklmnop1234", "sk_live_abcdefghijklmnop1234"),
    ],
)
def test_secret_values_go(text: str, leaked: str):
    out = redact(text)
    assert leaked not in out and REDACTED in out


@pytest.mark.parametrize(
    "text",
    [
        "HighPasswd: probe",
        "alertname=HighPasswd",
        "password_reset_latency: 5",
        "password_reset_latency=5 token_bucket=3",
        "rate(password_reset_latency[5m]) > 1",
        "password: expired",
        "token: none",
        "basic authentication required",
        "ssh://git@github.com/acme/api.git",
        "mail bob@example.com about http://prom:9090/graph?g0.expr=up%3D%3D0&g0.tab=1",
        "https://grafana.example.com/d/abc?orgId=1&var-token_bucket=x&sort_key=y",
        "commit 4b825dc642cb6eb9a060e54bf8d69288fbee4904 on main",
        "Build failed: acme/api@main (ci)",
    ],
)
def test_no_over_redaction(text: str):
    assert redact(text) == text
    assert redact.url(text) == text


def test_redaction_is_idempotent():
    text = "password=hunter2 https://a:b@h/?sig=x token: abc123"
    once = redact(text)
    assert redact(once) == once


def test_extra_patterns_and_bad_ones():
    assert redactor_for([r"ACME-\d{6}"])("ticket ACME-123456") == f"ticket {REDACTED}"
    assert redactor_for([r"ACME-\d{6}"]) is redactor_for([r"ACME-\d{6}"])  # compiled once per list
    with pytest.raises(ValueError, match="redact_patterns"):
        Redactor(["(unclosed"])


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("db_password", True),
        ("X-Api-Key", True),
        ("client_secret", True),
        ("token", True),
        ("HighPasswd", False),
        ("password_reset_latency", False),
        ("token_bucket", False),
        ("alertname", False),
        ("Password reset", False),
    ],
)
def test_secret_names(name: str, secret: bool):
    assert is_secret_name(name) is secret


def test_mapping_redacts_secret_named_keys_and_secret_values_only():
    labels = {
        "alertname": "HighPasswd",
        "password_reset_latency": "5",
        "db_password": "plain",
        "dsn": "postgres://app:pw1@db/app",
        "summary": "login with password=hunter2",
    }
    assert redact_mapping(labels, redact) == {
        "alertname": "HighPasswd",
        "password_reset_latency": "5",
        "db_password": REDACTED,
        "dsn": f"postgres://app:{URL_REDACTED}@db/app",
        "summary": f"login with password={REDACTED}",
    }


SECRET = "hunter2-pw"
CRED_URL = f"https://ci-bot:{SECRET}@ci.example.com/run/1?token=tok-{SECRET}"


def test_message_every_field():
    message = Message(
        title=f"password={SECRET}",
        text=f"dsn {CRED_URL}",
        fields=[MessageField(title="Token", value="plainword"), MessageField(title="log", value=f"pwd={SECRET}")],
        links=[Link(text=f"token={SECRET}", url=CRED_URL)],
        actions=[Action(action_id="ack", text="Ack", value="incident/1", url=CRED_URL)],
        labels={"url": CRED_URL, "api_key": "k", "alertname": "HighPasswd"},
        source=f"notify/x?token={SECRET}",
    )
    out = redact_message(message, redact)
    assert SECRET not in out.model_dump_json() and "plainword" not in out.model_dump_json()
    assert (
        out.links[0].url
        == out.actions[0].url
        == f"https://ci-bot:{URL_REDACTED}@ci.example.com/run/1?token={URL_REDACTED}"
    )
    assert out.actions[0].value == "incident/1" and out.labels["alertname"] == "HighPasswd"
    assert message.title == f"password={SECRET}"  # the input is not changed


def test_alert_labels_annotations_and_generator_url():
    alert = Alert(
        fingerprint="f1",
        labels={"alertname": "HighPasswd", "password_reset_latency": "5", "token": "t0k"},
        annotations={"summary": f"probe failed with password={SECRET}", "runbook_url": CRED_URL},
        generator_url=f"https://admin:{SECRET}@prom.example.com/graph?g0.expr=up&g0.tab=1",
    )
    out = redact_alert(alert)
    assert SECRET not in out.model_dump_json() and "t0k" not in out.model_dump_json()
    assert out.labels["alertname"] == "HighPasswd" and out.labels["password_reset_latency"] == "5"
    assert out.generator_url == f"https://admin:{URL_REDACTED}@prom.example.com/graph?g0.expr=up&g0.tab=1"
    assert out.fingerprint == "f1" and out.status == alert.status
    assert redact_alerts([alert, alert], [r"HighPasswd"])[1].labels["alertname"] == REDACTED


def test_build_event_free_text():
    event = BuildEvent(
        repo="acme/api",
        branch="main",
        commit="4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        status="failure",
        url=CRED_URL,
        author=f"alice token={SECRET}",
        tests=TestSummary(
            total=1, failed=1, failures=[TestFailure(name="test_login", message=f"AssertionError: password={SECRET}")]
        ),
        security=[SecuritySummary(tool="gitleaks", error=1, top=["aws: AKIAABCDEFGHIJKLMNOP in prod.env"])],
    )
    out = redact_build_event(event, redact)
    dumped = out.model_dump_json()
    assert "hunter2" not in dumped and "AKIAABCDEFGHIJKLMNOP" not in dumped
    assert (out.repo, out.branch, out.commit, out.status) == (event.repo, event.branch, event.commit, event.status)
    assert out.tests is not None and out.tests.failures[0].name == "test_login"
