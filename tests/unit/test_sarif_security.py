"""SARIF → serious security findings (level ``error`` or CVSS ≥ 7): counted in ``critical``, listed in ``findings``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starters.reports import parse_sarif
from workflows.pipeline.models import MAX_SECURITY_FINDINGS, SecurityFinding

DATA = Path(__file__).parent / "data" / "reports"


def _sarif(tmp_path: Path, results: list[dict[str, Any]], rules: list[dict[str, Any]] | None = None) -> Path:
    doc = {
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "scan", "rules": rules or []}}, "results": results}],
    }
    path = tmp_path / "scan.sarif"
    path.write_text(json.dumps(doc))
    return path


def _result(rule: str, level: str | None = None, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"ruleId": rule, "message": {"text": f"finding of {rule}"}}
    if level is not None:
        found["level"] = level
    found.update(extra)
    return found


def test_trivy_findings_carry_cve_package_location_and_score() -> None:
    [summary] = parse_sarif([DATA / "trivy.sarif"])
    assert (summary.tool, summary.error, summary.warning, summary.note) == ("Trivy", 1, 2, 1)
    # certifi: level error and 9.8; zlib1g: only a warning, but 9.8 (a number, not a string) makes it serious;
    # requests (5.6, warning) and coreutils (2.0, note) are not.
    assert summary.critical == 2
    assert [(f.rule, f.cve, f.package, f.location, f.level, f.cvss) for f in summary.findings] == [
        ("CVE-2023-37920", "CVE-2023-37920", "certifi", "requirements.txt:7", "error", 9.8),
        ("CVE-2023-45853", "CVE-2023-45853", "zlib1g", "library/python:1", "warning", 9.8),
    ]
    message = summary.findings[0].message
    assert message.startswith("Package: certifi Installed Version: 2022.12.7 Vulnerability CVE-2023-37920")
    assert "\n" not in message and "](" not in message  # one line, markdown links reduced to their text


def test_codeql_scores_come_from_rules_in_extensions_and_suppressed_results_do_not_count() -> None:
    [summary] = parse_sarif([DATA / "codeql.sarif"])
    # sql-injection (error, 8.8) and missing-rate-limiting (warning, 7.5) are serious; the unused variable
    # (a recommendation) is not, and the suppressed second sql-injection is no finding at all.
    assert summary.critical == 2
    assert summary.findings == [
        SecurityFinding(
            rule="js/sql-injection",
            location="src/routes/users.js:21",
            level="error",
            cvss=8.8,
            message="This query string depends on a user-provided value.",
        ),
        SecurityFinding(
            rule="js/missing-rate-limiting",
            location="src/routes/users.js:18",
            level="warning",
            cvss=7.5,
            message="This route handler performs a database access, but is not rate-limited.",
        ),
    ]


def test_semgrep_errors_without_a_score_are_serious() -> None:
    [summary] = parse_sarif([DATA / "semgrep.sarif"])
    assert summary.critical == summary.error == 2
    assert all(f.level == "error" and f.cvss is None for f in summary.findings)


def test_result_score_wins_over_the_rule_and_bad_scores_are_ignored(tmp_path: Path) -> None:
    rules = [{"id": "R1", "properties": {"security-severity": "9.1"}}]
    path = _sarif(
        tmp_path,
        [
            _result("R1", "warning", properties={"security-severity": "4.0"}),  # the result's own score wins
            _result("R1", "warning"),  # the rule's 9.1
            _result("R2", "warning", properties={"security-severity": "high"}),
            _result("R3", "warning", properties={"security-severity": 11}),
            _result("R4", "warning", properties={"security-severity": "NaN"}),
            _result("R5", "warning", properties={"security-severity": True}),
            _result("R6", "warning", properties={"security-severity": "7.0"}),  # 7.0 is serious
            _result("R7", "note", properties={"security-severity": "6.9"}),
        ],
        rules,
    )
    [summary] = parse_sarif([path])
    assert [(f.rule, f.cvss) for f in summary.findings] == [("R1", 9.1), ("R6", 7.0)]
    assert summary.critical == 2


def test_cve_from_tags_properties_or_message_and_package_from_properties(tmp_path: Path) -> None:
    rules = [
        {"id": "npm-audit-1", "properties": {"tags": ["security", "cve-2021-23337"], "packageName": "lodash"}},
        {"id": "dep-check", "properties": {"purl": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"}},
    ]
    path = _sarif(
        tmp_path,
        [
            _result("npm-audit-1", "error"),
            _result("dep-check", "error", message={"text": "Log4Shell: CVE-2021-44228 in log4j-core"}),
            _result("plain", "error", properties={"package": "left-pad"}),
            _result("nothing", "error"),
        ],
        rules,
    )
    [summary] = parse_sarif([path])
    assert [(f.rule, f.cve, f.package) for f in summary.findings] == [
        ("npm-audit-1", "CVE-2021-23337", "lodash"),
        ("dep-check", "CVE-2021-44228", "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"),
        ("plain", None, "left-pad"),
        ("nothing", None, None),
    ]
    assert [f.location for f in summary.findings] == ["", "", "", ""]  # no locations given


def test_findings_are_bounded_highest_score_first_and_the_count_goes_on(tmp_path: Path) -> None:
    results = [_result(f"E{i}", "error") for i in range(40)]
    results.append(_result("TOP", "warning", properties={"security-severity": "10.0"}))
    results.append(_result("LONG", "error", message={"text": "x " * 500}))
    [summary] = parse_sarif([_sarif(tmp_path, results)])
    assert summary.critical == 42
    assert len(summary.findings) == MAX_SECURITY_FINDINGS
    assert summary.findings[0].rule == "TOP"
    assert [f.rule for f in summary.findings[1:4]] == ["E0", "E1", "E2"]  # then errors in report order
    long = parse_sarif([_sarif(tmp_path, [_result("LONG", "error", message={"text": "word " * 500})])])[0]
    assert len(long.findings[0].message) <= 300 and long.findings[0].message.endswith("\u2026")


def test_no_serious_findings(tmp_path: Path) -> None:
    [summary] = parse_sarif([_sarif(tmp_path, [_result("W", "warning"), _result("N", "note")])])
    assert (summary.critical, summary.findings) == (0, [])
