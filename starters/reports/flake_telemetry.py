"""Pytest flake telemetry JSON (the CI failure alerts plan's ``tests/.telemetry/flake_runs.json``) → per-test outcomes.

The file (seed 004, "Reading flake telemetry") has three parts:

* ``meta``: timestamps, Python/runtime information, the exit status and the CI run identifiers
  (read here: ``exit_status``/``exitstatus``, ``run_id``, ``run_attempt``, ``commit``/``sha``; everything
  else is ignored);
* ``events``: one entry per failing (or rerun) test, ``{nodeid, duration, outcome, trace}`` with a
  clipped failure trace;
* ``history`` (optional): entries linking telemetry to CI runs (``url``, ``html_url`` or ``run_url``).

Several events for one node id are one test retried in the run: each ``failed``/``error``/``rerun`` before
the last event is a failed attempt (``TestOutcome.reruns``); the last event gives the final outcome, and a
test whose last event is a ``rerun`` (pytest-rerunfailures logs the failed attempts; the final pass is not a
failure event) passed after its reruns. Pytest node ids (``tests/test_api.py::TestUser::test_create[1]``)
are turned into the JUnit ``classname::name`` form (``tests.test_api.TestUser::test_create[1]``) so that
both sources name a test the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starters.reports.common import ReportError, first_line, parse_json, parse_number, read_report
from workflows.pipeline.models import MAX_OUTCOME_MESSAGE, TestOutcome, TestOutcomeKind, bound_outcomes

__all__ = ["FLAKE_TELEMETRY_FLAG", "FlakeTelemetry", "parse_flake_telemetry", "junit_id"]

FLAKE_TELEMETRY_FLAG = "--flake-telemetry"
_MAX_EVENTS = 10_000
"""Events read from one file (the rest are ignored: a runaway plugin cannot blow up the CLI)."""
_FINAL: dict[str, TestOutcomeKind] = {
    "passed": "passed",
    "xpassed": "passed",
    "failed": "failed",
    "error": "error",
    "skipped": "skipped",
    "xfailed": "skipped",
    "rerun": "passed",
}
_FAILED_ATTEMPT = frozenset({"failed", "error", "rerun"})


@dataclass
class FlakeTelemetry:
    """What one telemetry file says about one CI run."""

    outcomes: list[TestOutcome] = field(default_factory=list)
    """One per node id, bounded like ``TestSummary.outcomes``."""
    exit_status: int | None = None
    run_id: str | None = None
    run_attempt: int | None = None
    commit: str | None = None
    run_urls: list[str] = field(default_factory=list)
    """Links from ``history`` (first 20)."""


def junit_id(nodeid: str) -> str:
    """A pytest node id in JUnit's ``classname::name`` form.

    ``tests/test_api.py::TestUser::test_create[1]`` → ``tests.test_api.TestUser::test_create[1]``;
    an id without ``::`` or without a ``.py`` file part is returned unchanged.
    """
    parts = nodeid.split("::")
    if len(parts) < 2 or not parts[0].endswith(".py"):
        return nodeid
    module = parts[0][: -len(".py")].replace("\\", "/").strip("/").replace("/", ".")
    classname = ".".join([module, *parts[1:-1]])
    return f"{classname}::{parts[-1]}"


def _text(value: object) -> str | None:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


def _events(path: Path, doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    events = doc.get("events", [])
    if not isinstance(events, list):
        raise ReportError(FLAKE_TELEMETRY_FLAG, path, "not a flake telemetry file (events is not a list)")
    return [e for e in events[:_MAX_EVENTS] if isinstance(e, Mapping) and _text(e.get("nodeid"))]


def _outcomes(events: list[Mapping[str, Any]]) -> list[TestOutcome]:
    """One outcome per node id (first-seen order), from its events in file order."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for event in events:
        grouped.setdefault(junit_id(str(_text(event.get("nodeid")))), []).append(event)
    outcomes: list[TestOutcome] = []
    for nodeid, items in grouped.items():
        kinds = [str(e.get("outcome") or "failed").strip().lower() for e in items]
        final = kinds[-1]
        failed_before = sum(1 for kind in kinds[:-1] if kind in _FAILED_ATTEMPT)
        reruns = failed_before + (1 if final == "rerun" else 0)
        traced = [first_line(str(e.get("trace") or ""), MAX_OUTCOME_MESSAGE) for e in items]
        outcomes.append(
            TestOutcome(
                nodeid=nodeid,
                outcome=_FINAL.get(final, "failed"),
                duration_seconds=round(sum(parse_number(e.get("duration")) or 0.0 for e in items), 3),
                message=next((t for t in reversed(traced) if t), ""),
                reruns=reruns,
            )
        )
    return outcomes


def parse_flake_telemetry(path: Path) -> FlakeTelemetry:
    """Reads one flake telemetry JSON file.

    Args:
        path: The file given with ``--flake-telemetry``.

    Returns:
        The per-test outcomes (failures first, bounded) and the run's identifiers.

    Raises:
        ReportError: The file is missing, unreadable, not JSON, or not a telemetry object
            (no ``events`` list and no ``meta``).
    """
    doc = parse_json(FLAKE_TELEMETRY_FLAG, path, read_report(FLAKE_TELEMETRY_FLAG, path), "flake telemetry file")
    if not isinstance(doc, Mapping) or ("events" not in doc and "meta" not in doc):
        raise ReportError(FLAKE_TELEMETRY_FLAG, path, "not a flake telemetry file (no meta or events)")
    meta = doc.get("meta") if isinstance(doc.get("meta"), Mapping) else {}
    assert isinstance(meta, Mapping)
    exit_status = parse_number(meta.get("exit_status", meta.get("exitstatus")))
    attempt = parse_number(meta.get("run_attempt"))
    history = doc.get("history") if isinstance(doc.get("history"), list) else []
    assert isinstance(history, list)
    urls = [
        url
        for entry in history
        if isinstance(entry, Mapping)
        for url in [_text(entry.get("url") or entry.get("html_url") or entry.get("run_url"))]
        if url
    ]
    return FlakeTelemetry(
        outcomes=bound_outcomes(_outcomes(_events(path, doc))),
        exit_status=int(exit_status) if exit_status is not None else None,
        run_id=_text(meta.get("run_id")),
        run_attempt=int(attempt) if attempt is not None else None,
        commit=_text(meta.get("commit") or meta.get("sha")),
        run_urls=urls[:20],
    )
