"""The sandbox runner: flows run sandboxed; the SDK's per-payload context lookups do not re-enter the sandbox.

For every payload of every activation and completion, the worker asks the workflow's instance for the
payload's serialization context (which command it belongs to: an activity, a child, the workflow
itself) and for its external-storage context. The SDK's sandboxed instance answers each question by
executing a snippet inside the sandbox: the snippet is compiled, the sandbox's imports and builtins
are swapped in and out, and the answer is read from the instance that runs there. Measured with
``bench/ingest.py`` that was ~90 µs a question, ~30 questions per new incident, and 0.2 s of CPU
per 400-webhook round, a tenth of the worker's.

The answer is a plain lookup in the SDK's own instance object (its pending commands by sequence
number and its workflow info), no flow code involved. :class:`SandboxedFlows` asks that object
directly. Flow code still runs only inside the sandbox (``activate`` is untouched), and the answers
are the same objects the sandbox would return (``temporalio`` is passed through, so the classes are
the same). Where the SDK's layout differs from what is expected (a newer SDK), every question goes
through the sandbox as before.
"""

from __future__ import annotations

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import SerializationContext, StorageDriverStoreContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import Info

__all__ = ["SandboxedFlows", "SandboxedInstance"]

_IN_SANDBOX = "__temporal_in_sandbox"
"""Where the SDK's sandboxed instance keeps the object that runs inside the sandbox (temporalio 1.x)."""


class SandboxedFlows(SandboxedWorkflowRunner):
    """:class:`SandboxedWorkflowRunner` whose instances answer context lookups outside the sandbox."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        """A sandboxed instance, as the SDK creates it, wrapped in :class:`SandboxedInstance`."""
        return SandboxedInstance(super().create_instance(det))


class SandboxedInstance(WorkflowInstance):
    """Runs activations in the wrapped sandboxed instance; answers context lookups from the instance inside it."""

    def __init__(self, sandboxed: WorkflowInstance) -> None:
        self.sandboxed = sandboxed
        self._direct: WorkflowInstance | None = None

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        """The activation, run in the sandbox."""
        return self.sandboxed.activate(act)

    def get_info(self) -> Info:
        """The workflow's info."""
        return self.sandboxed.get_info()

    def get_thread_id(self) -> int | None:
        """The thread running an activation now, for deadlock detection."""
        return self.sandboxed.get_thread_id()

    def get_serialization_context(self, command_info: CommandInfo | None) -> SerializationContext | None:
        """The context of a payload (of ``command_info``'s command, or the workflow's own)."""
        return self.answering().get_serialization_context(command_info)

    def get_external_store_context(self, command_info: CommandInfo | None) -> StorageDriverStoreContext:
        """The external-storage context of a payload."""
        return self.answering().get_external_store_context(command_info)

    def answering(self) -> WorkflowInstance:
        """Who answers context lookups: the SDK's instance inside the sandbox, or the sandbox itself."""
        if self._direct is None:
            scope = getattr(self.sandboxed, "globals_and_locals", None)
            inner = getattr(scope.get(_IN_SANDBOX), "instance", None) if isinstance(scope, dict) else None
            self._direct = inner if isinstance(inner, WorkflowInstance) else self.sandboxed
        return self._direct
