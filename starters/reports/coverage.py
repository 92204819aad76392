"""Line coverage reports (Cobertura/JaCoCo XML, LCOV, coverage.py/Istanbul JSON) → ``CoverageSummary``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from starters.reports.common import (
    COVERAGE_FLAG,
    ReportError,
    as_mapping,
    local_name,
    parse_count,
    parse_json,
    parse_number,
    parse_xml,
    read_report,
)
from workflows.pipeline.models import CoverageSummary

__all__ = ["parse_coverage"]

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
    rate = parse_number(root.get("line-rate"))
    covered_attr = root.get("lines-covered")
    valid_attr = root.get("lines-valid")
    if covered_attr is not None and valid_attr is not None:
        covered, valid = parse_count(covered_attr), parse_count(valid_attr)
    else:
        # Old Cobertura files have only rates: count the <line> elements.
        lines: dict[tuple[str, str], bool] = {}
        for cls in root.iter():
            if local_name(cls.tag) != "class":
                continue
            filename = cls.get("filename") or cls.get("name") or ""
            for line in cls.iter():
                if local_name(line.tag) == "line" and line.get("number") is not None:
                    key = (filename, line.get("number") or "")
                    lines[key] = lines.get(key, False) or parse_count(line.get("hits")) > 0
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
        if local_name(counter.tag) == "counter" and counter.get("type") == "LINE":
            missed, covered = parse_count(counter.get("missed")), parse_count(counter.get("covered"))
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
                if len(fields) >= 2 and parse_count(fields[1]) > 0:
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
        statements = parse_number(totals.get("num_statements"))
        covered = parse_number(totals.get("covered_lines"))
        percent = parse_number(totals.get("percent_covered"))
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
    lines = as_mapping(as_mapping(doc).get("total")).get("lines")
    if isinstance(lines, Mapping):
        valid, covered_count = parse_count(lines.get("total")), parse_count(lines.get("covered"))
        return CoverageSummary(
            format="istanbul",
            line_percent=_percent(covered_count, valid, parse_number(lines.get("pct"))),
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
    data = read_report(COVERAGE_FLAG, path)
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        root = parse_xml(COVERAGE_FLAG, path, data, "Cobertura XML report")
        name = local_name(root.tag)
        if name == "coverage":
            return _cobertura(path, root)
        if name == "report":
            return _jacoco(path, root)
        raise ReportError(COVERAGE_FLAG, path, f"not a Cobertura XML report (root element <{name or root.tag}>)")
    if head[:1] in (b"{", b"["):
        return _coverage_json(path, parse_json(COVERAGE_FLAG, path, data, "coverage.py JSON report"))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ReportError(COVERAGE_FLAG, path, f"not a {_COVERAGE_KINDS} (binary or non-UTF-8 content)") from None
    return _lcov(path, text)
