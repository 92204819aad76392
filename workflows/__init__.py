"""Tocsin's workflows (deterministic) and the models they exchange."""

from __future__ import annotations

__all__ = ["ALL_WORKFLOWS"]


def _all() -> list[type]:
    from workflows.deployment import DeployLockWorkflow, DeploymentWorkflow
    from workflows.incident import IncidentWorkflow
    from workflows.notify import NotifyWorkflow
    from workflows.pipeline import PipelineWorkflow
    from workflows.report import ReportWorkflow
    from workflows.silences import SilencesWorkflow

    return [
        NotifyWorkflow,
        PipelineWorkflow,
        IncidentWorkflow,
        SilencesWorkflow,
        ReportWorkflow,
        DeploymentWorkflow,
        DeployLockWorkflow,
    ]


def __getattr__(name: str) -> object:
    if name == "ALL_WORKFLOWS":
        return _all()
    raise AttributeError(name)
