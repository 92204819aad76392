"""``tocsin flaky``: bad input exits 2 naming the field before anything is sent; the API answers 422 naming it;
``--until`` takes an ISO time or a duration; quarantine refuses without the builder role."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from typer.testing import CliRunner

from operations import BadInput, NotFound, Refused
from operations.context import Context
from operations.flaky import MAX_PIPELINES, list_flaky, parse_until, quarantine_test, release_test
from starters import api
from starters.api_support import authenticate
from starters.cli import app, remote
from tests.unit.test_redact_doors import RecordingClient
from workflows import search
from workflows.config import Config, default_config
from workflows.identity import Actor
from workflows.pipeline.models import FlakyQuarantine, FlakyRelease

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CI = Actor(name="ci", via="cli")


def test_until_takes_a_duration_or_an_iso_time() -> None:
    assert parse_until("7d", NOW) == NOW + timedelta(days=7)
    assert parse_until("1h30m", NOW) == NOW + timedelta(hours=1, minutes=30)
    assert parse_until("2026-12-24T18:00:00Z", NOW) == datetime(2026, 12, 24, 18, tzinfo=UTC)
    assert parse_until("2026-12-24T18:00", NOW) == datetime(2026, 12, 24, 18, tzinfo=UTC)  # no zone: UTC
    assert parse_until("2026-12-24T19:00:00+01:00", NOW) == datetime(2026, 12, 24, 18, tzinfo=UTC)
    assert parse_until(None, NOW) is None and parse_until(" ", NOW) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("tomorrow", "not an ISO-8601 time or a duration"),
        ("-1d", "not an ISO-8601 time or a duration"),
        ("0", "must be in the future"),
        ("2026-11-29T00:00:00Z", "must be in the future"),
    ],
)
def test_until_refuses_what_is_not_a_future_time(text: str, reason: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_until(text, NOW)
    assert info.value.field == "--until" and reason in info.value.message


# ---------------------------------------------------------------------------------------- the CLI


@pytest.fixture
def nothing_sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Bad input must stop the command before it talks to Temporal or the gateway."""
    from starters.cli import flaky

    def run_op(*_: Any, **__: Any) -> Any:
        raise AssertionError("the command went on to run the operation")

    monkeypatch.setattr(flaky, "run_op", run_op)
    yield


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["quarantine", " ", "--repo", "acme/api", "--by", "alice"], "TEST"),
        (["quarantine", "t::a", "--repo", " ", "--by", "alice"], "--repo"),
        (["quarantine", "t::a", "--repo", "acme/api", "--by", " "], "--by"),
        (["quarantine", "t::a", "--repo", "acme/api", "--by", "alice", "--until", "soon"], "--until"),
        (["quarantine", "t::a", "--repo", "acme/api", "--by", "alice", "--until", "2000-01-01"], "--until"),
        (["release", "", "--repo", "acme/api", "--by", "alice"], "TEST"),
        (["release", "t::a", "--repo", "", "--by", "alice"], "--repo"),
        (["release", "t::a", "--repo", "acme/api", "--by", ""], "--by"),
        (["list", "--repo", " "], "--repo"),
    ],
)
def test_bad_input_exits_2_naming_the_field(nothing_sent: None, args: list[str], field: str) -> None:
    done = CliRunner().invoke(app, ["flaky", *args])
    assert done.exit_code == 2, done.output
    assert done.output.startswith(f"tocsin: {field}:"), done.output


def test_missing_options_exit_2(nothing_sent: None) -> None:
    done = CliRunner().invoke(app, ["flaky", "quarantine", "t::a", "--repo", "acme/api"])
    assert done.exit_code == 2 and "--by" in done.output
    done = CliRunner().invoke(app, ["flaky", "release", "t::a"])
    assert done.exit_code == 2 and "--repo" in done.output


def test_remote_errors_name_the_cli_flags() -> None:
    exc = remote.error_of(httpx.Response(422, json={"error": "test: too short", "field": "test"}))
    assert isinstance(exc, BadInput) and exc.field == "TEST"
    exc = remote.error_of(httpx.Response(422, json={"error": "until: must be in the future", "field": "until"}))
    assert isinstance(exc, BadInput) and exc.field == "--until" and exc.message == "must be in the future"


# ---------------------------------------------------------------------------------------- the operations


def _ctx(config: Config | None = None) -> tuple[Context, RecordingClient]:
    recording = RecordingClient()
    return Context(cast(Client, recording), config or default_config(), "tq"), recording


class NoPipelines(RecordingClient):
    async def list_workflows(self, query: str, limit: int) -> Any:  # type: ignore[override]
        self.sent.append(query)
        for _ in ():
            yield


async def test_quarantine_needs_the_builder_role() -> None:
    config = default_config().model_copy(
        update={"auth": default_config().auth.model_copy(update={"allow_unverified": False})}
    )
    ctx, recording = _ctx(config)
    with pytest.raises(Refused):
        await quarantine_test(ctx, CI, "acme/api", "t::a")
    with pytest.raises(Refused):
        await release_test(ctx, CI, "acme/api", "t::a")
    assert recording.sent == []


async def test_no_running_pipeline_is_not_found_naming_the_repo() -> None:
    client = NoPipelines()
    ctx = Context(cast(Client, client), default_config(), "tq")
    with pytest.raises(NotFound, match="acme/api"):
        await quarantine_test(ctx, CI, "acme/api", "t::a", reason="flaky on arm runners")
    with pytest.raises(NotFound, match="acme/api"):
        await release_test(ctx, CI, "acme/api", "t::a")
    assert client.sent == ["TocsinKind = 'pipeline' AND TocsinService = 'acme/api' AND ExecutionStatus = 'Running'"] * 2
    found = await list_flaky(ctx, None)
    assert (found.tests, found.pipelines, found.unanswered) == ([], [], [])
    assert client.sent[-1] == "TocsinKind = 'pipeline' AND ExecutionStatus = 'Running'"


async def test_quarantine_refuses_bad_fields_before_any_lookup() -> None:
    client = NoPipelines()
    ctx = Context(cast(Client, client), default_config(), "tq")
    for kwargs, field in (
        ({"test": " "}, "TEST"),
        ({"test": "t::" + "a" * 600}, "TEST"),
        ({"repo": ""}, "--repo"),
        ({"until": datetime(2000, 1, 1, tzinfo=UTC)}, "--until"),
        ({"reason": "x" * 501}, "--reason"),
    ):
        args: dict[str, Any] = {"repo": "acme/api", "test": "t::a", **kwargs}
        with pytest.raises(BadInput) as info:
            await quarantine_test(ctx, CI, **args)
        assert info.value.field == field
    with pytest.raises(BadInput) as info:
        await quarantine_test(ctx, Actor(name=" ", via="cli"), "acme/api", "t::a")
    assert info.value.field == "--by"
    assert client.sent == []


# ---------------------------------------------------------------------------------------- the API


@pytest.fixture
def http() -> Iterator[tuple[httpx.AsyncClient, NoPipelines]]:
    client = NoPipelines()
    gateway = FastAPI()
    api.install(gateway)
    gateway.dependency_overrides[authenticate] = lambda: Actor(name="ci", verified=True, method="token", via="api")
    gateway.state.client = client
    gateway.state.store = SimpleNamespace(get=default_config)
    gateway.state.settings = SimpleNamespace(task_queue="tq")
    yield httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gateway"), client


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("quarantine", {"repo": "acme/api", "test": " "}, "test"),
        ("quarantine", {"repo": "", "test": "t::a"}, "repo"),
        ("quarantine", {"repo": "acme/api", "test": "t::a", "until": "soon"}, "until"),
        ("quarantine", {"repo": "acme/api", "test": "t::a", "until": "2000-01-01T00:00:00Z"}, "until"),
        ("quarantine", {"repo": "acme/api", "test": "t::a", "reason": "x" * 501}, "reason"),
        ("quarantine", {"repo": "acme/api", "test": "t::a", "colour": "red"}, "colour"),
        ("release", {"repo": "acme/api"}, "test"),
    ],
)
async def test_api_bad_fields_are_422_naming_them(
    http: tuple[httpx.AsyncClient, NoPipelines], path: str, body: dict[str, Any], field: str
) -> None:
    client, recording = http
    async with client:
        resp = await client.post(f"/api/v1/flaky/{path}", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == field
    assert recording.sent == []


def _with_builder() -> Config:
    data = default_config().model_dump()
    data["users"] = [{"name": "ci", "roles": ["builder"]}]
    return Config.model_validate(data)


async def test_api_answers_403_404_and_400_as_json(http: tuple[httpx.AsyncClient, NoPipelines]) -> None:
    client, _ = http
    body = {"repo": "acme/api", "test": "t::a", "until": "7d"}
    async with client:
        resp = await client.post("/api/v1/flaky/quarantine", json=body)
        assert resp.status_code == 403 and "builder" in resp.json()["error"], resp.text  # a verified ci, no role
        resp = await client.post(
            "/api/v1/flaky/quarantine", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert resp.status_code == 400, resp.text
        resp = await client.get("/api/v1/flaky", params={"repo": "acme/api"})  # reading needs no role
        assert resp.status_code == 200 and resp.json() == {
            "tests": [],
            "pipelines": [],
            "unanswered": [],
            "more": False,
        }
        client_app = cast(Any, client._transport).app
        client_app.state.store = SimpleNamespace(get=_with_builder)
        resp = await client.post("/api/v1/flaky/quarantine", json=body)
        assert resp.status_code == 404 and "acme/api" in resp.json()["error"], resp.text
        resp = await client.post("/api/v1/flaky/release", json={"repo": "acme/api", "test": "t::a", "by": "mallory"})
        assert resp.status_code == 403 and "mallory" in resp.json()["error"], resp.text  # by must be the credential


def test_cli_exits_2_naming_the_repo_when_no_pipeline_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """NotFound from the operation, through the CLI's one error mapping."""
    from starters.cli import flaky
    from starters.cli.common import run_async

    def run_op(op: Any, **_: Any) -> Any:
        ctx = Context(cast(Client, NoPipelines()), default_config(), "tq")
        return run_async(lambda: op(ctx))

    monkeypatch.setattr(flaky, "run_op", run_op)
    done = CliRunner().invoke(app, ["flaky", "release", "t::a", "--repo", "acme/gone", "--by", "alice"])
    assert done.exit_code == 2 and "acme/gone" in done.output, done.output


class ManyPipelines(RecordingClient):
    """``count`` running pipelines of acme/api (and one of another repo), none of which answers a query."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    async def list_workflows(self, query: str, limit: int) -> Any:  # type: ignore[override]
        rows = [("acme/api", f"branch-{i:03d}") for i in range(self.count)] + [("acme/other", "main")]
        for repo, branch in rows[:limit]:
            yield SimpleNamespace(
                id=f"pipeline/{repo}/{branch}",
                typed_search_attributes=TypedSearchAttributes([SearchAttributePair(search.SERVICE, repo)]),
            )


async def test_list_is_bounded_and_says_so() -> None:
    client = ManyPipelines(MAX_PIPELINES + 5)
    found = await list_flaky(Context(cast(Client, client), default_config(), "tq"))
    assert len(found.pipelines) == MAX_PIPELINES and found.more
    assert found.unanswered == found.pipelines  # no worker answered: said, not hidden
    few = await list_flaky(Context(cast(Client, ManyPipelines(2)), default_config(), "tq"))
    assert few.pipelines == ["pipeline/acme/api/branch-000", "pipeline/acme/api/branch-001", "pipeline/acme/other/main"]
    assert not few.more


async def test_signals_go_to_every_pipeline_of_the_repo_only() -> None:
    client = ManyPipelines(3)
    ctx = Context(cast(Client, client), default_config(), "tq")
    until = datetime.now(UTC) + timedelta(days=1)
    done = await quarantine_test(ctx, CI, "acme/api", " t::a ", until, f"see https://u:{'pw' * 4}@ci.example.com/x")
    assert done.pipelines == [f"pipeline/acme/api/branch-{i:03d}" for i in range(3)]
    sent = [a for a in client.sent if isinstance(a, FlakyQuarantine)]
    assert len(sent) == 3 and all(s.test == "t::a" and s.until == until and s.actor == CI for s in sent)
    assert "pwpwpwpw" not in sent[0].reason  # the reason is redacted before it enters history
    # A release where no pipeline can be asked is sent anyway (it changes nothing where the test is not muted).
    released = await release_test(ctx, CI, "acme/api", "t::a")
    assert released.pipelines == done.pipelines
    assert len([a for a in client.sent if isinstance(a, FlakyRelease)]) == 3
