"""The config's ``pipelines`` section: what CI events notify, watched branches, escalation, health, reports.

Pure pydantic (importing only the health thresholds), so ``workflows.config`` can use it without a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from workflows.pipeline.health_models import PipelineHealthConfig
from workflows.policy.durations import DurationError, parse_duration

__all__ = ["PipelineReportConfig", "PipelinesConfig", "pipelines_issues"]

_HH_MM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


class PipelineReportConfig(BaseModel):
    """One scheduled pipeline health report (``report/health-<repo>``, a Temporal Schedule)."""

    model_config = ConfigDict(extra="forbid")

    repo: str
    """The repository (``owner/name``) whose pipelines the report covers."""
    receiver: str
    """Who gets it (a receiver of ``receivers``)."""
    every: Literal["weekly", "daily"] = "weekly"
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    """The day of a weekly report."""
    at: str = "09:00"
    """Local time ``HH:MM`` in ``timezone``."""
    timezone: str = "UTC"
    period: str = "7d"
    """How far back the report looks (``1d``, ``7d``, ``30d``)."""


class PipelinesConfig(BaseModel):
    """What CI pipeline events notify (failures and fixes always do), and the pipelines' memory (issue 14)."""

    model_config = ConfigDict(extra="forbid")

    notify_success: bool = False
    """Notify every green build, not only the first after failures."""
    notify_started: bool = False
    """Notify when a build starts."""
    watch: list[str] = Field(default_factory=lambda: ["main", "master"])
    """Branches (shell globs) whose failures open a CI failure tracking issue and may escalate."""
    tracking: bool = True
    """Open one GitHub tracking issue per broken watched pipeline (on the routed receivers' GitHub channels)."""
    escalation: str | None = None
    """An ``escalation_policies`` entry: a failure on a watched branch raises ``BuildFailing`` on that ladder."""
    health: PipelineHealthConfig = Field(default_factory=PipelineHealthConfig)
    """Flaky-test, trend and failure-pattern thresholds (``workflows.pipeline.health_models``)."""
    reports: list[PipelineReportConfig] = Field(default_factory=list)
    """Scheduled pipeline health reports."""


def pipelines_issues(
    pipelines: PipelinesConfig, receivers: Collection[str], policies: Collection[str]
) -> Iterator[tuple[str, str]]:
    """``(path, message)`` for each reference of the section that does not resolve, or value that does not parse."""
    if pipelines.escalation is not None and pipelines.escalation not in policies:
        yield "pipelines.escalation", f"unknown escalation policy '{pipelines.escalation}'"
    for i, report in enumerate(pipelines.reports):
        if report.receiver not in receivers:
            yield f"pipelines.reports[{i}].receiver", f"unknown receiver '{report.receiver}'"
        if not _HH_MM.fullmatch(report.at):
            yield f"pipelines.reports[{i}].at", f"not a time HH:MM: '{report.at}'"
        try:
            parse_duration(report.period)
        except DurationError as exc:
            yield f"pipelines.reports[{i}].period", str(exc)
