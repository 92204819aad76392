"""Pipeline health (issue 14): the settings and the bounded memory kept by a pipeline entity.

Pure pydantic, importing nothing from the project, so ``workflows.pipeline.models`` (``PipelineState``) and the
policies (``workflows.policy.flaky``, ``.trends``, ``.failure_patterns``) can all use it without a cycle.

The settings are a snapshot of the config's ``pipelines.health`` section (all optional, defaults below); the
state models are carried across continue-as-new and stay small whatever arrives:

* :class:`TestHistory`: at most ``FlakyConfig.max_tests`` tests × ``FlakyConfig.window_runs`` runs, one
  character per run (about 100 bytes a test: 2,000 tests ≈ 200 KB, far below Temporal's 2 MB payload limit);
* :class:`BuildHealth`: one tally per day for ``success_rate_days`` + 1 days, the last
  ``duration_baseline_runs`` successful durations, failure times of the last 24 h (at most 100);
* :class:`PatternState`: the open grouping windows (at most ``max_groups``) and the first sighting of at most
  ``max_signatures`` signatures (least recently seen dropped).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "FlakyConfig",
    "TrendConfig",
    "PatternConfig",
    "PipelineHealthConfig",
    "RunRef",
    "Quarantine",
    "TestRecord",
    "TestHistory",
    "DayTally",
    "BuildHealth",
    "Recovery",
    "MAX_RECOVERIES",
    "MAX_DURATION_SAMPLES",
    "TALLY_DAYS",
    "Occurrence",
    "FailureGroup",
    "PatternState",
    "PipelineHealthState",
    "OUTCOME_CHARS",
]

OUTCOME_CHARS = {"P": "passed", "F": "failed", "R": "failed then passed in the run", ".": "not reported or skipped"}
"""The characters of ``TestRecord.outcomes``, one per run."""


class FlakyConfig(BaseModel):
    """When a test counts as flaky, and how much history is kept.

    Defaults and why:

    * ``window_runs`` = 20: about a day of CI on a busy branch, a week on a quiet one; long enough to see a
      test flip back and forth, short enough that a fixed test leaves the list within a few days.
    * ``flip_rate`` = 0.2 with ``min_flips`` = 3, ``min_failures`` = 2, ``min_passes`` = 2: a real break and
      its fix flip a test twice (pass → fail → pass) however few runs there were, so two flips never make a
      test flaky; a third flip means it failed again after being green, and at least one flip in five runs
      (0.2) keeps a test that broke twice in a long, otherwise steady window from being called flaky.
    * Failing and passing on the same commit (a CI retry, or a rerun inside the run) is flaky at once: the
      code did not change, the outcome did.
    * ``broken_after`` = 3: a known-flaky test that failed in its last 3 reported runs in a row is treated
      as broken again, not flaky, so a real break of a flaky test still pages.
    * ``release_after`` = 5: a quarantined test that passes 5 runs in a row is released (and its owner told);
      at a flake rate of 20 % five passes in a row happen by chance a third of the time, so release is a
      hint to look, and a re-quarantine is one command.
    * ``max_tests`` = 2,000: tests kept (those that failed within the window, or are quarantined); the least
      recently seen are dropped first.
    """

    model_config = ConfigDict(extra="forbid")

    window_runs: int = Field(default=20, ge=2, le=200)
    flip_rate: float = Field(default=0.2, gt=0, le=1)
    min_flips: int = Field(default=3, ge=1)
    min_failures: int = Field(default=2, ge=1)
    min_passes: int = Field(default=2, ge=1)
    broken_after: int = Field(default=3, ge=2)
    release_after: int = Field(default=5, ge=1)
    max_tests: int = Field(default=2000, ge=1, le=20_000)


class TrendConfig(BaseModel):
    """Thresholds over a branch's builds (seed 002's alerting strategy)."""

    model_config = ConfigDict(extra="forbid")

    coverage_drop_points: float = Field(default=5.0, gt=0)
    """A drop of at least this many percentage points from the branch's baseline → warning."""
    coverage_min: float | None = Field(default=None, ge=0, le=100)
    """Coverage below this → a failure notice (severity error). None: no minimum."""
    duration_regression: float = Field(default=0.5, gt=0)
    """Duration ≥ (1 + this) × the median of the last successful runs → warning "performance regression"."""
    duration_baseline_runs: int = Field(default=10, ge=1, le=100)
    """How many successful durations the median is taken over (K)."""
    duration_min_samples: int = Field(default=3, ge=1)
    """No regression verdict before this many successful durations are known."""
    consecutive_failures_critical: int = Field(default=3, ge=1)
    """This many failed builds in a row → critical."""
    failures_per_day: int = Field(default=3, ge=1)
    """More than this many failures in 24 h → an alert."""
    success_rate_min: float = Field(default=0.9, gt=0, le=1)
    """Success rate under this over ``success_rate_days`` → warning."""
    success_rate_days: int = Field(default=7, ge=1, le=90)
    success_rate_min_builds: int = Field(default=5, ge=1)
    """No success-rate verdict before this many finished builds in the window."""


class PatternConfig(BaseModel):
    """Grouping one failure signature across branches and repositories (seed: 5-minute windows)."""

    model_config = ConfigDict(extra="forbid")

    window_seconds: int = Field(default=300, ge=1)
    """A group collects occurrences for this long after its first one."""
    group_at: int = Field(default=3, ge=2)
    """Distinct pipelines (repo@branch) in one window that send the grouped message at once."""
    max_groups: int = Field(default=200, ge=1)
    max_signatures: int = Field(default=1000, ge=1)
    max_occurrences: int = Field(default=20, ge=1)
    """Occurrences kept per group (the count goes on)."""


class PipelineHealthConfig(BaseModel):
    """The config's ``pipelines.health`` section (every part optional)."""

    model_config = ConfigDict(extra="forbid")

    flaky: FlakyConfig = Field(default_factory=FlakyConfig)
    trends: TrendConfig = Field(default_factory=TrendConfig)
    patterns: PatternConfig = Field(default_factory=PatternConfig)


# --------------------------------------------------------------------------
# Flaky tests
# --------------------------------------------------------------------------


class RunRef(BaseModel):
    """One CI run whose test outcomes were observed."""

    run: str
    """The run's id or link (``BuildEvent.url``, else the event's sequence number)."""
    commit: str
    at: datetime


class Quarantine(BaseModel):
    """A test muted by a person: its failures never fail a build's verdict."""

    by: str
    since: datetime
    until: datetime | None = None
    """None: until released by hand or by ``release_after`` passes in a row."""
    reason: str = ""


class TestRecord(BaseModel):
    """What is known of one test."""

    __test__ = False  # not a pytest test class

    outcomes: str = ""
    """One character per run (``OUTCOME_CHARS``), oldest first, aligned with the last
    ``len(outcomes)`` entries of ``TestHistory.runs``."""
    last_seen: datetime
    """When the test was last reported (any outcome)."""
    last_failure: datetime | None = None
    passes_in_row: int = 0
    """Passes since the last failure (reruns count as failures)."""
    quarantine: Quarantine | None = None
    flaky_since: datetime | None = None
    """When the test was first found flaky (None: not flaky now)."""


class TestHistory(BaseModel):
    """A pipeline's bounded memory of its tests."""

    __test__ = False  # not a pytest test class

    runs: list[RunRef] = Field(default_factory=list)
    """The last ``window_runs`` runs with test outcomes, oldest first."""
    tests: dict[str, TestRecord] = Field(default_factory=dict)
    """By node id: tests that failed within the window, or are quarantined."""


# --------------------------------------------------------------------------
# Trends
# --------------------------------------------------------------------------


class DayTally(BaseModel):
    """Finished builds of one UTC day."""

    day: date
    successes: int = 0
    failures: int = 0


class Recovery(BaseModel):
    """One red spell of a branch: from its first failed build to the next successful one."""

    failed_at: datetime
    fixed_at: datetime
    failures: int = 1
    """Failed builds in the spell."""


MAX_RECOVERIES = 50
"""Red spells kept per branch (for MTTR)."""
MAX_DURATION_SAMPLES = 100
"""Finished builds' durations kept per branch (the build-time trend), and successful builds' coverage."""
TALLY_DAYS = 35
"""Day tallies kept per branch at least (reports over up to 30 days; the success-rate rule reads its own window)."""


class BuildHealth(BaseModel):
    """A branch's bounded build statistics."""

    days: list[DayTally] = Field(default_factory=list)
    durations: list[float] = Field(default_factory=list)
    """Durations of the last successful builds (seconds), oldest first."""
    failures_24h: list[datetime] = Field(default_factory=list)
    """When the failures of the last 24 h happened (at most 100)."""
    consecutive_failures: int = 0
    coverage_baseline: float | None = None
    """Line coverage of the branch's last successful build that reported one."""
    coverage_baseline_commit: str | None = None
    red_since: datetime | None = None
    """When the current red spell began (the first failed build since the last success); None while green."""
    recoveries: list[Recovery] = Field(default_factory=list)
    """The last ``MAX_RECOVERIES`` red spells that ended green, oldest first (MTTR)."""
    coverage_history: list[tuple[datetime, float]] = Field(default_factory=list)
    """``(time, percent)`` of the last ``MAX_DURATION_SAMPLES`` successful builds that reported coverage (the trend)."""
    durations_all: list[tuple[datetime, float, str]] = Field(default_factory=list)
    """``(time, seconds, status)`` of the last ``MAX_DURATION_SAMPLES`` finished builds that reported a duration
    (any status; the build-time trend)."""
    active: list[str] = Field(default_factory=list)
    """Kinds of the findings currently raised (a finding notifies when it becomes active, not on every build)."""


# --------------------------------------------------------------------------
# Failure patterns
# --------------------------------------------------------------------------


class Occurrence(BaseModel):
    """One failed run carrying a signature."""

    repo: str
    branch: str
    commit: str
    at: datetime
    run: str | None = None
    author: str | None = None


class FailureGroup(BaseModel):
    """One signature's occurrences within one window."""

    key: str
    category: str
    summary: str
    """The normalised test and message (or step and error class) the key was made from."""
    opened: datetime
    closes: datetime
    occurrences: list[Occurrence] = Field(default_factory=list)
    count: int = 0
    pipelines: list[str] = Field(default_factory=list)
    """Distinct ``repo@branch`` in the window (bounded like the occurrences, but counted in ``count``)."""
    state: Literal["holding", "sent"] = "holding"


class PatternState(BaseModel):
    """Open windows, and where each known signature first appeared (for the hint)."""

    groups: list[FailureGroup] = Field(default_factory=list)
    first_seen: dict[str, Occurrence] = Field(default_factory=dict)
    last_seen: dict[str, datetime] = Field(default_factory=dict)


class PipelineHealthState(BaseModel):
    """What one pipeline entity (``pipeline/<repo>/<branch>``) keeps for its health, across continue-as-new."""

    tests: TestHistory = Field(default_factory=TestHistory)
    builds: BuildHealth = Field(default_factory=BuildHealth)
