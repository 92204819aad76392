"""Per-test outcomes from JUnit reports (reruns, Surefire flaky entries) and the flake telemetry JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from starters.reports import (
    ReportError,
    junit_id,
    parse_flake_telemetry,
    parse_junit,
    with_outcomes,
)
from workflows.pipeline.models import MAX_OUTCOME_MESSAGE, BuildEvent, TestOutcome, TestSummary, bound_outcomes

DATA = Path(__file__).parent / "data" / "reports"


def _by_id(summary: TestSummary) -> dict[str, TestOutcome]:
    return {o.nodeid: o for o in summary.outcomes}


def test_pytest_rerun_entries_are_failed_then_passed() -> None:
    summary = parse_junit([DATA / "pytest-rerun-junit.xml"])
    # Counts stay as before: the rerun case that passed is a pass.
    assert (summary.total, summary.failed, summary.errors) == (4, 1, 0)
    outcomes = _by_id(summary)
    cancel = outcomes["tests.test_orders::test_cancel_order"]
    assert (cancel.outcome, cancel.reruns, cancel.flaky_in_run) == ("passed", 2, True)
    assert cancel.message == "TimeoutError: order 4711 not acknowledged after 1.0s"
    assert cancel.duration_seconds == 1.5
    refund = outcomes["tests.test_orders.TestRefund::test_refund[eur]"]
    assert (refund.outcome, refund.reruns, refund.flaky_in_run) == ("failed", 1, False)
    plain = outcomes["tests.test_orders::test_place_order"]
    assert (plain.outcome, plain.reruns, plain.message) == ("passed", 0, "")
    # Failures first, then passes after reruns, then the rest in report order.
    assert [o.nodeid for o in summary.outcomes] == [
        "tests.test_orders.TestRefund::test_refund[eur]",
        "tests.test_orders::test_cancel_order",
        "tests.test_orders::test_place_order",
        "tests.test_orders::test_list_orders",
    ]


def test_surefire_flaky_and_rerun_failures() -> None:
    summary = parse_junit([DATA / "surefire-rerun.xml"])
    outcomes = _by_id(summary)
    flaky = outcomes["com.example.shop.CartTest::addsItem"]
    assert (flaky.outcome, flaky.reruns, flaky.flaky_in_run) == ("passed", 1, True)
    assert flaky.message == "Connection refused"
    broken = outcomes["com.example.shop.CartTest::removesItem"]
    assert (broken.outcome, broken.reruns, broken.flaky_in_run) == ("failed", 2, False)
    assert outcomes["com.example.shop.CartTest::emptiesCart"].outcome == "passed"


def test_surefire_flaky_failure_in_existing_fixture() -> None:
    summary = parse_junit([DATA / "TEST-com.example.shop.CalculatorTest.xml"])
    outcomes = _by_id(summary)
    assert outcomes["com.example.shop.CalculatorTest::sumsLargeLists"].flaky_in_run
    assert outcomes["com.example.shop.CalculatorTest::parsesName"].outcome == "error"
    assert outcomes["com.example.shop.CalculatorTest::roundsHalfEven"].outcome == "skipped"
    assert len(summary.outcomes) == summary.total == 5


def test_outcomes_are_bounded_failures_first_and_messages_cut(tmp_path: Path) -> None:
    cases = "".join(f'<testcase classname="t" name="p{i}"/>' for i in range(600))
    cases += "".join(
        f'<testcase classname="t" name="f{i}"><failure message="{"x" * 400}"/></testcase>' for i in range(3)
    )
    path = tmp_path / "big.xml"
    path.write_text(f"<testsuite>{cases}</testsuite>")
    summary = parse_junit([path])
    assert summary.total == 603
    assert len(summary.outcomes) == 500
    assert [o.nodeid for o in summary.outcomes[:3]] == ["t::f0", "t::f1", "t::f2"]
    assert all(len(o.message) <= MAX_OUTCOME_MESSAGE for o in summary.outcomes)
    assert summary.outcomes[0].message.endswith("\u2026")
    assert bound_outcomes(summary.outcomes, 2) == summary.outcomes[:2]


def test_outcomes_travel_in_a_build_event() -> None:
    summary = parse_junit([DATA / "pytest-rerun-junit.xml"])
    event = BuildEvent(repo="acme/shop", branch="main", commit="abc1234", status="failure", tests=summary)
    again = BuildEvent.model_validate_json(event.model_dump_json())
    assert again.tests is not None and again.tests.outcomes == summary.outcomes
    # An event from an older CLI (no outcomes) still validates.
    old = BuildEvent.model_validate({"repo": "r", "branch": "b", "commit": "abc1234", "status": "failure", "tests": {}})
    assert old.tests is not None and old.tests.outcomes == []


def test_junit_id_from_pytest_nodeids() -> None:
    assert junit_id("tests/test_api.py::TestUser::test_create[1]") == "tests.test_api.TestUser::test_create[1]"
    assert junit_id("tests/test_api.py::test_health") == "tests.test_api::test_health"
    assert junit_id("com.example.CartTest::addsItem") == "com.example.CartTest::addsItem"
    assert junit_id("plain") == "plain"


def test_flake_telemetry_file() -> None:
    telemetry = parse_flake_telemetry(DATA / "flake_runs.json")
    assert (telemetry.exit_status, telemetry.run_id, telemetry.run_attempt, telemetry.commit) == (
        1,
        "11012345678",
        2,
        "4f2c9e1ab3d5",
    )
    assert telemetry.run_urls == [
        "https://github.com/acme/trader/actions/runs/11012345678",
        "https://github.com/acme/trader/actions/runs/11012340000",
    ]
    outcomes = {o.nodeid: o for o in telemetry.outcomes}
    assert set(outcomes) == {
        "tests.test_market_data::test_feed_reconnects",
        "tests.test_orders.TestRisk::test_limit[usd]",
        "tests.test_fix::test_logon",
    }
    feed = outcomes["tests.test_market_data::test_feed_reconnects"]
    assert (feed.outcome, feed.reruns, feed.flaky_in_run, feed.duration_seconds) == ("passed", 1, True, 3.75)
    assert feed.message == "TimeoutError: feed did not reconnect within 2.0s"
    limit = outcomes["tests.test_orders.TestRisk::test_limit[usd]"]
    assert (limit.outcome, limit.reruns) == ("failed", 0)
    # Only a rerun logged: the final attempt passed.
    logon = outcomes["tests.test_fix::test_logon"]
    assert (logon.outcome, logon.reruns) == ("passed", 1)
    assert telemetry.outcomes[0].nodeid == "tests.test_orders.TestRisk::test_limit[usd]"  # failures first


def test_flake_telemetry_merges_into_a_junit_summary() -> None:
    summary = TestSummary(
        total=2,
        failed=1,
        outcomes=[
            TestOutcome(nodeid="tests.test_market_data::test_feed_reconnects", outcome="passed"),
            TestOutcome(nodeid="tests.test_orders.TestRisk::test_limit[usd]", outcome="failed", message="from junit"),
        ],
    )
    merged = with_outcomes(summary, parse_flake_telemetry(DATA / "flake_runs.json").outcomes)
    outcomes = {o.nodeid: o for o in merged.outcomes}
    assert outcomes["tests.test_market_data::test_feed_reconnects"].reruns == 1  # the telemetry knew of the rerun
    assert outcomes["tests.test_orders.TestRisk::test_limit[usd]"].message == "from junit"  # the report wins
    assert "tests.test_fix::test_logon" in outcomes
    assert merged.total == 2 and len(merged.outcomes) == 3


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[]", "not a flake telemetry file (no meta or events)"),
        ('{"other": 1}', "not a flake telemetry file (no meta or events)"),
        ('{"events": {}}', "not a flake telemetry file (events is not a list)"),
        ("{not json", "not a flake telemetry file (not valid JSON"),
    ],
)
def test_flake_telemetry_wrong_inputs(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "flake.json"
    path.write_text(content)
    with pytest.raises(ReportError) as info:
        parse_flake_telemetry(path)
    assert info.value.field == "--flake-telemetry"
    assert info.value.reason.startswith(reason)


def test_flake_telemetry_meta_only_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "flake.json"
    path.write_text(json.dumps({"meta": {"exit_status": 0}}))
    telemetry = parse_flake_telemetry(path)
    assert (telemetry.outcomes, telemetry.exit_status) == ([], 0)
