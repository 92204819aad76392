"""The namespace retention: raised to ``audit.history_retention`` at worker start, shown by ``tocsin status``."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from operations.status import namespace_retention, retention_status
from tests.helpers import address_of, cli
from workers.retention import ensure_retention
from workers.temporal import ensure_search_attributes


async def _namespace(dev_env: WorkflowEnvironment, retention: timedelta) -> Client:
    name = f"ret-{uuid.uuid4().hex[:8]}"
    await dev_env.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=int(retention.total_seconds()))
        )
    )
    return await Client.connect(address_of(dev_env.client), namespace=name, data_converter=pydantic_data_converter)


async def test_worker_raises_a_short_retention_once(
    dev_env: WorkflowEnvironment, caplog: pytest.LogCaptureFixture
) -> None:
    client = await _namespace(dev_env, timedelta(hours=24))
    caplog.set_level(logging.INFO, logger="tocsin")
    first = await ensure_retention(client, "90d")
    assert first.raised and first.before == timedelta(hours=24) and first.after == timedelta(days=90)
    assert f"namespace {client.namespace} default retention raised from 24h to 90d" in caplog.text
    assert await namespace_retention(client) == timedelta(days=90)
    caplog.clear()
    again = await ensure_retention(client, "90d")
    assert not again.raised and again.before == timedelta(days=90)
    assert "raised" not in caplog.text


async def test_a_longer_retention_is_left_alone(dev_env: WorkflowEnvironment) -> None:
    client = await _namespace(dev_env, timedelta(days=400))
    outcome = await ensure_retention(client, "90d")
    assert not outcome.raised and await namespace_retention(client) == timedelta(days=400)
    shown = await retention_status(client, "90d")
    assert shown["workflow_execution_retention"] == "400d" and shown["seconds"] == 400 * 86400


class _Refusing:
    """A workflow service that describes 24h and refuses the update, as Temporal Cloud does."""

    def __init__(self, real: object):
        self._real = real

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    async def update_namespace(self, *args: object, **kwargs: object) -> object:
        raise RPCError("Request unauthorized.", RPCStatusCode.PERMISSION_DENIED, b"")


async def test_a_refusing_server_is_a_warning_not_a_failure(
    dev_env: WorkflowEnvironment, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await _namespace(dev_env, timedelta(hours=24))
    monkeypatch.setattr(
        type(client), "workflow_service", property(lambda c: _Refusing(c.service_client.workflow_service))
    )
    outcome = await ensure_retention(client, "90d")
    assert not outcome.raised and outcome.before == timedelta(hours=24)
    assert "Request unauthorized" in outcome.problem
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warned and "retention is 24h" in warned[0].getMessage() and "tcld" in warned[0].getMessage()


async def test_status_shows_the_retention(dev_env: WorkflowEnvironment) -> None:
    client = await _namespace(dev_env, timedelta(days=30))
    await ensure_search_attributes(client, client.namespace)
    address = address_of(dev_env.client)
    done = cli("status", "--json", address=address, env={"TEMPORAL_NAMESPACE": client.namespace})
    assert done.returncode == 0, done.stderr
    retention = json.loads(done.stdout)["retention"]
    assert retention == {
        "namespace": client.namespace,
        "history_retention": "90d",
        "workflow_execution_retention": "30d",
        "seconds": 30 * 86400,
    }
    text = cli("status", address=address, env={"TEMPORAL_NAMESPACE": client.namespace})
    assert text.stdout.splitlines()[0] == f"Retention: 30d (namespace {client.namespace}; audit.history_retention 90d)"
