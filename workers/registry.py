"""What a Tocsin worker registers: every workflow type, and the sandbox they run in."""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxRestrictions

from workers import codecache
from workers.runner import SandboxedFlows
from workflows.deployment.lock import DeployLockWorkflow
from workflows.deployment.workflow import DeploymentWorkflow
from workflows.incident.workflow import IncidentWorkflow
from workflows.notify.workflow import NotifyWorkflow
from workflows.patterns.workflow import FailurePatternsWorkflow
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
    FailurePatternsWorkflow,
]
"""Every workflow type a worker runs (and the replay test replays)."""

PASSTHROUGH = (
    # third-party, deterministic and stateless
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "typing_inspection",
    "yaml",
    # Tocsin's contracts and pure policy: the same classes on both sides of the activity boundary
    # (an activity's pydantic result must be an instance of the class the workflow validates against)
    "workflows.config",
    "workflows.environments",
    "workflows.models",
    "workflows.identity",
    "workflows.users",
    "workflows.audit",
    "workflows.search",
    "workflows.policy",
    "workflows.incident.models",
    "workflows.deployment.models",
    "workflows.pipeline.models",
    "workflows.notify.models",
    "workflows.silences.models",
    "workflows.report.models",
    "workflows.patterns.models",
)
"""Modules imported once, outside the sandbox.

The flows themselves (``workflows.<flow>.workflow``, ``workflows.delivery``, ``workflows.timer``) are not
here: they are re-imported in the sandbox, so a ``datetime.now()`` or ``random.random()`` in workflow code
fails the workflow task (tests/workflows/test_sandbox.py). Contracts and pure policy are passed through so
that models returned by activities are the classes the flows validate against.
"""


def workflow_runner() -> SandboxedFlows:
    """The sandbox every worker (and the replayer) runs workflows in.

    The flow modules it re-imports for every run are compiled once per process (:mod:`workers.codecache`);
    the SDK's per-payload context lookups are answered without re-entering the sandbox
    (:mod:`workers.runner`).
    """
    codecache.install()
    return SandboxedFlows(restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH))
