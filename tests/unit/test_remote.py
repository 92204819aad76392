"""The CLI's remote mode without a server: answers back to errors, field names, paths, credentials."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from operations import BadInput, Conflict, NotFound, Refused, Unavailable
from operations.errors import Unauthenticated
from starters.cli import remote


def answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, Unauthenticated), (403, Refused), (404, NotFound), (409, Conflict), (503, Unavailable), (400, BadInput)],
)
def test_error_answers_become_the_operations_errors(status: int, kind: type[Exception]) -> None:
    assert isinstance(remote.error_of(answer(status, {"error": "why", "field": None})), kind)


def test_bad_input_names_the_cli_flag() -> None:
    exc = remote.error_of(answer(422, {"error": "changes_url: String should match", "field": "changes_url"}))
    assert isinstance(exc, BadInput) and exc.field == "--changes-url" and exc.message == "String should match"
    exc = remote.error_of(answer(422, {"error": "unknown environment 'x'", "field": "--env"}))
    assert isinstance(exc, BadInput) and exc.field == "--env"
    exc = remote.error_of(answer(422, {"error": "bad", "field": "matchers.0"}))
    assert isinstance(exc, BadInput) and exc.field == "--matcher"
    exc = remote.error_of(httpx.Response(422, text="not json"))
    assert isinstance(exc, BadInput) and exc.field == "request"


def test_paths_keep_the_slashes_of_ids() -> None:
    assert (
        remote._path("deployments", "deploy/svc/prod/1.2", "approve")
        == "/api/v1/deployments/deploy/svc/prod/1.2/approve"
    )
    assert remote._path("incidents", "incident/a b") == "/api/v1/incidents/incident/a%20b"


def test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOCSIN_TOKEN", "TOCSIN_OIDC_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL"):
        monkeypatch.delenv(name, raising=False)
    remote.use_oidc(None)
    with pytest.raises(Unauthenticated, match="TOCSIN_TOKEN"):
        asyncio.run(remote._credential())
    monkeypatch.setenv("TOCSIN_OIDC_TOKEN", "a.b.c")
    assert asyncio.run(remote._credential()) == "a.b.c"
    monkeypatch.setenv("TOCSIN_TOKEN", "tocsin_abc")
    assert asyncio.run(remote._credential()) == "tocsin_abc"  # the API token first
    with pytest.raises(BadInput, match="--oidc"):
        remote.use_oidc("gitlab")


def test_remote_mode_is_tocsin_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOCSIN_URL", raising=False)
    assert not remote.enabled()
    monkeypatch.setenv("TOCSIN_URL", "https://tocsin.example.com")
    assert remote.enabled()
