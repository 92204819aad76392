"""What a Tocsin worker registers: every workflow type, and the sandbox they run in."""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from workflows.deployment import DeployLockWorkflow, DeploymentWorkflow
from workflows.incident.workflow import IncidentWorkflow
from workflows.notify.workflow import NotifyWorkflow
from workflows.pipeline.workflow import PipelineWorkflow
from workflows.report.workflow import ReportWorkflow
from workflows.silences.workflow import SilencesWorkflow

__all__ = ["WORKFLOWS", "PASSTHROUGH", "workflow_runner"]

WORKFLOWS: list[type] = [
    NotifyWorkflow,
    PipelineWorkflow,
    IncidentWorkflow,
    SilencesWorkflow,
    ReportWorkflow,
    DeploymentWorkflow,
    DeployLockWorkflow,
]
"""Every workflow type a worker runs (and the replay test replays)."""

# Deterministic, stateless modules: import once, outside the sandbox.
PASSTHROUGH = ("pydantic", "pydantic_core", "annotated_types", "typing_extensions", "yaml",
               "workflows", "activities", "workers")


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox every worker (and the replayer) runs workflows in."""
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH))
