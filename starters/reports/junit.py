"""JUnit XML reports (pytest, jest-junit, Maven surefire/failsafe, Gradle...) → ``TestSummary``."""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

from starters.reports.common import (
    JUNIT_FLAG,
    ReportError,
    first_line,
    local_name,
    parse_count,
    parse_number,
    parse_xml,
    read_report,
)
from workflows.pipeline.models import (
    MAX_OUTCOME_MESSAGE,
    TestFailure,
    TestOutcome,
    TestOutcomeKind,
    TestSummary,
    bound_outcomes,
)

__all__ = ["parse_junit", "MAX_FAILURES", "RERUN_ELEMENTS", "with_outcomes"]

MAX_FAILURES = 20
"""How many failing test cases a ``TestSummary`` keeps."""
_MAX_MESSAGE = 500

RERUN_ELEMENTS = frozenset({"rerun", "flakyFailure", "flakyError", "rerunFailure", "rerunError"})
"""Children of a ``<testcase>`` that record a failed attempt before its final outcome: pytest-rerunfailures
(``rerun``) and Maven Surefire (``flakyFailure``/``flakyError`` when a rerun then passed,
``rerunFailure``/``rerunError`` beside the final ``<failure>``/``<error>`` when every rerun failed)."""
_KIND: dict[str, TestOutcomeKind] = {"passed": "passed", "failure": "failed", "error": "error", "skipped": "skipped"}


class _JUnitTally:
    """Running totals while walking one or more JUnit files."""

    def __init__(self) -> None:
        self.total = 0
        self.failed = 0
        self.errors = 0
        self.skipped = 0
        self.duration = 0.0
        self.failures: list[TestFailure] = []
        self.outcomes: list[TestOutcome] = []

    def add_case(self, case: Element) -> None:
        """Counts one ``<testcase>`` from its result children."""
        self.total += 1
        outcome: Element | None = None
        kind = "passed"
        reruns = sum(1 for child in case if local_name(child.tag) in RERUN_ELEMENTS)
        for child in case:
            name = local_name(child.tag)
            if name == "failure":
                kind, outcome = "failure", child
                break
            if name == "error" and kind != "error":
                kind, outcome = "error", child
            elif name == "skipped" and kind == "passed":
                kind = "skipped"
        if kind == "passed" and (case.get("status") or "").lower() in ("notrun", "skipped", "disabled"):
            kind = "skipped"  # googletest-style status attribute
        if kind == "failure":
            self.failed += 1
        elif kind == "error":
            self.errors += 1
        elif kind == "skipped":
            self.skipped += 1
        name = case.get("name") or ""
        classname = case.get("classname") or case.get("class") or ""
        text = _message(outcome, _MAX_MESSAGE) if outcome is not None else ""
        if outcome is not None and len(self.failures) < MAX_FAILURES:
            self.failures.append(TestFailure(name=name, classname=classname, message=text))
        self.outcomes.append(
            TestOutcome(
                nodeid=f"{classname}::{name}" if classname else name,
                outcome=_KIND[kind],
                duration_seconds=parse_number(case.get("time")) or 0.0,
                message=text if outcome is not None else _rerun_message(case),
                reruns=reruns,
            )
        )

    def add_suite_attributes(self, suite: Element) -> None:
        """Counts a suite that lists no ``<testcase>`` from its attributes."""
        self.total += parse_count(suite.get("tests"))
        self.failed += parse_count(suite.get("failures"))
        self.errors += parse_count(suite.get("errors"))
        self.skipped += parse_count(suite.get("skipped") if suite.get("skipped") is not None else suite.get("skip"))


def _message(element: Element, limit: int) -> str:
    """First line of a result element's ``message``, else of its text, else its ``type``."""
    return (
        first_line(element.get("message") or "", limit)
        or first_line(element.text or "", limit)
        or first_line(element.get("type") or "", limit)
    )


def _rerun_message(case: Element) -> str:
    """For a case that passed after reruns: the message of its first failed attempt."""
    for child in case:
        if local_name(child.tag) in RERUN_ELEMENTS:
            return _message(child, MAX_OUTCOME_MESSAGE)
    return ""


def with_outcomes(summary: TestSummary, extra: list[TestOutcome]) -> TestSummary:
    """``summary`` with ``extra`` outcomes merged in (e.g. from flake telemetry), bounded again.

    An outcome already in ``summary`` for the same node id wins, except that the larger ``reruns`` is kept
    (the telemetry may know of attempts the JUnit report does not).
    """
    by_id = {o.nodeid: o for o in summary.outcomes}
    merged = list(summary.outcomes)
    for item in extra:
        known = by_id.get(item.nodeid)
        if known is None:
            by_id[item.nodeid] = item
            merged.append(item)
        elif item.reruns > known.reruns:
            updated = known.model_copy(update={"reruns": item.reruns, "message": known.message or item.message})
            merged[merged.index(known)] = updated
            by_id[item.nodeid] = updated
    return summary.model_copy(update={"outcomes": bound_outcomes(merged)})


def _has_cases(element: Element) -> bool:
    """True when ``element`` contains a ``<testcase>`` at any depth."""
    return any(local_name(el.tag) == "testcase" for el in element.iter() if el is not element)


def _walk_suite(suite: Element, tally: _JUnitTally) -> None:
    """Counts a ``<testsuite>``/``<testsuites>`` element and its nested suites.

    Test cases are counted when present; a suite with no test cases anywhere
    below it falls back to its ``tests``/``failures``/``errors``/``skipped``
    attributes (or, without a ``tests`` attribute, to its child suites).
    """
    stack = [suite]
    while stack:
        current = stack.pop()
        if not _has_cases(current) and (current.get("tests") is not None or not _child_suites(current)):
            tally.add_suite_attributes(current)
            continue
        children: list[Element] = []
        for child in current:
            name = local_name(child.tag)
            if name == "testcase":
                tally.add_case(child)
            elif name == "testsuite":
                children.append(child)
        stack.extend(reversed(children))  # keep document order for `failures`


def _child_suites(element: Element) -> list[Element]:
    return [child for child in element if local_name(child.tag) == "testsuite"]


def _junit_duration(root: Element) -> float:
    """Wall time of one file: the root's ``time``, else the top-level suites'.

    A ``<testsuites>`` root's own ``time`` (jest-junit writes one) is the
    whole run's time, so it is preferred; pytest writes none there, so the
    times of the top-level ``<testsuite>`` elements are summed instead.
    """
    own = parse_number(root.get("time"))
    if own is not None:
        return own
    suites = [root] if local_name(root.tag) == "testsuite" else _child_suites(root)
    total = 0.0
    for suite in suites:
        time = parse_number(suite.get("time"))
        if time is None:
            time = sum(
                parse_number(case.get("time")) or 0.0 for case in suite.iter() if local_name(case.tag) == "testcase"
            )
        total += time
    return total


def parse_junit(paths: list[Path]) -> TestSummary:
    """Summarises one or more JUnit XML reports.

    Supports a ``<testsuites>`` root (with nested ``<testsuite>`` elements)
    and a bare ``<testsuite>`` root, as written by pytest, jest-junit, Maven
    surefire/failsafe, Gradle and others. Counts come from the
    ``<testcase>`` elements (a ``<failure>``, ``<error>`` or ``<skipped>``
    child) rather than from the suite attributes; a suite without any test
    cases falls back to its attributes. Counts and durations are summed
    across files.

    Args:
        paths: The files given with ``--junit``.

    Returns:
        The totals, with the first ``MAX_FAILURES`` failing or erroring cases
        (name, class name, first line of the message), and the per-test
        outcomes (``TestSummary.outcomes``, bounded by ``bound_outcomes``).
        A case with rerun entries (``RERUN_ELEMENTS``) and no final
        ``<failure>``/``<error>`` counts as passed, as before, with
        ``reruns`` > 0: it failed then passed in this run.

    Raises:
        ReportError: A file is missing, unreadable, unsafe XML or not a
            JUnit report.
    """
    tally = _JUnitTally()
    for path in paths:
        data = read_report(JUNIT_FLAG, path)
        root = parse_xml(JUNIT_FLAG, path, data, "JUnit XML report")
        name = local_name(root.tag)
        if name not in ("testsuites", "testsuite"):
            raise ReportError(JUNIT_FLAG, path, f"not a JUnit XML report (root element <{name or root.tag}>)")
        try:
            _walk_suite(root, tally)
            tally.duration += _junit_duration(root)
        except RecursionError:
            raise ReportError(JUNIT_FLAG, path, "not a usable JUnit XML report (nested too deeply)") from None
    return TestSummary(
        total=tally.total,
        failed=tally.failed,
        errors=tally.errors,
        skipped=tally.skipped,
        duration_seconds=round(tally.duration, 3),
        failures=tally.failures,
        outcomes=bound_outcomes(tally.outcomes),
    )
