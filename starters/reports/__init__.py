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

from starters.reports.common import COVERAGE_FLAG, JUNIT_FLAG, SARIF_FLAG, ReportError
from starters.reports.coverage import parse_coverage
from starters.reports.flake_telemetry import FLAKE_TELEMETRY_FLAG, FlakeTelemetry, junit_id, parse_flake_telemetry
from starters.reports.junit import MAX_FAILURES, parse_junit, with_outcomes
from starters.reports.log_tail import LOG_FLAG, read_log_tail
from starters.reports.sarif import MAX_FINDINGS, parse_sarif

__all__ = [
    "ReportError",
    "parse_junit",
    "parse_coverage",
    "parse_sarif",
    "MAX_FAILURES",
    "MAX_FINDINGS",
    "JUNIT_FLAG",
    "COVERAGE_FLAG",
    "SARIF_FLAG",
    "FLAKE_TELEMETRY_FLAG",
    "FlakeTelemetry",
    "parse_flake_telemetry",
    "junit_id",
    "with_outcomes",
    "LOG_FLAG",
    "read_log_tail",
]
