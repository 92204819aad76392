"""Failure signatures, categories and grouping (workflows/policy/failure_patterns.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from starters.reports import parse_junit
from workflows.pipeline.health_models import Occurrence, PatternConfig, PatternState
from workflows.pipeline.models import TestOutcome
from workflows.policy.failure_patterns import (
    Signature,
    add_failure,
    categorise,
    due_groups,
    error_class,
    group_text,
    hint,
    mark_sent,
    normalise,
    signature,
)

DATA = Path(__file__).parent / "data"
T0 = datetime(2026, 3, 2, 10, 2, tzinfo=UTC)


def _o(nodeid: str, message: str, outcome: str = "failed") -> TestOutcome:
    return TestOutcome.model_validate({"nodeid": nodeid, "outcome": outcome, "message": message})


def test_normalise_numbers_hex_ids_paths_timestamps_uuids() -> None:
    text = (
        "AssertionError: order 4711 at /home/runner/work/app/tests/test_x.py:88 failed at 2025-09-22T08:14:03Z "
        "id 550e8400-e29b-41d4-a716-446655440000 obj 0x7f3a2b sha 4f2c9e1ab3d5 after 1.25s"
    )
    assert normalise(text) == (
        "AssertionError: order <n> at <path>:<n> failed at <ts> id <uuid> obj <hex> sha <hex> after <n>s"
    )
    assert normalise(r"C:\Users\ci\a.py line 5") == "<path> line <n>"
    assert normalise("  several   blanks\n\tcollapse ") == "several blanks collapse"
    assert len(normalise("x" * 1000)) == 200


def test_one_failure_in_two_runs_has_one_signature() -> None:
    a = signature([_o("t::ok", "", "passed"), _o("t::a", "TimeoutError: order 4711 not acked after 1.0s")])
    b = signature([_o("t::a", "TimeoutError: order 9 not acked after 2.5s")])
    c = signature([_o("t::a", "AssertionError: assert 0 == 1")])
    d = signature([_o("t::other", "TimeoutError: order 4711 not acked after 1.0s")])
    assert a.key == b.key
    assert len({a.key, c.key, d.key}) == 3
    assert a.kind == "test" and a.summary == "t::a: TimeoutError: order <n> not acked after <n>s"
    assert a.category == "timeout/infra" and c.category == "test"


def test_signature_from_junit_fixture_and_from_a_log_tail() -> None:
    sig = signature(parse_junit([DATA / "flaky" / "broken-cancel.xml"]).outcomes)
    assert sig.summary == "tests.test_orders::test_cancel_order: AssertionError: assert 'open' == 'cancelled'"
    assert sig.category == "test"
    tail = "Collecting deps\nnpm ERR! code ERESOLVE\nnpm ERR! ERESOLVE unable to resolve dependency tree\n"
    log = signature([], tail, step="install")
    assert (log.kind, log.summary, log.category) == ("log", "install: ERESOLVE", "dependency")
    other_run = signature([], tail.replace("Collecting deps", "Collecting 42 deps"), step="install")
    assert other_run.key == log.key
    assert signature([], tail, step="build").key != log.key


def test_error_class_from_log_tails() -> None:
    assert error_class("E   sqlalchemy.exc.OperationalError: nope\n\ntests/conftest.py:9: OperationalError") == (
        "OperationalError"
    )
    assert error_class("src/a.ts(3,7): error TS2322: Type 'string' is not assignable") == "TS2322"
    assert error_class("error[E0432]: unresolved import `foo`") == "E0432"
    assert error_class("make: *** [Makefile:12: test] Error 2") == "Error 2"
    assert error_class("step finished\nprocess exited 12 at 10:02:03") == "process exited <n> at <ts>"
    assert error_class("") == ""


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("trivy: CVE-2024-3094 (CRITICAL) in xz-utils 5.6.0", "security"),
        ("GHSA-abcd-1234-wxyz found in lodash", "security"),
        ("ModuleNotFoundError: No module named 'requests'", "dependency"),
        ("ERROR: Could not find a version that satisfies the requirement foo==9.9", "dependency"),
        ('  File "app.py", line 3\nSyntaxError: invalid syntax', "compile"),
        ("src/a.ts(3,7): error TS2322: Type 'string' is not assignable to type 'number'", "compile"),
        ("[ERROR] COMPILATION ERROR : cannot find symbol", "compile"),
        ("ruff check: F401 `os` imported but unused", "lint"),
        ("Would reformat: app.py\n1 file would be reformatted", "lint"),
        ("Error: The operation was canceled.", "timeout/infra"),
        ("##[error]No space left on device", "timeout/infra"),
        ("Process completed with exit code 137 (Killed)", "timeout/infra"),
        ("AssertionError: assert 500 == 201", "test"),
        ("=== 3 failed, 120 passed in 4.2s ===", "test"),
        ("something odd happened", "unknown"),
    ],
)
def test_categories(text: str, category: str) -> None:
    assert categorise(text) == category


def test_a_failing_test_without_a_known_marker_is_a_test_failure() -> None:
    assert categorise("weird", has_failing_tests=True) == "test"
    assert signature([_o("t::x", "weird")]).category == "test"


def _occ(branch: str, minutes: float, repo: str = "acme/shop", author: str | None = "alice") -> Occurrence:
    return Occurrence(
        repo=repo,
        branch=branch,
        commit=f"{int(minutes * 10):07x}abcdef",
        at=T0 + timedelta(minutes=minutes),
        run=f"https://ci/runs/{int(minutes * 10)}",
        author=author,
    )


def test_the_same_signature_on_three_branches_within_five_minutes_is_sent_at_once_as_one_group() -> None:
    sig = signature([_o("t::a", "TimeoutError: order 1 not acked")])
    state = PatternState()
    decisions = []
    for branch, minute in (("main", 0), ("feature-a", 1), ("feature-a", 2), ("feature-b", 4)):
        d = add_failure(state, sig, _occ(branch, minute), now=T0 + timedelta(minutes=minute))
        state = d.state
        decisions.append(d.action)
    assert decisions == ["hold", "hold", "hold", "send"]  # the third distinct branch sends
    [group] = state.groups
    assert group.count == 4 and group.pipelines == ["acme/shop@main", "acme/shop@feature-a", "acme/shop@feature-b"]
    assert group_text(group) == (
        "Same failure on 3 branches since 10:02 (4 runs, timeout/infra): t::a: TimeoutError: order <n> not acked"
    )
    # One more in the window follows the sent message; nothing is due.
    d = add_failure(state, sig, _occ("feature-c", 4.5), now=T0 + timedelta(minutes=4.5))
    assert d.action == "follow" and due_groups(d.state, T0 + timedelta(minutes=10)) == []
    # The hint names where it first appeared.
    assert (
        hint(d.first)
        == "First seen in run https://ci/runs/0 on acme/shop@main at 0000000 by alice (2026-03-02 10:02 UTC)."
    )


def test_outside_the_window_a_new_group_opens_and_held_groups_come_due() -> None:
    sig = signature([], "FAILED tests/test_a.py::test_b - AssertionError", step="test")
    d1 = add_failure(PatternState(), sig, _occ("main", 0), now=T0)
    d2 = add_failure(d1.state, sig, _occ("dev", 6, repo="acme/api"), now=T0 + timedelta(minutes=6))
    assert (d1.action, d2.action) == ("hold", "hold")
    assert [g.count for g in d2.state.groups] == [1, 1]
    due = due_groups(d2.state, T0 + timedelta(minutes=6))
    assert [g.opened for g in due] == [T0]  # the first window closed at 10:07
    state = mark_sent(d2.state, due[0].key, due[0].opened)
    assert due_groups(state, T0 + timedelta(minutes=6)) == []
    assert len(due_groups(state, T0 + timedelta(minutes=11))) == 1
    # The first sighting stays across windows.
    assert d2.first.repo == "acme/shop" and d2.first.branch == "main"


def test_critical_is_sent_at_once_and_repos_are_named_as_pipelines() -> None:
    sig = signature([], "trivy: CVE-2024-3094 in xz-utils", step="scan")
    d = add_failure(PatternState(), sig, _occ("main", 0), now=T0, critical=True)
    assert d.action == "send" and d.group.category == "security"
    d = add_failure(d.state, sig, _occ("main", 1, repo="acme/api"), now=T0 + timedelta(minutes=1))
    assert d.action == "follow"
    assert group_text(d.group).startswith("Same failure on 2 pipelines since 10:02")


def test_group_at_and_bounds_are_configurable() -> None:
    config = PatternConfig(group_at=2, max_signatures=2, max_groups=2, max_occurrences=2)
    state = PatternState()
    for i in range(4):
        sig = signature([_o(f"t::{i}", "boom")])
        state = add_failure(state, sig, _occ("main", i), now=T0 + timedelta(seconds=i), config=config).state
    assert len(state.first_seen) == 2 and len(state.groups) == 2
    sig = signature([_o("t::3", "boom")])
    d = add_failure(state, sig, _occ("dev", 0.1), now=T0 + timedelta(seconds=5), config=config)
    assert d.action == "send"
    d = add_failure(d.state, sig, _occ("x", 0.2), now=T0 + timedelta(seconds=6), config=config)
    assert len(d.group.occurrences) == 2 and d.group.count == 3


def test_the_signature_just_seen_is_kept_when_the_limit_drops_others_seen_at_the_same_instant() -> None:
    at = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    state = PatternState()
    config = PatternConfig(max_signatures=2)
    for i in range(5):
        occ = Occurrence(repo="acme/api", branch=f"b{i}", commit=f"{i:07d}", at=at)
        sig = Signature(key=f"k{i}", category="test", summary=f"s{i}", kind="test")
        state = add_failure(state, sig, occ, now=at, config=config).state
        assert f"k{i}" in state.first_seen
        assert len(state.first_seen) <= 2


def test_the_runners_closing_line_is_not_the_error_and_a_linker_failure_is_compile() -> None:
    tail = "step 3\nerror: linker failed: ld returned 1 exit status\nbuilding docs\nError: Process completed with exit code 1."
    assert error_class(tail) == normalise("error: linker failed: ld returned 1 exit status")
    assert categorise(tail) == "compile"
    assert error_class("Error: Process completed with exit code 2.") == ""
