"""Bad input gets a 4xx with a JSON reason, never a 500 (issue 10, item 9), and a body limit (413).

Everything here goes to a real ``tocsin gateway`` process (uvicorn) through one ``httpx.Client``,
so a keep-alive connection that an error broke would show in the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.helpers import address_of
from tests.procs import base_env, tocsin_gateway

TOKEN = "input-test-token"
PD_SECRET = "input-test-pd-secret"
MAX_BODY = 64 * 1024
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON_HEADERS = {**AUTH, "Content-Type": "application/json"}


def am_body(**labels: str) -> dict[str, Any]:
    """A minimal Alertmanager webhook (payload version 4)."""
    return {
        "version": "4",
        "status": "firing",
        "receiver": "tocsin",
        "alerts": [{"status": "firing", "labels": {"alertname": "GatewayInputTest", "severity": "warning", **labels}}],
    }


@pytest.fixture(scope="module")
def gateway(dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real ``tocsin gateway`` for the module, with a 64 KiB body limit."""
    cwd = tmp_path_factory.mktemp("gateway-input")
    env = base_env(
        TEMPORAL_ADDRESS=address_of(dev_env.client),
        TOCSIN_TASK_QUEUE="gateway-input-test",
        TOCSIN_HOME=str(cwd / ".tocsin"),
        TOCSIN_GATEWAY_TOKEN=TOKEN,
        TOCSIN_GATEWAY_MAX_BODY=str(MAX_BODY),
        PAGERDUTY_WEBHOOK_SECRET=PD_SECRET,
    )
    with tocsin_gateway(Path(cwd), env) as url:
        yield url


@pytest.fixture
def http(gateway: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, timeout=30) as client:
        yield client


def _connection(resp: httpx.Response) -> Any:
    """The client side (host, port) of the TCP connection that carried ``resp``."""
    return resp.extensions["network_stream"].get_extra_info("client_addr")


def _deep(depth: int) -> bytes:
    return ('{"version": "4", "status": "firing", "alerts": ' + "[" * depth + "]" * depth + "}").encode()


def _with_alert(**alert: Any) -> bytes:
    body = am_body()
    body["alerts"][0].update(alert)
    return json.dumps(body).encode()


# (name, body, content type, accepted statuses, the field the answer must name or None)
BAD_INPUTS: list[tuple[str, bytes, str, tuple[int, ...], str | None]] = [
    ("nested 10,000 deep", _deep(10_000), "application/json", (400,), None),
    (
        "lone surrogate in a label value",
        json.dumps(am_body(service="\ud800")).encode(),
        "application/json",
        (400, 422),
        "alerts.0.labels.service",
    ),
    (
        "lone surrogate in a label name",
        json.dumps(am_body(**{"x\udfff": "v"})).encode(),
        "application/json",
        (400, 422),
        "alerts.0.labels",
    ),
    (
        "lone surrogate in an annotation",
        _with_alert(annotations={"summary": "a\udc80b"}),
        "application/json",
        (400, 422),
        "alerts.0.annotations.summary",
    ),
    (
        "raw surrogate bytes (not UTF-8)",
        b'{"version": "4", "receiver": "\xed\xa0\x80"}',
        "application/json",
        (400,),
        None,
    ),
    ("empty body", b"", "application/json", (400,), None),
    ("not JSON", b"{version: 4", "application/json", (400,), None),
    ("a JSON array", b"[1, 2]", "application/json", (422,), None),
    ("a JSON string", b'"hello"', "application/json", (422,), None),
    ("JSON null", b"null", "application/json", (422,), None),
    ("a JSON number", b"42", "application/json", (422,), None),
    (
        "an integer of 5,000 digits",
        b'{"version": "4", "truncatedAlerts": ' + b"9" * 5000 + b"}",
        "application/json",
        (400,),
        None,
    ),
    (
        "infinity for a count",
        b'{"version": "4", "status": "firing", "truncatedAlerts": 1e999, "alerts": []}',
        "application/json",
        (422,),
        "truncatedAlerts",
    ),
    ("a huge number for a time", _with_alert(startsAt=1e308), "application/json", (422,), "alerts.0.startsAt"),
    (
        "a number for a label",
        _with_alert(labels={"alertname": 10**30}),
        "application/json",
        (422,),
        "alerts.0.labels.alertname",
    ),
    ("labels as a list", _with_alert(labels=["alertname"]), "application/json", (422,), "alerts.0.labels"),
    (
        "alerts as an object",
        json.dumps({**am_body(), "alerts": {"a": 1}}).encode(),
        "application/json",
        (422,),
        "alerts",
    ),
    ("no alerts", json.dumps({**am_body(), "alerts": []}).encode(), "application/json", (422,), "alerts"),
    ("wrong version", json.dumps({**am_body(), "version": "3"}).encode(), "application/json", (422,), "version"),
    ("a bad status", _with_alert(status="burning"), "application/json", (422,), "alerts.0.status"),
    ("text/plain", json.dumps(am_body()).encode(), "text/plain", (415,), None),
    ("a form", b"version=4&status=firing", "application/x-www-form-urlencoded", (415,), None),
]


@pytest.mark.parametrize(
    ("body", "content_type", "statuses", "field"), [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_is_a_json_4xx_and_the_connection_still_works(
    http: httpx.Client, body: bytes, content_type: str, statuses: tuple[int, ...], field: str | None
) -> None:
    bad = http.post("/webhooks/alertmanager", content=body, headers={**AUTH, "Content-Type": content_type})
    assert bad.status_code in statuses, bad.text
    answer = bad.json()
    assert isinstance(answer["error"], str) and answer["error"]
    if field is not None:
        assert answer["field"] == field, answer
    good = http.post("/webhooks/alertmanager", json=am_body(), headers=AUTH)
    assert good.status_code == 202, good.text
    assert _connection(good) == _connection(bad), "the error closed the keep-alive connection"


@pytest.mark.parametrize(
    "alert",
    [
        {"startsAt": "9999-12-31T23:59:59-23:59", "endsAt": "0001-01-01T00:00:00+14:00"},
        {"startsAt": "2026-01-01T00:00:00"},  # no time zone
        {"labels": {"alertname": "GatewayInputTest", "": ""}},
        {"labels": {"alertname": "GatewayInputTest", "emoji": "\U0001f525 \u0000 nul"}},
        {"annotations": {"summary": "x" * 20_000}},
    ],
    ids=["extreme times", "naive time", "empty label", "astral and NUL", "long annotation"],
)
def test_odd_but_valid_input_is_never_a_500(http: httpx.Client, alert: dict[str, Any]) -> None:
    resp = http.post("/webhooks/alertmanager", content=_with_alert(**alert), headers=JSON_HEADERS)
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        assert resp.json()["error"]


def test_huge_but_finite_count_is_not_a_500(http: httpx.Client) -> None:
    body = json.dumps(am_body())[:-1] + ', "truncatedAlerts": ' + "9" * 4000 + "}"
    resp = http.post("/webhooks/alertmanager", content=body, headers=JSON_HEADERS)
    assert resp.status_code < 500, resp.text


def test_body_over_the_limit_by_content_length_is_413(http: httpx.Client) -> None:
    body = json.dumps(am_body(padding="x" * MAX_BODY)).encode()
    resp = http.post("/webhooks/alertmanager", content=body, headers=JSON_HEADERS)
    assert resp.status_code == 413
    assert str(MAX_BODY) in resp.json()["error"]
    assert http.post("/webhooks/alertmanager", json=am_body(), headers=AUTH).status_code == 202


def test_chunked_body_over_the_limit_is_413(http: httpx.Client) -> None:
    chunk = b" " * 8192

    def upload() -> Iterator[bytes]:
        yield json.dumps(am_body()).encode()[:-1]
        for _ in range(2 * MAX_BODY // len(chunk)):
            yield chunk
        yield b"}"

    resp = http.post("/webhooks/alertmanager", content=upload(), headers=JSON_HEADERS)
    assert "content-length" not in {k.lower() for k in resp.request.headers}
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"]
    assert http.post("/webhooks/alertmanager", json=am_body(), headers=AUTH).status_code == 202


def test_chunked_body_under_the_limit_is_accepted(http: httpx.Client) -> None:
    def upload() -> Iterator[bytes]:
        yield json.dumps(am_body()).encode()[:-1]
        yield b" " * (MAX_BODY // 2)
        yield b"}"

    assert http.post("/webhooks/alertmanager", content=upload(), headers=JSON_HEADERS).status_code == 202


def test_unauthenticated_is_401_before_the_body_is_read(http: httpx.Client) -> None:
    resp = http.post("/webhooks/alertmanager", content=_deep(10_000), headers={"Content-Type": "application/json"})
    assert resp.status_code == 401 and resp.json()["error"]


def _pd(http: httpx.Client, body: bytes) -> httpx.Response:
    digest = hmac.new(PD_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-PagerDuty-Signature": f"v1={digest}", "Content-Type": "application/json"}
    return http.post("/webhooks/pagerduty", content=body, headers=headers)


@pytest.mark.parametrize(
    "body",
    [
        b'{"event": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        b'{"event": {"event_type": "incident.acknowledged", "agent": "someone", "data": {"incident_key": "incident/x"}}}',
        b'{"event": {"event_type": "incident.resolved", "data": "nope"}}',
        b'{"event": {"event_type": "incident.acknowledged", "agent": {"summary": "\\ud800"},'
        b' "data": {"incident_key": "incident/x"}}}',
        b"[]",
        b"",
    ],
    ids=["nested 10,000 deep", "agent not an object", "data not an object", "lone surrogate", "array", "empty"],
)
def test_pagerduty_bad_input_is_a_4xx(http: httpx.Client, body: bytes) -> None:
    resp = _pd(http, body)
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.json()["error"]


def test_non_ascii_credentials_are_refused_not_a_500(http: httpx.Client) -> None:
    """Header values arrive as latin-1 text; comparing them with a token must not raise."""
    resp = http.post(
        "/webhooks/alertmanager", json=am_body(), headers={"Authorization": "Bearer caf\xe9".encode("latin-1")}
    )
    assert resp.status_code == 401 and resp.json()["error"]
    signature = {"X-PagerDuty-Signature": "v1=caf\xe9".encode("latin-1"), "Content-Type": "application/json"}
    resp = http.post("/webhooks/pagerduty", content=b"{}", headers=signature)
    assert resp.status_code == 403 and resp.json()["error"]
