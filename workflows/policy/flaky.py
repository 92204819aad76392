"""Flaky tests from a pipeline's own history (issue 14): observe outcomes, classify a build, quarantine.

A test is **flaky** when, within the last ``window_runs`` runs:

* it failed and passed on the same commit: a rerun inside one run (``TestOutcome.reruns`` with a final pass:
  pytest-rerunfailures ``rerun``, Surefire ``flakyFailure``), or a failure and a pass in two runs of one
  commit (a CI retry); or
* its outcome flipped often: ``flips / (reported runs - 1) >= flip_rate`` with at least ``min_flips`` flips,
  ``min_failures`` failures and ``min_passes`` passes (see :class:`~workflows.pipeline.health_models.FlakyConfig`
  for the defaults and the reasoning).

A test that keeps failing is broken, not flaky: one that never passed in the window is never flaky, and a
known-flaky test that failed in its last ``broken_after`` reported runs is treated as broken again.

A failed build whose failing tests are all flaky or quarantined is a **flaky build**: labels ``flaky="true"``,
severity ``info``, and a message naming the tests, not a failure page.

Pure: no clock (``now`` is passed in), no I/O; every function returns new models and leaves its inputs as they
were. Call :func:`observe` once per event carrying test outcomes, then :func:`classify` with the new history.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from workflows.models import Severity
from workflows.pipeline.health_models import FlakyConfig, Quarantine, RunRef, TestHistory, TestRecord
from workflows.pipeline.models import TestOutcome

__all__ = [
    "FlakyNotice",
    "Observation",
    "FlakyVerdict",
    "BuildFlakiness",
    "observe",
    "verdict",
    "classify",
    "flaky_tests",
    "quarantine",
    "release",
]


class FlakyNotice(BaseModel):
    """Something to tell people about a test (the flow routes it; ``owner`` is who quarantined it)."""

    kind: Literal["detected", "released", "expired"]
    nodeid: str
    owner: str | None = None
    text: str


class Observation(BaseModel):
    """The history after one run, and what to tell."""

    history: TestHistory
    notices: list[FlakyNotice] = Field(default_factory=list)


class FlakyVerdict(BaseModel):
    """Why a test is (or is not) flaky."""

    nodeid: str
    flaky: bool
    reason: str = ""
    flips: int = 0
    flip_rate: float = 0.0
    failures: int = 0
    passes: int = 0
    quarantine: Quarantine | None = None
    last_failure: datetime | None = None


class BuildFlakiness(BaseModel):
    """What a build's failing tests amount to."""

    verdict: Literal["clean", "flaky", "failed"]
    """``clean``: no failing test; ``flaky``: only flaky or quarantined tests failed; ``failed``: a real failure."""
    failing: list[str] = Field(default_factory=list)
    """Failing tests that are not flaky (the real failures)."""
    flaky: list[str] = Field(default_factory=list)
    """Failing tests that are known flaky or quarantined."""
    rerun_passed: list[str] = Field(default_factory=list)
    """Tests that failed then passed within this run."""
    labels: dict[str, str] = Field(default_factory=dict)
    severity: Severity | None = None
    """``info`` for a flaky build (instead of the failure's severity); None otherwise."""
    text: str = ""


def _char(outcome: TestOutcome) -> str:
    if outcome.failed:
        return "F"
    if outcome.outcome == "passed":
        return "R" if outcome.reruns else "P"
    return "."


def _append(record: TestRecord, char: str, now: datetime, window: int, reported: bool) -> TestRecord:
    passes = record.passes_in_row + 1 if char == "P" else 0 if char in "FR" else record.passes_in_row
    return record.model_copy(
        update={
            "outcomes": (record.outcomes + char)[-window:],
            "last_seen": now if reported else record.last_seen,
            "last_failure": now if char in "FR" else record.last_failure,
            "passes_in_row": passes,
        }
    )


def _release_notices(
    nodeid: str, record: TestRecord, now: datetime, config: FlakyConfig
) -> tuple[TestRecord, FlakyNotice | None]:
    q = record.quarantine
    if q is None:
        return record, None
    if q.until is not None and q.until <= now:
        text = f"Quarantine of {nodeid} (by {q.by}) ended at {q.until:%Y-%m-%d %H:%M} UTC; its failures count again."
        return record.model_copy(update={"quarantine": None}), FlakyNotice(
            kind="expired", nodeid=nodeid, owner=q.by, text=text
        )
    if record.passes_in_row >= config.release_after:
        text = (
            f"{nodeid} passed {record.passes_in_row} runs in a row and was released from quarantine "
            f"(quarantined by {q.by} on {q.since:%Y-%m-%d})."
        )
        return record.model_copy(update={"quarantine": None}), FlakyNotice(
            kind="released", nodeid=nodeid, owner=q.by, text=text
        )
    return record, None


def _keep(record: TestRecord) -> bool:
    return record.quarantine is not None or any(c in "FR" for c in record.outcomes)


def _bounded(tests: dict[str, TestRecord], limit: int) -> dict[str, TestRecord]:
    if len(tests) <= limit:
        return tests
    # Quarantined tests go last; then the least recently seen first.
    order = sorted(tests, key=lambda n: (tests[n].quarantine is not None, tests[n].last_seen, n), reverse=True)
    kept = set(order[:limit])
    return {n: r for n, r in tests.items() if n in kept}


def observe(
    history: TestHistory,
    outcomes: Iterable[TestOutcome],
    *,
    commit: str,
    run: str,
    now: datetime,
    config: FlakyConfig | None = None,
) -> Observation:
    """Adds one run's test outcomes to the history.

    Only tests that failed (or needed a rerun) within the window, or are quarantined, are kept: a test that
    only ever passed tells nothing about flakiness. Every kept test gets one character for this run (``.``
    when the event did not report it).

    Args:
        history: The history before the run.
        outcomes: The run's per-test outcomes (``TestSummary.outcomes``).
        commit: The run's commit.
        run: The run's id or link.
        now: The event's time (``workflow.now()``).
        config: Thresholds and bounds (defaults: :class:`FlakyConfig`).

    Returns:
        The new history, and notices: tests newly flaky, quarantines released after ``release_after`` passes
        in a row or expired.
    """
    config = config or FlakyConfig()
    window = config.window_runs
    runs = [*history.runs, RunRef(run=run, commit=commit, at=now)][-window:]
    seen: dict[str, str] = {}
    for outcome in outcomes:
        seen[outcome.nodeid] = _char(outcome)
    tests: dict[str, TestRecord] = {}
    for nodeid, record in history.tests.items():
        tests[nodeid] = _append(record, seen.get(nodeid, "."), now, window, nodeid in seen)
    for nodeid, char in seen.items():
        if nodeid not in tests and char in "FR":
            tests[nodeid] = _append(TestRecord(last_seen=now), char, now, window, True)
    notices: list[FlakyNotice] = []
    for nodeid in list(tests):
        record, notice = _release_notices(nodeid, tests[nodeid], now, config)
        if notice is not None:
            notices.append(notice)
        found = verdict(TestHistory(runs=runs, tests={nodeid: record}), nodeid, config)
        if found.flaky and record.flaky_since is None:
            record = record.model_copy(update={"flaky_since": now})
            notices.append(FlakyNotice(kind="detected", nodeid=nodeid, text=f"{nodeid} is flaky: {found.reason}."))
        elif not found.flaky and record.flaky_since is not None:
            record = record.model_copy(update={"flaky_since": None})
        tests[nodeid] = record
    tests = {n: r for n, r in tests.items() if _keep(r)}
    return Observation(history=TestHistory(runs=runs, tests=_bounded(tests, config.max_tests)), notices=notices)


def _flips(chars: str) -> int:
    known = [c for c in chars if c in "PF"]
    return sum(1 for a, b in zip(known, known[1:], strict=False) if a != b)


def verdict(history: TestHistory, nodeid: str, config: FlakyConfig | None = None) -> FlakyVerdict:
    """Whether one test is flaky by the history, and why (see the module doc)."""
    config = config or FlakyConfig()
    record = history.tests.get(nodeid)
    if record is None:
        return FlakyVerdict(nodeid=nodeid, flaky=False)
    chars = record.outcomes
    runs = history.runs[-len(chars) :] if chars else []
    failures = sum(1 for c in chars if c in "FR")
    passes = sum(1 for c in chars if c in "PR")
    flips = _flips(chars)
    reported = sum(1 for c in chars if c in "PF")
    rate = flips / (reported - 1) if reported > 1 else 0.0
    base = FlakyVerdict(
        nodeid=nodeid,
        flaky=False,
        flips=flips,
        flip_rate=round(rate, 3),
        failures=failures,
        passes=passes,
        quarantine=record.quarantine,
        last_failure=record.last_failure,
    )
    if "R" in chars:
        return base.model_copy(update={"flaky": True, "reason": "failed then passed on a rerun in the same run"})
    by_commit: dict[str, set[str]] = {}
    for char, ref in zip(chars, runs, strict=False):
        by_commit.setdefault(ref.commit, set()).add(char)
    same = sorted(c for c, found in by_commit.items() if {"P", "F"} <= found)
    if same:
        return base.model_copy(update={"flaky": True, "reason": f"failed and passed on the same commit {same[0][:7]}"})
    if (
        flips >= config.min_flips
        and rate >= config.flip_rate
        and failures >= config.min_failures
        and passes >= config.min_passes
    ):
        reason = f"flipped {flips} times in its last {reported} runs ({rate:.0%})"
        return base.model_copy(update={"flaky": True, "reason": reason})
    return base


def _broken(record: TestRecord, config: FlakyConfig) -> bool:
    """Failed in each of its last ``broken_after`` reported runs (reruns that passed break the streak)."""
    reported = [c for c in record.outcomes if c in "PFR"]
    tail = reported[-config.broken_after :]
    return len(tail) == config.broken_after and all(c == "F" for c in tail)


def classify(
    history: TestHistory, outcomes: Iterable[TestOutcome], config: FlakyConfig | None = None
) -> BuildFlakiness:
    """What one run's failing tests amount to, against the history that already includes the run.

    Args:
        history: The history returned by :func:`observe` for this run.
        outcomes: The run's per-test outcomes.
        config: Thresholds (defaults: :class:`FlakyConfig`).

    Returns:
        ``flaky`` (labels ``flaky="true"``, severity ``info``) when every failing test is quarantined or flaky
        and not broken again; ``failed`` when one is not; ``clean`` when none failed.
    """
    config = config or FlakyConfig()
    failing: list[str] = []
    flaky: list[str] = []
    rerun_passed: list[str] = []
    for outcome in outcomes:
        if outcome.flaky_in_run:
            rerun_passed.append(outcome.nodeid)
        if not outcome.failed:
            continue
        record = history.tests.get(outcome.nodeid)
        muted = record is not None and record.quarantine is not None
        known = record is not None and verdict(history, outcome.nodeid, config).flaky and not _broken(record, config)
        (flaky if muted or known else failing).append(outcome.nodeid)
    if failing:
        text = f"{len(failing)} failing test(s) not known to be flaky" + (
            f"; also failing, known flaky: {', '.join(flaky[:10])}" if flaky else ""
        )
        return BuildFlakiness(verdict="failed", failing=failing, flaky=flaky, rerun_passed=rerun_passed, text=text)
    if flaky:
        more = f" (+{len(flaky) - 10} more)" if len(flaky) > 10 else ""
        return BuildFlakiness(
            verdict="flaky",
            flaky=flaky,
            rerun_passed=rerun_passed,
            labels={"flaky": "true"},
            severity="info",
            text=f"Only known-flaky tests failed: {', '.join(flaky[:10])}{more}.",
        )
    text = f"Passed after a rerun: {', '.join(rerun_passed[:10])}." if rerun_passed else ""
    return BuildFlakiness(verdict="clean", rerun_passed=rerun_passed, text=text)


def flaky_tests(history: TestHistory, config: FlakyConfig | None = None) -> list[FlakyVerdict]:
    """The flaky or quarantined tests (``tocsin flaky list``), most recently failed first."""
    found = [verdict(history, nodeid, config) for nodeid in history.tests]
    listed = [v for v in found if v.flaky or v.quarantine is not None]
    return sorted(listed, key=lambda v: v.last_failure.timestamp() if v.last_failure else 0.0, reverse=True)


def quarantine(
    history: TestHistory,
    nodeid: str,
    *,
    by: str,
    now: datetime,
    until: datetime | None = None,
    reason: str = "",
    config: FlakyConfig | None = None,
) -> TestHistory:
    """``tocsin flaky quarantine``: mutes ``nodeid`` (known to the history or not) until ``until`` or release."""
    config = config or FlakyConfig()
    record = history.tests.get(nodeid) or TestRecord(last_seen=now)
    record = record.model_copy(
        update={"quarantine": Quarantine(by=by, since=now, until=until, reason=reason), "passes_in_row": 0}
    )
    tests = {**history.tests, nodeid: record}
    return TestHistory(runs=history.runs, tests=_bounded(tests, config.max_tests))


def release(history: TestHistory, nodeid: str) -> TestHistory:
    """``tocsin flaky release``: ends a quarantine (no-op for a test not quarantined)."""
    record = history.tests.get(nodeid)
    if record is None or record.quarantine is None:
        return history
    record = record.model_copy(update={"quarantine": None})
    tests = {n: r for n, r in {**history.tests, nodeid: record}.items() if _keep(r)}
    return TestHistory(runs=history.runs, tests=tests)
