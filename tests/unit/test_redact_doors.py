"""Every operation that carries a person's words into Temporal redacts them first.

A recording double of the Temporal client stands in for the server: it keeps every workflow
input, start signal, signal and update argument an operation hands over, which is exactly what
would be written into history. (``tests/integration/test_redaction_history.py`` checks real
histories on the time-skipping server for the paths that need no human update.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from operations import deployments, incidents, silences
from operations.builds import send_build_event, send_notification
from operations.context import Context
from workflows import search
from workflows.config import default_config
from workflows.deployment import DeployInput
from workflows.identity import Actor
from workflows.models import Link, Message
from workflows.pipeline import BuildEvent

PASSWORD = "hunter2-pw"
CRED_URL = "https://ci-bot:ci-b0t-pw@ci.example.com/run/1?token=tok-9f8e7d"
SECRETS = (PASSWORD, "ci-b0t-pw", "tok-9f8e7d")
NOTE = f"password={PASSWORD} see {CRED_URL}"
ALICE = Actor(name="alice", via="cli")


class RecordingHandle:
    """A workflow handle that records what it is sent."""

    def __init__(self, client: RecordingClient, wid: str):
        self.client, self.id = client, wid

    async def execute_update(self, name: str, arg: Any, result_type: type[BaseModel]) -> Any:
        self.client.sent.append(arg)
        return result_type.model_construct()

    async def signal(self, name: str, arg: Any) -> None:
        self.client.sent.append(arg)

    async def query(self, *_: Any, **__: Any) -> Any:
        raise WorkflowQueryFailedError("no worker answered")  # controls are then sent unchecked


class RecordingClient:
    """The part of ``temporalio.client.Client`` the operations use, recording every argument."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def get_workflow_handle(self, wid: str, **_: Any) -> RecordingHandle:
        return RecordingHandle(self, wid)

    async def start_workflow(self, workflow: str, arg: Any, *, id: str, **kwargs: Any) -> RecordingHandle:
        self.sent.append(arg)
        self.sent.extend(kwargs.get("start_signal_args") or [])
        self.sent.append(kwargs.get("static_summary"))
        return RecordingHandle(self, id)

    async def list_workflows(self, query: str, limit: int) -> AsyncIterator[Any]:
        """One running deployment in its canary: ``rollback`` signals it."""
        yield SimpleNamespace(
            id="deploy/api/prod/v1",
            start_time=datetime.now(UTC),
            status=WorkflowExecutionStatus.RUNNING,
            typed_search_attributes=TypedSearchAttributes([SearchAttributePair(search.STATUS, "canary")]),
        )

    def leaks(self) -> list[str]:
        dumped = " ".join(a.model_dump_json() if isinstance(a, BaseModel) else str(a) for a in self.sent)
        return [s for s in SECRETS if s in dumped]


@pytest.fixture
def client() -> RecordingClient:
    return RecordingClient()


@pytest.fixture
def ctx(client: RecordingClient) -> Context:
    return Context(cast(Client, client), default_config(), "tq")


async def test_incident_notes(ctx: Context, client: RecordingClient) -> None:
    await incidents.acknowledge(ctx, ALICE, "incident/1", NOTE)
    await incidents.resolve(ctx, ALICE, "incident/1", NOTE)
    await incidents.escalate(ctx, ALICE, "incident/1", NOTE)
    await incidents.snooze(ctx, ALICE, "incident/1", timedelta(minutes=5), NOTE)
    assert len(client.sent) == 4 and client.leaks() == []
    assert all("[REDACTED]" in a.note for a in client.sent)


async def test_deployment_comments_reasons_and_links(ctx: Context, client: RecordingClient) -> None:
    request = DeployInput(service="api", env="prod", version="v1", by="dave", changes_url=CRED_URL, reason=NOTE)
    await deployments.start_deployment(ctx, ALICE, request)
    await deployments.approve(ctx, ALICE, "deploy/api/prod/v1", comment=NOTE)
    await deployments.reject(ctx, ALICE, "deploy/api/prod/v1", reason=NOTE)
    await deployments.control(ctx, ALICE, "deploy/api/prod/v1", "pause", reason=NOTE)
    outcome = await deployments.rollback(ctx, ALICE, "api", "prod", reason=NOTE)
    assert outcome.action == "signalled"
    assert client.leaks() == []
    assert client.sent[0].changes_url == "https://ci-bot:REDACTED@ci.example.com/run/1?token=REDACTED"


async def test_silence_comment(ctx: Context, client: RecordingClient) -> None:
    await silences.add_silence(ctx, ALICE, ['service="api"'], "1h", NOTE)
    [_, _, add] = client.sent
    assert add.matchers == ['service="api"'] and client.leaks() == [] and "[REDACTED]" in add.comment


async def test_build_event_and_notification(ctx: Context, client: RecordingClient) -> None:
    event = BuildEvent(repo="acme/api", branch="main", commit="abc", status="failure", url=CRED_URL, author=NOTE)
    await send_build_event(ctx, ALICE, event)
    message = Message(title=NOTE, text=NOTE, links=[Link(text="run", url=CRED_URL)])
    await send_notification(ctx, ALICE, "console", message)
    assert client.leaks() == []  # inputs, start signals and the UI summary alike
