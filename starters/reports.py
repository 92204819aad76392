"""Parsers for the CI report files that ``tocsin build`` summarises.

The CLI runs on the CI machine, reads JUnit XML, coverage and SARIF files
there, and sends only the summaries (``TestSummary``, ``CoverageSummary``,
``SecuritySummary``) to the workflow. The files themselves never leave the CI
machine.

Every problem with an input file (missing, unreadable, not XML/JSON, the
wrong kind of report) raises :class:`ReportError`, which names the CLI flag
and the file so the CLI can print one clear line instead of a traceback.
XML is parsed with ``defusedxml``: entity declarations (billion laughs) and
external entities are refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET

from workflows.models import CoverageSummary, SecuritySummary, TestFailure, TestSummary

__all__ = [
    "ReportError",
    "parse_junit",
    "parse_coverage",
    "parse_sarif",
    "MAX_FAILURES",
    "MAX_FINDINGS",
]

MAX_FAILURES = 20
"""How many failing test cases a ``TestSummary`` keeps."""
MAX_FINDINGS = 10
"""How many findings a ``SecuritySummary`` lists in ``top``."""
_MAX_MESSAGE = 500
_MAX_FINDING = 300

JUNIT_FLAG = "--junit"
COVERAGE_FLAG = "--coverage"
SARIF_FLAG = "--sarif"


class ReportError(ValueError):
    """A report file given to ``tocsin build`` could not be used.

    Attributes:
        field: The CLI flag the file was given with, e.g. ``"--junit"``.
        path: The file.
        reason: What is wrong with it, without the flag and file name.
    """

    def __init__(self, field: str, path: Path | str, reason: str) -> None:
        """Builds the error.

        Args:
            field: The CLI flag, e.g. ``"--junit"``.
            path: The offending file.
            reason: A short description of the problem.
        """
        self.field = field
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{field}: {path}: {reason}")


# --------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------


def _read(field: str, path: Path) -> bytes:
    """Reads a whole report file, turning OS errors into ``ReportError``."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ReportError(field, path, "file not found") from None
    except IsADirectoryError:
        raise ReportError(field, path, "is a directory, not a file") from None
    except PermissionError:
        raise ReportError(field, path, "permission denied") from None
    except OSError as exc:
        raise ReportError(field, path, f"cannot read file ({exc.strerror or exc})") from None
    if not data.strip():
        raise ReportError(field, path, "file is empty")
    return data


def _parse_xml(field: str, path: Path, data: bytes, what: str) -> Element:
    """Parses XML safely (no entity declarations, no external references)."""
    try:
        return SafeET.fromstring(data)
    except defusedxml.DefusedXmlException as exc:
        raise ReportError(field, path, f"refused unsafe XML ({type(exc).__name__})") from None
    except ParseError as exc:
        raise ReportError(field, path, f"not a {what} (not well-formed XML: {exc})") from None
    except (ValueError, RecursionError) as exc:
        raise ReportError(field, path, f"not a {what} (unreadable XML: {exc})") from None


def _parse_json(field: str, path: Path, data: bytes, what: str) -> Any:
    """Parses JSON (any of the encodings ``json`` detects, BOM allowed)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError and UnicodeDecodeError are both ValueErrors.
        raise ReportError(field, path, f"not a {what} (not valid JSON: {exc})") from None


def _local(tag: object) -> str:
    """The tag name without any ``{namespace}`` prefix."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _number(value: object) -> float | None:
    """Parses a number from an attribute, tolerating thousands separators.

    Accepts ``"1,234.5"`` (Maven surefire 3.0/3.1 with grouping) as 1234.5
    and ``"0,160"`` (a decimal comma from some locales) as 0.16. Returns
    None for missing, unparseable, negative or non-finite values.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip().replace("\u00a0", "").replace(" ", "")
        if not text:
            return None
        if "," in text:
            if "." in text or re.fullmatch(r"[+-]?[1-9]\d{0,2}(,\d{3})+", text):
                text = text.replace(",", "")
            elif text.count(",") == 1:
                text = text.replace(",", ".")
            else:
                return None
        try:
            number = float(text)
        except ValueError:
            return None
    if not math.isfinite(number) or number < 0:
        return None
    return number


def _count(value: object) -> int:
    """Parses a non-negative count from an attribute (0 when unusable)."""
    number = _number(value)
    return int(number) if number is not None else 0


def _one_line(text: str, limit: int) -> str:
    """The first non-blank line of ``text``, trimmed to ``limit`` characters."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "\u2026"
    return ""


# --------------------------------------------------------------------------
# JUnit XML
# --------------------------------------------------------------------------


class _JUnitTally:
    """Running totals while walking one or more JUnit files."""

    def __init__(self) -> None:
        self.total = 0
        self.failed = 0
        self.errors = 0
        self.skipped = 0
        self.duration = 0.0
        self.failures: list[TestFailure] = []

    def add_case(self, case: Element) -> None:
        """Counts one ``<testcase>`` from its result children."""
        self.total += 1
        outcome: Element | None = None
        kind = "passed"
        for child in case:
            name = _local(child.tag)
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
        if outcome is not None and len(self.failures) < MAX_FAILURES:
            message = outcome.get("message") or ""
            text = _one_line(message, _MAX_MESSAGE) or _one_line(outcome.text or "", _MAX_MESSAGE)
            if not text:
                text = _one_line(outcome.get("type") or "", _MAX_MESSAGE)
            self.failures.append(
                TestFailure(
                    name=case.get("name") or "",
                    classname=case.get("classname") or case.get("class") or "",
                    message=text,
                )
            )

    def add_suite_attributes(self, suite: Element) -> None:
        """Counts a suite that lists no ``<testcase>`` from its attributes."""
        self.total += _count(suite.get("tests"))
        self.failed += _count(suite.get("failures"))
        self.errors += _count(suite.get("errors"))
        self.skipped += _count(suite.get("skipped") if suite.get("skipped") is not None else suite.get("skip"))


def _has_cases(element: Element) -> bool:
    """True when ``element`` contains a ``<testcase>`` at any depth."""
    return any(_local(el.tag) == "testcase" for el in element.iter() if el is not element)


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
            name = _local(child.tag)
            if name == "testcase":
                tally.add_case(child)
            elif name == "testsuite":
                children.append(child)
        stack.extend(reversed(children))  # keep document order for `failures`


def _child_suites(element: Element) -> list[Element]:
    return [child for child in element if _local(child.tag) == "testsuite"]


def _junit_duration(root: Element) -> float:
    """Wall time of one file: the root's ``time``, else the top-level suites'.

    A ``<testsuites>`` root's own ``time`` (jest-junit writes one) is the
    whole run's time, so it is preferred; pytest writes none there, so the
    times of the top-level ``<testsuite>`` elements are summed instead.
    """
    own = _number(root.get("time"))
    if own is not None:
        return own
    suites = [root] if _local(root.tag) == "testsuite" else _child_suites(root)
    total = 0.0
    for suite in suites:
        time = _number(suite.get("time"))
        if time is None:
            time = sum(_number(case.get("time")) or 0.0 for case in suite.iter() if _local(case.tag) == "testcase")
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
        (name, class name, first line of the message).

    Raises:
        ReportError: A file is missing, unreadable, unsafe XML or not a
            JUnit report.
    """
    tally = _JUnitTally()
    for path in paths:
        data = _read(JUNIT_FLAG, path)
        root = _parse_xml(JUNIT_FLAG, path, data, "JUnit XML report")
        name = _local(root.tag)
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
    )


# --------------------------------------------------------------------------
# Coverage
# --------------------------------------------------------------------------

_COVERAGE_KINDS = "Cobertura XML, LCOV or coverage.py JSON report"
_LCOV_LINE = re.compile(r"^(TN|SF|FN|FNDA|FNF|FNH|BRDA|BRF|BRH|DA|LF|LH|VER|FNL|FNA):|^end_of_record\s*$")


def _percent(covered: int, valid: int, rate_percent: float | None) -> float:
    """Line percentage (0–100, 2 decimals) from counts, else from a rate."""
    if valid > 0:
        value = 100.0 * covered / valid
    elif rate_percent is not None:
        value = rate_percent
    else:
        value = 0.0
    return round(min(max(value, 0.0), 100.0), 2)


def _cobertura(path: Path, root: Element) -> CoverageSummary:
    """Cobertura XML (coverage.py, Istanbul, gcovr, coverlet, ...)."""
    rate = _number(root.get("line-rate"))
    covered_attr = root.get("lines-covered")
    valid_attr = root.get("lines-valid")
    if covered_attr is not None and valid_attr is not None:
        covered, valid = _count(covered_attr), _count(valid_attr)
    else:
        # Old Cobertura files have only rates: count the <line> elements.
        lines: dict[tuple[str, str], bool] = {}
        for cls in root.iter():
            if _local(cls.tag) != "class":
                continue
            filename = cls.get("filename") or cls.get("name") or ""
            for line in cls.iter():
                if _local(line.tag) == "line" and line.get("number") is not None:
                    key = (filename, line.get("number") or "")
                    lines[key] = lines.get(key, False) or _count(line.get("hits")) > 0
        valid = len(lines)
        covered = sum(lines.values())
    if rate is None and valid == 0 and covered_attr is None:
        raise ReportError(COVERAGE_FLAG, path, "not a Cobertura XML report (no line-rate on <coverage>)")
    return CoverageSummary(
        format="cobertura",
        line_percent=_percent(covered, valid, rate * 100.0 if rate is not None else None),
        lines_covered=covered,
        lines_valid=valid,
    )


def _jacoco(path: Path, root: Element) -> CoverageSummary:
    """JaCoCo XML: the report-level ``<counter type="LINE">``."""
    for counter in root:
        if _local(counter.tag) == "counter" and counter.get("type") == "LINE":
            missed, covered = _count(counter.get("missed")), _count(counter.get("covered"))
            valid = missed + covered
            return CoverageSummary(
                format="jacoco", line_percent=_percent(covered, valid, None), lines_covered=covered, lines_valid=valid
            )
    return CoverageSummary(format="jacoco", line_percent=0.0, lines_covered=0, lines_valid=0)


def _lcov(path: Path, text: str) -> CoverageSummary:
    """LCOV tracefile: ``LF``/``LH`` summed over records (``DA`` if absent)."""
    found = hit = 0
    da_found = da_hit = 0
    has_lf = recognised = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if _LCOV_LINE.match(line):
            recognised = True
        key, _, value = line.partition(":")
        try:
            if key == "LF":
                found += int(value.strip())
                has_lf = True
            elif key == "LH":
                hit += int(value.strip())
            elif key == "DA":
                fields = value.split(",")
                da_found += 1
                if len(fields) >= 2 and _count(fields[1]) > 0:
                    da_hit += 1
        except ValueError:
            reason = f"not a valid LCOV tracefile (bad {key} value on line {number})"
            raise ReportError(COVERAGE_FLAG, path, reason) from None
    if not recognised:
        raise ReportError(COVERAGE_FLAG, path, f"not a {_COVERAGE_KINDS} (unrecognised content)")
    if not has_lf:
        found, hit = da_found, da_hit
    if found < 0 or hit < 0 or hit > found:
        raise ReportError(COVERAGE_FLAG, path, f"not a valid LCOV tracefile (LH {hit} > LF {found})")
    return CoverageSummary(format="lcov", line_percent=_percent(hit, found, None), lines_covered=hit, lines_valid=found)


def _coverage_json(path: Path, doc: Any) -> CoverageSummary:
    """coverage.py JSON (``coverage json``) or Istanbul ``coverage-summary.json``."""
    if isinstance(doc, Mapping) and isinstance(doc.get("totals"), Mapping):
        totals = doc["totals"]
        statements = _number(totals.get("num_statements"))
        covered = _number(totals.get("covered_lines"))
        percent = _number(totals.get("percent_covered"))
        if statements is None or covered is None:
            if percent is None:
                raise ReportError(COVERAGE_FLAG, path, "not a coverage.py JSON report (totals has no line counts)")
            statements = covered = 0.0
        # percent_covered includes branches under --branch; the counts are lines only.
        return CoverageSummary(
            format="coverage.py",
            line_percent=_percent(int(covered), int(statements), percent),
            lines_covered=int(covered),
            lines_valid=int(statements),
        )
    lines = _obj(_obj(doc).get("total")).get("lines")
    if isinstance(lines, Mapping):
        valid, covered_count = _count(lines.get("total")), _count(lines.get("covered"))
        return CoverageSummary(
            format="istanbul",
            line_percent=_percent(covered_count, valid, _number(lines.get("pct"))),
            lines_covered=covered_count,
            lines_valid=valid,
        )
    raise ReportError(COVERAGE_FLAG, path, f"not a {_COVERAGE_KINDS} (JSON without coverage totals)")


def parse_coverage(path: Path) -> CoverageSummary:
    """Summarises line coverage from one report, detecting its format.

    Supported: Cobertura XML (``format="cobertura"``), LCOV tracefiles
    (``"lcov"``), coverage.py JSON (``"coverage.py"``), and also JaCoCo XML
    (``"jacoco"``) and Istanbul ``coverage-summary.json`` (``"istanbul"``).
    ``line_percent`` is 0–100 with 2 decimals, computed from the line counts
    when there are any.

    Args:
        path: The file given with ``--coverage``.

    Returns:
        The line coverage summary.

    Raises:
        ReportError: The file is missing, unreadable, or not one of the
            supported formats.
    """
    data = _read(COVERAGE_FLAG, path)
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        root = _parse_xml(COVERAGE_FLAG, path, data, "Cobertura XML report")
        name = _local(root.tag)
        if name == "coverage":
            return _cobertura(path, root)
        if name == "report":
            return _jacoco(path, root)
        raise ReportError(COVERAGE_FLAG, path, f"not a Cobertura XML report (root element <{name or root.tag}>)")
    if head[:1] in (b"{", b"["):
        return _coverage_json(path, _parse_json(COVERAGE_FLAG, path, data, "coverage.py JSON report"))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ReportError(COVERAGE_FLAG, path, f"not a {_COVERAGE_KINDS} (binary or non-UTF-8 content)") from None
    return _lcov(path, text)


# --------------------------------------------------------------------------
# SARIF
# --------------------------------------------------------------------------

_LEVEL_RANK = {"error": 0, "warning": 1, "note": 2}
_PLACEHOLDER_LINK = re.compile(r"\[([^\]]*)\]\((?:\d+|[a-z]+://[^)]*)\)")


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _seq(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _index(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _norm_level(value: Any) -> str | None:
    """Maps a SARIF level (or a CodeQL ``problem.severity``) to a bucket."""
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    if value == "error":
        return "error"
    if value == "warning":
        return "warning"
    if value in ("note", "none", "recommendation"):
        return "note"
    return None


class _Run:
    """Rule and artifact lookups for one SARIF run."""

    def __init__(self, run: Mapping[str, Any]) -> None:
        tool = _obj(run.get("tool"))
        self.driver = _obj(tool.get("driver"))
        self.extensions = [_obj(ext) for ext in _seq(tool.get("extensions"))]
        self.artifacts = _seq(run.get("artifacts"))
        self.by_id: dict[str, Mapping[str, Any]] = {}
        for component in [self.driver, *self.extensions]:
            for rule in _seq(component.get("rules")):
                rule = _obj(rule)
                rule_id = rule.get("id")
                if isinstance(rule_id, str):
                    self.by_id.setdefault(rule_id, rule)

    def rule(self, result: Mapping[str, Any]) -> Mapping[str, Any]:
        """The rule (``reportingDescriptor``) a result refers to, or ``{}``."""
        ref = _obj(result.get("rule"))
        index = _index(ref.get("index"))
        if index is None:
            index = _index(result.get("ruleIndex"))
        component = self.driver
        tc_index = _index(_obj(ref.get("toolComponent")).get("index"))
        if tc_index is not None:
            component = self.extensions[tc_index] if tc_index < len(self.extensions) else {}
        rules = _seq(component.get("rules"))
        if index is not None and index < len(rules):
            return _obj(rules[index])
        rule_id = result.get("ruleId") or ref.get("id")
        if isinstance(rule_id, str):
            return self.by_id.get(rule_id, {})
        return {}

    def uri(self, artifact_location: Mapping[str, Any]) -> str:
        """The URI of an ``artifactLocation`` (directly or via ``index``)."""
        uri = artifact_location.get("uri")
        if isinstance(uri, str) and uri:
            return uri
        index = _index(artifact_location.get("index"))
        if index is not None and index < len(self.artifacts):
            uri = _obj(_obj(self.artifacts[index]).get("location")).get("uri")
            if isinstance(uri, str):
                return uri
        return ""


def _is_suppressed(result: Mapping[str, Any]) -> bool:
    """True when a result is suppressed (accepted, or status not given)."""
    statuses = [_obj(s).get("status") for s in _seq(result.get("suppressions"))]
    if not statuses:
        return False
    if any(status in ("underReview", "rejected") for status in statuses):
        return False
    return any(status in (None, "accepted") for status in statuses)


def _result_level(result: Mapping[str, Any], rule: Mapping[str, Any]) -> str:
    """The result's level: its own, else the rule's default, else warning."""
    level = _norm_level(result.get("level"))
    if level is None:
        level = _norm_level(_obj(rule.get("defaultConfiguration")).get("level"))
    if level is None:
        level = _norm_level(_obj(rule.get("properties")).get("problem.severity"))
    if level is None and isinstance(result.get("kind"), str) and result["kind"] != "fail":
        level = "note"  # SARIF: a non-"fail" kind implies level "none"
    return level or "warning"


def _finding(run: _Run, result: Mapping[str, Any], rule: Mapping[str, Any]) -> str:
    """Formats one result as ``ruleId: message (uri:startLine)``."""
    rule_id = result.get("ruleId") or _obj(result.get("rule")).get("id") or rule.get("id") or ""
    message = _obj(result.get("message"))
    text = message.get("text") or message.get("markdown")
    if not isinstance(text, str) or not text:
        msg_id = message.get("id")
        strings = _obj(rule.get("messageStrings"))
        text = _obj(strings.get(msg_id)).get("text") if isinstance(msg_id, str) else None
    if not isinstance(text, str) or not text:
        text = _obj(rule.get("shortDescription")).get("text") or ""
    text = " ".join(_PLACEHOLDER_LINK.sub(r"\1", str(text)).split())
    where = ""
    locations = _seq(result.get("locations"))
    if locations:
        physical = _obj(_obj(locations[0]).get("physicalLocation"))
        uri = run.uri(_obj(physical.get("artifactLocation")))
        line = _index(_obj(physical.get("region")).get("startLine"))
        if uri:
            where = f" ({uri}:{line})" if line is not None else f" ({uri})"
    head = f"{rule_id}: {text}" if rule_id and text else str(rule_id or text or "(no message)")
    line_text = head + where
    return line_text if len(line_text) <= _MAX_FINDING else line_text[: _MAX_FINDING - 1] + "\u2026"


def _sarif_run(path: Path, run: Mapping[str, Any]) -> SecuritySummary:
    lookup = _Run(run)
    name = lookup.driver.get("name")
    counts = {"error": 0, "warning": 0, "note": 0}
    findings: list[tuple[int, int, str]] = []
    results = run.get("results")
    if results is not None and not isinstance(results, list):
        raise ReportError(SARIF_FLAG, path, "not a SARIF report (run results is not a list)")
    for position, result in enumerate(results or []):
        if not isinstance(result, Mapping):
            continue
        if result.get("kind") in ("pass", "notApplicable") or result.get("baselineState") == "absent":
            continue  # not a finding
        if _is_suppressed(result):
            continue
        rule = lookup.rule(result)
        level = _result_level(result, rule)
        counts[level] += 1
        findings.append((_LEVEL_RANK[level], position, _finding(lookup, result, rule)))
    findings.sort()
    return SecuritySummary(
        tool=name if isinstance(name, str) and name else "unknown",
        error=counts["error"],
        warning=counts["warning"],
        note=counts["note"],
        top=[text for _, _, text in findings[:MAX_FINDINGS]],
    )


def parse_sarif(paths: list[Path]) -> list[SecuritySummary]:
    """Summarises SARIF 2.1.0 logs, one summary per run.

    Results are counted by level: the result's ``level``, else the rule's
    ``defaultConfiguration.level`` (rules found via ``ruleIndex``,
    ``rule.toolComponent`` extensions as CodeQL writes them, or ``ruleId``),
    else ``"warning"``; ``"none"`` counts as a note. Suppressed results,
    ``pass``/``notApplicable`` results and baseline-``absent`` results are not
    findings and are skipped.

    Args:
        paths: The files given with ``--sarif``.

    Returns:
        One summary per run, in file and run order; ``top`` lists the first
        ``MAX_FINDINGS`` findings as ``ruleId: message (uri:startLine)``,
        errors first, then warnings, then notes.

    Raises:
        ReportError: A file is missing, unreadable, not JSON or not SARIF.
    """
    summaries: list[SecuritySummary] = []
    for path in paths:
        data = _read(SARIF_FLAG, path)
        doc = _parse_json(SARIF_FLAG, path, data, "SARIF report")
        if not isinstance(doc, Mapping) or not isinstance(doc.get("runs"), list):
            raise ReportError(SARIF_FLAG, path, "not a SARIF report (no runs list)")
        version = doc.get("version")
        if isinstance(version, str) and not version.startswith("2."):
            raise ReportError(SARIF_FLAG, path, f"unsupported SARIF version {version} (need 2.1.0)")
        for run in doc["runs"]:
            if not isinstance(run, Mapping):
                raise ReportError(SARIF_FLAG, path, "not a SARIF report (a run is not an object)")
            summaries.append(_sarif_run(path, run))
    return summaries
