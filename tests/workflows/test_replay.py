"""Every recorded history in ``tests/histories`` replays on today's workflow code.

A change to a workflow that would break a running execution fails here: guard
it with ``workflow.patched`` (see README, "Changing a workflow"). The histories
are recorded by ``make histories`` (``scripts/record_histories.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workers.registry import WORKFLOWS, workflow_runner

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
FILES = sorted(HISTORIES.rglob("*.json"))


def load(path: Path) -> WorkflowHistory:
    """The history in ``path``, with the workflow id its start event records (else the file's name)."""
    data = json.loads(path.read_text())
    started = data["events"][0].get("workflowExecutionStartedEventAttributes", {})
    return WorkflowHistory.from_json(started.get("workflowId") or f"replay/{path.stem}", data)


def workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(HISTORIES).with_suffix("")) for p in FILES])
async def test_history_replays(path: Path) -> None:
    history = load(path)
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=workflow_runner())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if result.replay_failure is not None:
        pytest.fail(f"{path.name} ({workflow_type(history)}) no longer replays: {result.replay_failure}")


def test_every_workflow_type_has_a_history() -> None:
    recorded = {workflow_type(load(path)) for path in FILES}
    # The SDK keeps a class's workflow type name on its (private) definition; no public accessor.
    registered = {workflow._Definition.must_from_class(cls).name for cls in WORKFLOWS}
    missing = registered - recorded
    assert not missing, f"no recorded history for {sorted(missing)}: add a scenario to scripts/record_histories.py"
