"""The worker's runner (``workers.runner``) answers the SDK's per-payload context lookups without entering the sandbox.

The workflow below lives in this module, which the sandbox re-imports for its run like any flow
module. It is driven by hand (no server): one activation starts it, and it schedules an activity
and a local activity, so the instance has commands whose payloads carry an activity's context.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1.command_type_pb2 import CommandType
from temporalio.api.failure.v1 import Failure
from temporalio.bridge.proto.workflow_activation import InitializeWorkflow, WorkflowActivation, WorkflowActivationJob
from temporalio.converter import ActivitySerializationContext, WorkflowSerializationContext

with workflow.unsafe.imports_passed_through():
    import pytest
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import WorkflowInstanceDetails
    from temporalio.worker._command_aware_visitor import CommandInfo
    from temporalio.worker.workflow_sandbox import _runner as sandbox_runner

    from workers.registry import workflow_runner
    from workers.runner import SandboxedInstance

SCHEDULE = CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK


@workflow.defn(name="RunnerContexts")
class SchedulesBoth:
    """Schedules an activity and a local activity, then waits for both."""

    @workflow.run
    async def run(self) -> None:
        remote = workflow.start_activity("remote_step", "x", start_to_close_timeout=timedelta(seconds=5))
        local = workflow.start_local_activity("local_step", "y", start_to_close_timeout=timedelta(seconds=5))
        await asyncio.gather(remote, local)


def _details() -> WorkflowInstanceDetails:
    info = dataclasses.replace(sandbox_runner._fake_info, workflow_id="runner-contexts", workflow_type="RunnerContexts")
    return WorkflowInstanceDetails(
        payload_converter_factory=pydantic_data_converter._new_payload_converter,
        failure_converter_class=pydantic_data_converter.failure_converter_class,
        interceptor_classes=[],
        defn=workflow._Definition.must_from_class(SchedulesBoth),
        info=info,
        randomness_seed=1,
        extern_functions={"__temporal_assert_local_activity_valid": lambda name: None},
        disable_eager_activity_execution=False,
        worker_level_failure_exception_types=[],
        patch_activation_callback=None,
        last_completion_result=Payloads(),
        last_failure=Failure(),
    )


async def _started() -> tuple[SandboxedInstance, dict[str, int]]:
    """An instance of the runner that has run its first activation; the seq of each scheduled command."""
    instance = workflow_runner().create_instance(_details())
    assert isinstance(instance, SandboxedInstance)
    start = InitializeWorkflow(workflow_type="RunnerContexts", workflow_id="runner-contexts", randomness_seed=1)
    completion = instance.activate(
        WorkflowActivation(run_id="run-1", jobs=[WorkflowActivationJob(initialize_workflow=start)])
    )
    assert completion.HasField("successful"), completion
    seqs = {}
    for command in completion.successful.commands:
        if command.HasField("schedule_activity"):
            seqs[command.schedule_activity.activity_type] = command.schedule_activity.seq
        if command.HasField("schedule_local_activity"):
            seqs[command.schedule_local_activity.activity_type] = command.schedule_local_activity.seq
    assert set(seqs) == {"remote_step", "local_step"}, completion
    return instance, seqs


def _count_entries(monkeypatch: pytest.MonkeyPatch, instance: SandboxedInstance) -> list[str]:
    """Record each time code is executed inside ``instance``'s sandbox from now on."""
    entered: list[str] = []
    sandboxed = type(instance.sandboxed)
    real = sandboxed._run_code  # type: ignore[attr-defined]

    def counting(self: Any, code: str, **extra: Any) -> None:
        entered.append(code)
        real(self, code, **extra)

    monkeypatch.setattr(sandboxed, "_run_code", counting)
    return entered


async def test_context_lookups_give_the_sandboxes_answers() -> None:
    instance, seqs = await _started()
    questions = [None, CommandInfo(SCHEDULE, seqs["remote_step"]), CommandInfo(SCHEDULE, seqs["local_step"])]
    for info in questions:
        assert instance.get_serialization_context(info) == instance.sandboxed.get_serialization_context(info)
        assert instance.get_external_store_context(info) == instance.sandboxed.get_external_store_context(info)
    own = instance.get_serialization_context(None)
    assert own == WorkflowSerializationContext(namespace=own.namespace, workflow_id="runner-contexts")  # type: ignore[union-attr]
    remote = instance.get_serialization_context(questions[1])
    local = instance.get_serialization_context(questions[2])
    assert isinstance(remote, ActivitySerializationContext) and isinstance(local, ActivitySerializationContext)
    assert (remote.activity_type, remote.is_local) == ("remote_step", False)
    assert (local.activity_type, local.is_local) == ("local_step", True)


async def test_context_lookups_do_not_enter_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    instance, seqs = await _started()
    entered = _count_entries(monkeypatch, instance)
    for info in (None, CommandInfo(SCHEDULE, seqs["remote_step"]), CommandInfo(SCHEDULE, seqs["local_step"])):
        instance.get_serialization_context(info)
        instance.get_external_store_context(info)
    assert entered == []
    instance.sandboxed.get_serialization_context(None)  # the SDK's own path does enter it: the count can fail
    assert len(entered) == 1


async def test_activations_still_run_in_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    instance, _ = await _started()
    entered = _count_entries(monkeypatch, instance)
    instance.activate(WorkflowActivation(run_id="run-1", jobs=[]))
    assert len(entered) == 1 and "activate" in entered[0]


def test_an_unknown_sandbox_answers_for_itself() -> None:
    """Where the SDK's sandboxed instance is laid out differently, lookups go to it as before."""

    class Elsewhere:
        def get_serialization_context(self, info: object) -> str:
            return "from the sandbox"

    instance = SandboxedInstance(Elsewhere())  # type: ignore[arg-type]
    assert instance.answering() is instance.sandboxed
    assert instance.get_serialization_context(None) == "from the sandbox"
