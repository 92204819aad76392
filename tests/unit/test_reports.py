"""Tests for starters/reports.py: JUnit, coverage and SARIF summaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from starters.reports import ReportError, parse_coverage, parse_junit, parse_sarif
from workflows.pipeline.models import TestFailure as Failure

DATA = Path(__file__).parent / "data" / "reports"
PYTEST_XML = DATA / "pytest-junit.xml"
JEST_XML = DATA / "jest-junit.xml"
SUREFIRE_XML = DATA / "TEST-com.example.shop.CalculatorTest.xml"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------
# JUnit
# --------------------------------------------------------------------------


def test_junit_pytest_report() -> None:
    summary = parse_junit([PYTEST_XML])
    assert (summary.total, summary.failed, summary.errors, summary.skipped) == (5, 1, 1, 1)
    assert summary.duration_seconds == 0.412
    assert summary.failures == [
        Failure(name="test_create_user", classname="tests.test_api", message="AssertionError: assert 500 == 201"),
        Failure(
            name="test_migrate",
            classname="tests.test_db",
            message='failed on setup with "sqlalchemy.exc.OperationalError: could not connect to server"',
        ),
    ]


def test_junit_jest_report_uses_failure_text_and_root_time() -> None:
    summary = parse_junit([JEST_XML])
    assert (summary.total, summary.failed, summary.errors, summary.skipped) == (6, 2, 0, 1)
    # jest-junit puts the whole run's wall time on <testsuites>.
    assert summary.duration_seconds == 3.187
    assert [f.message for f in summary.failures] == [
        "Error: expect(received).toBe(expected) // Object.is equality",
        'thrown: "Exceeded timeout of 5000 ms for a test.',
    ]
    assert summary.failures[0].name == "Cart applies a 10% discount"


def test_junit_surefire_report_with_comma_time_and_flaky_case() -> None:
    summary = parse_junit([SUREFIRE_XML])
    # The flakyFailure case passed on rerun: it is neither failed nor error.
    assert (summary.total, summary.failed, summary.errors, summary.skipped) == (5, 1, 1, 1)
    assert summary.duration_seconds == 1234.567
    assert summary.failures == [
        Failure(
            name="dividesByZero",
            classname="com.example.shop.CalculatorTest",
            message="expected: <Infinity> but was: <NaN>",
        ),
        Failure(
            name="parsesName",
            classname="com.example.shop.CalculatorTest",
            message='java.lang.NullPointerException: Cannot invoke "String.length()" because "name" is null',
        ),
    ]


def test_junit_sums_several_files_in_order() -> None:
    summary = parse_junit([PYTEST_XML, JEST_XML, SUREFIRE_XML])
    assert (summary.total, summary.failed, summary.errors, summary.skipped) == (16, 4, 2, 3)
    assert summary.duration_seconds == 1238.166
    assert [f.name for f in summary.failures] == [
        "test_create_user",
        "test_migrate",
        "Cart applies a 10% discount",
        "api fetches the catalogue",
        "dividesByZero",
        "parsesName",
    ]


def test_junit_nested_suites_and_attribute_fallback(tmp_path: Path) -> None:
    xml = """<?xml version="1.0"?>
<testsuites>
  <testsuite name="outer" tests="99" failures="99" time="2.5">
    <testsuite name="outer.a" tests="2" failures="0">
      <testcase classname="outer.a" name="ok" time="0.1"/>
      <testcase classname="outer.a" name="bad" time="0.2"><failure message="boom">trace</failure></testcase>
    </testsuite>
    <testsuite name="outer.b">
      <testcase classname="outer.b" name="later" time="0"><skipped/></testcase>
    </testsuite>
  </testsuite>
  <testsuite name="summary-only" tests="4" failures="1" errors="1" skipped="0" time="1,5"/>
</testsuites>
"""
    summary = parse_junit([_write(tmp_path, "nested.xml", xml)])
    # The outer suite's (wrong) attributes are ignored because cases exist;
    # the case-less suite is counted from its attributes.
    assert (summary.total, summary.failed, summary.errors, summary.skipped) == (7, 2, 1, 1)
    assert summary.duration_seconds == 4.0  # 2.5 + "1,5" (decimal comma)
    assert summary.failures == [Failure(name="bad", classname="outer.a", message="boom")]


def test_junit_counts_cases_not_attributes(tmp_path: Path) -> None:
    xml = """<testsuite name="lies" tests="1" failures="0" errors="0" skipped="0">
  <testcase name="a"><error message="">Traceback (most recent call last):
  File "x.py", line 1</error></testcase>
  <testcase name="b"><skipped message="slow"/></testcase>
  <testcase name="c"/>
</testsuite>"""
    summary = parse_junit([_write(tmp_path, "lies.xml", xml)])
    assert (summary.total, summary.failed, summary.errors, summary.skipped) == (3, 0, 1, 1)
    assert summary.duration_seconds == 0.0  # no time attributes anywhere
    assert summary.failures == [Failure(name="a", classname="", message="Traceback (most recent call last):")]


def test_junit_keeps_first_20_failures_and_trims_messages(tmp_path: Path) -> None:
    long = "x" * 800
    cases = "".join(
        f'<testcase classname="t" name="case{i}" time="0.5">'
        f'<failure message="{long if i == 0 else f"fail {i}"}"/></testcase>'
        for i in range(25)
    )
    summary = parse_junit([_write(tmp_path, "many.xml", f"<testsuite>{cases}</testsuite>")])
    assert (summary.total, summary.failed) == (25, 25)
    assert summary.duration_seconds == 12.5  # summed from cases: suite has no time
    assert len(summary.failures) == 20
    assert summary.failures[-1].name == "case19"
    assert len(summary.failures[0].message) == 500
    assert summary.failures[1].message == "fail 1"


def test_junit_refuses_billion_laughs(tmp_path: Path) -> None:
    xml = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<testsuite><testcase name="&lol4;"/></testsuite>"""
    path = _write(tmp_path, "bomb.xml", xml)
    with pytest.raises(ReportError) as info:
        parse_junit([path])
    assert info.value.field == "--junit"
    assert info.value.path == path
    assert str(info.value) == f"--junit: {path}: refused unsafe XML (EntitiesForbidden)"


def test_junit_refuses_external_entity(tmp_path: Path) -> None:
    xml = """<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<testsuite><testcase name="x"><failure message="&xxe;"/></testcase></testsuite>"""
    path = _write(tmp_path, "xxe.xml", xml)
    with pytest.raises(ReportError, match=r"^--junit: .*xxe\.xml: refused unsafe XML"):
        parse_junit([path])


def test_junit_wrong_inputs(tmp_path: Path) -> None:
    html = _write(tmp_path, "tests.xml", "<html><body>502 Bad Gateway</body></html>")
    with pytest.raises(ReportError) as info:
        parse_junit([html])
    assert str(info.value) == f"--junit: {html}: not a JUnit XML report (root element <html>)"

    as_json = _write(tmp_path, "report.json", json.dumps({"numTotalTests": 3}))
    with pytest.raises(ReportError, match=r"^--junit: .*report\.json: not a JUnit XML report \(not well-formed"):
        parse_junit([as_json])

    missing = tmp_path / "nope.xml"
    with pytest.raises(ReportError) as info:
        parse_junit([PYTEST_XML, missing])
    assert (info.value.field, info.value.path) == ("--junit", missing)
    assert str(info.value) == f"--junit: {missing}: file not found"

    with pytest.raises(ReportError, match="file is empty"):
        parse_junit([_write(tmp_path, "empty.xml", "")])


def test_junit_no_files_is_an_empty_summary() -> None:
    summary = parse_junit([])
    assert (summary.total, summary.failed, summary.duration_seconds, summary.failures) == (0, 0, 0.0, [])


# --------------------------------------------------------------------------
# Coverage
# --------------------------------------------------------------------------


def test_coverage_cobertura_from_coverage_py() -> None:
    summary = parse_coverage(DATA / "coverage.xml")
    assert summary.model_dump() == {
        "format": "cobertura",
        "line_percent": 85.09,
        "lines_covered": 1050,
        "lines_valid": 1234,
    }


def test_coverage_cobertura_with_doctype_and_only_line_elements(tmp_path: Path) -> None:
    # Original Cobertura / old gcovr: a DOCTYPE (no entities) and no counts on the root.
    xml = """<?xml version="1.0"?>
<!DOCTYPE coverage SYSTEM "http://cobertura.sourceforge.net/xml/coverage-04.dtd">
<coverage line-rate="0.75" branch-rate="0" version="1.9" timestamp="1">
  <packages><package name="p"><classes>
    <class name="A" filename="A.java"><methods>
      <method name="m" signature="()V"><lines><line number="3" hits="2"/></lines></method>
    </methods><lines>
      <line number="3" hits="2"/><line number="4" hits="0"/><line number="5" hits="1"/><line number="6" hits="3"/>
    </lines></class>
  </classes></package></packages>
</coverage>"""
    summary = parse_coverage(_write(tmp_path, "cobertura.xml", xml))
    assert (summary.format, summary.line_percent, summary.lines_covered, summary.lines_valid) == (
        "cobertura",
        75.0,
        3,
        4,
    )


def test_coverage_lcov_sums_records() -> None:
    summary = parse_coverage(DATA / "lcov.info")
    assert (summary.format, summary.line_percent, summary.lines_covered, summary.lines_valid) == (
        "lcov",
        72.5,
        29,
        40,
    )


def test_coverage_empty_lcov(tmp_path: Path) -> None:
    summary = parse_coverage(_write(tmp_path, "lcov.info", "TN:\nSF:src/index.ts\nLF:0\nLH:0\nend_of_record\n"))
    assert (summary.format, summary.line_percent, summary.lines_covered, summary.lines_valid) == ("lcov", 0.0, 0, 0)
    # A zero-byte file has no recognisable format at all.
    with pytest.raises(ReportError, match=r"^--coverage: .*blank\.info: file is empty$"):
        parse_coverage(_write(tmp_path, "blank.info", ""))


def test_coverage_coverage_py_json_uses_line_counts() -> None:
    summary = parse_coverage(DATA / "coverage.json")
    # percent_covered (79.52) mixes in branches; line coverage is 412/500.
    assert (summary.format, summary.line_percent, summary.lines_covered, summary.lines_valid) == (
        "coverage.py",
        82.4,
        412,
        500,
    )


def test_coverage_wrong_inputs(tmp_path: Path) -> None:
    with pytest.raises(ReportError) as info:
        parse_coverage(PYTEST_XML)
    assert info.value.field == "--coverage"
    assert str(info.value) == f"--coverage: {PYTEST_XML}: not a Cobertura XML report (root element <testsuites>)"

    with pytest.raises(ReportError, match=r"^--coverage: .*codeql\.sarif: .*JSON without coverage totals"):
        parse_coverage(DATA / "codeql.sarif")

    with pytest.raises(ReportError, match=r"^--coverage: .*notes\.txt: .*unrecognised content"):
        parse_coverage(_write(tmp_path, "notes.txt", "Coverage: 85%\n"))

    with pytest.raises(ReportError, match=r"bad LF value on line 2"):
        parse_coverage(_write(tmp_path, "bad.info", "SF:a.c\nLF:many\nend_of_record\n"))

    with pytest.raises(ReportError, match=r"^--coverage: .*missing\.xml: file not found$"):
        parse_coverage(tmp_path / "missing.xml")

    with pytest.raises(ReportError, match="refused unsafe XML"):
        parse_coverage(
            _write(
                tmp_path,
                "evil.xml",
                '<!DOCTYPE c [<!ENTITY e SYSTEM "file:///etc/passwd">]><coverage line-rate="&e;"/>',
            )
        )


# --------------------------------------------------------------------------
# SARIF
# --------------------------------------------------------------------------


def test_sarif_codeql_rules_in_extensions() -> None:
    [summary] = parse_sarif([DATA / "codeql.sarif"])
    # Levels come from the rules (found via rule.toolComponent), incl. the
    # CodeQL "recommendation" severity; the suppressed result is not counted.
    assert (summary.tool, summary.error, summary.warning, summary.note) == ("CodeQL", 1, 1, 1)
    assert summary.top == [
        "js/sql-injection: This query string depends on a user-provided value. (src/routes/users.js:21)",
        "js/missing-rate-limiting: This route handler performs a database access, but is not rate-limited."
        " (src/routes/users.js:18)",
        "js/unused-local-variable: Unused variable tmp. (src/server.js:7)",
    ]


def test_sarif_semgrep_and_several_files() -> None:
    summaries = parse_sarif([DATA / "codeql.sarif", DATA / "semgrep.sarif"])
    assert [s.tool for s in summaries] == ["CodeQL", "Semgrep OSS"]
    semgrep = summaries[1]
    # The result's own level ("error") wins over its rule's default ("warning").
    assert (semgrep.error, semgrep.warning, semgrep.note) == (2, 0, 1)
    assert semgrep.top[1] == (
        "python.django.security.hardcoded-secret-key: Detected a hardcoded secret key. (app/settings.py:9)"
    )
    assert semgrep.top[2] == (
        "python.django.security.audit.django-debug.django-debug: Detected Django debug mode enabled. (app/settings.py:4)"
    )


def test_sarif_without_levels_defaults_to_warning_and_orders_errors_first(tmp_path: Path) -> None:
    results: list[dict[str, object]] = [
        {
            "ruleId": f"R{i}",
            "message": {"text": f"finding {i}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": f"f{i}.py"}, "region": {"startLine": i}}}],
        }
        for i in range(1, 13)
    ]
    results[10]["level"] = "error"
    results[11]["level"] = "none"
    results.append({"message": {"text": "no rule, no location"}, "level": "note"})
    doc = {
        "version": "2.1.0",
        "runs": [
            {"tool": {"driver": {"name": "lint"}}, "results": results},
            {"tool": {"driver": {"name": "empty"}}, "results": None},  # null: the analysis did not run
        ],
    }
    first, second = parse_sarif([_write(tmp_path, "x.sarif", json.dumps(doc))])
    assert (first.tool, first.error, first.warning, first.note) == ("lint", 1, 10, 2)
    assert len(first.top) == 10
    assert first.top[0] == "R11: finding 11 (f11.py:11)"
    assert first.top[1:] == [f"R{i}: finding {i} (f{i}.py:{i})" for i in range(1, 10)]
    assert (second.tool, second.error, second.warning, second.note, second.top) == ("empty", 0, 0, 0, [])


def test_sarif_wrong_inputs(tmp_path: Path) -> None:
    with pytest.raises(ReportError) as info:
        parse_sarif([PYTEST_XML])
    assert info.value.field == "--sarif"
    assert str(info.value).startswith(f"--sarif: {PYTEST_XML}: not a SARIF report (not valid JSON")

    with pytest.raises(ReportError) as info:
        parse_sarif([DATA / "coverage.json"])
    assert str(info.value) == f"--sarif: {DATA / 'coverage.json'}: not a SARIF report (no runs list)"

    old = _write(tmp_path, "old.sarif", json.dumps({"version": "1.0.0", "runs": []}))
    with pytest.raises(ReportError, match=r"unsupported SARIF version 1\.0\.0"):
        parse_sarif([old])

    with pytest.raises(ReportError, match=r"^--sarif: .*gone\.sarif: file not found$"):
        parse_sarif([tmp_path / "gone.sarif"])

    with pytest.raises(ReportError, match=r"not a SARIF report \(not valid JSON"):
        parse_sarif([_write(tmp_path, "deep.sarif", "[" * 100_000)])
