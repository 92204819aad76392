"""Flaky tests from the pipeline's own history (workflows/policy/flaky.py), fed by JUnit fixtures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from starters.reports import parse_junit
from workflows.pipeline.health_models import FlakyConfig, TestHistory
from workflows.pipeline.models import TestOutcome
from workflows.policy.flaky import (
    Observation,
    classify,
    flaky_tests,
    observe,
    quarantine,
    release,
    verdict,
)

DATA = Path(__file__).parent / "data" / "flaky"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RECONNECT = "tests.test_feed::test_reconnect"
CANCEL = "tests.test_orders::test_cancel_order"
PLACE = "tests.test_orders::test_place_order"


def _junit(name: str) -> list[TestOutcome]:
    return parse_junit([DATA / name]).outcomes


class Pipeline:
    """Feeds runs to ``observe`` one after the other, an hour apart."""

    def __init__(self, config: FlakyConfig | None = None) -> None:
        self.history = TestHistory()
        self.config = config or FlakyConfig()
        self.n = 0
        self.last: Observation | None = None

    @property
    def now(self) -> datetime:
        return T0 + timedelta(hours=self.n)

    def run(self, outcomes: list[TestOutcome], commit: str) -> Observation:
        self.n += 1
        self.last = observe(
            self.history, outcomes, commit=commit, run=f"run-{self.n}", now=self.now, config=self.config
        )
        self.history = self.last.history
        return self.last


def _o(nodeid: str, outcome: str, reruns: int = 0) -> TestOutcome:
    return TestOutcome.model_validate({"nodeid": nodeid, "outcome": outcome, "reruns": reruns})


def test_failing_then_passing_on_the_same_commit_is_flaky_and_the_next_build_is_info() -> None:
    p = Pipeline()
    first = p.run(_junit("run1-fail.xml"), "aaaaaaa1")
    assert classify(p.history, _junit("run1-fail.xml")).verdict == "failed"  # first failure: a real one
    assert first.notices == []
    assert not verdict(p.history, RECONNECT).flaky

    second = p.run(_junit("run2-pass.xml"), "aaaaaaa1")  # CI retry of the same commit passes
    found = verdict(p.history, RECONNECT)
    assert found.flaky and found.reason == "failed and passed on the same commit aaaaaaa"
    assert [(n.kind, n.nodeid) for n in second.notices] == [("detected", RECONNECT)]
    assert p.history.tests[RECONNECT].flaky_since == T0 + timedelta(hours=2)

    third_outcomes = _junit("run3-fail-reconnect.xml")
    p.run(third_outcomes, "bbbbbbb2")
    build = classify(p.history, third_outcomes)
    assert build.verdict == "flaky"
    assert build.labels == {"flaky": "true"}
    assert build.severity == "info"
    assert build.flaky == [RECONNECT] and build.failing == []
    assert build.text == f"Only known-flaky tests failed: {RECONNECT}."
    assert p.last is not None and p.last.notices == []  # already known: no second "detected"


def test_a_consistently_failing_test_is_not_flaky() -> None:
    p = Pipeline()
    for i in range(6):
        p.run(_junit("broken-cancel.xml"), f"c{i:07d}")
    found = verdict(p.history, CANCEL)
    assert not found.flaky and (found.failures, found.passes, found.flips) == (6, 0, 0)
    build = classify(p.history, _junit("broken-cancel.xml"))
    assert build.verdict == "failed" and build.failing == [CANCEL] and build.severity is None
    assert build.labels == {}


def test_a_break_and_its_fix_is_not_flaky_but_repeated_flips_are() -> None:
    p = Pipeline()
    fail, ok = _o(CANCEL, "failed"), _o(CANCEL, "passed")
    for i, outcome in enumerate([fail, fail, ok, ok, ok]):
        p.run([outcome], f"d{i:07d}")
    assert not verdict(p.history, CANCEL).flaky  # one flip F→P: fixed
    p.run([fail], "e0000001")
    p.run([ok], "e0000002")
    found = verdict(p.history, CANCEL)  # F F P P P F P: 3 flips in 7 runs
    assert found.flaky and found.flips == 3 and found.reason == "flipped 3 times in its last 7 runs (50%)"


def test_flip_rate_threshold_is_configurable() -> None:
    p = Pipeline(FlakyConfig(flip_rate=0.6))
    fail, ok = _o(CANCEL, "failed"), _o(CANCEL, "passed")
    for i, outcome in enumerate([fail, fail, ok, ok, ok, fail, ok]):
        p.run([outcome], f"f{i:07d}")
    assert not verdict(p.history, CANCEL, p.config).flaky  # 50 % < 60 %
    assert verdict(p.history, CANCEL).flaky  # default 20 %


def test_a_rerun_inside_the_run_is_flaky_at_once() -> None:
    p = Pipeline()
    outcomes = _junit("rerun-passed.xml")
    obs = p.run(outcomes, "aaaaaaa1")
    assert verdict(p.history, PLACE).reason == "failed then passed on a rerun in the same run"
    assert [n.kind for n in obs.notices] == ["detected"]
    build = classify(p.history, outcomes)
    assert build.verdict == "clean" and build.rerun_passed == [PLACE]
    # The next build failing only on it is flaky.
    p.run([_o(PLACE, "failed")], "bbbbbbb2")
    assert classify(p.history, [_o(PLACE, "failed"), _o(CANCEL, "passed")]).verdict == "flaky"


def test_a_flaky_test_that_keeps_failing_is_broken_again() -> None:
    p = Pipeline()
    p.run([_o(PLACE, "passed", reruns=1)], "a0000001")
    for i in range(2):
        p.run([_o(PLACE, "failed")], f"b{i:07d}")
        assert classify(p.history, [_o(PLACE, "failed")]).verdict == "flaky"
    p.run([_o(PLACE, "failed")], "b0000009")  # third failure in a row
    build = classify(p.history, [_o(PLACE, "failed")])
    assert build.verdict == "failed" and build.failing == [PLACE]


def test_a_real_failure_beside_a_flaky_one_fails_the_build() -> None:
    p = Pipeline()
    p.run([_o(PLACE, "passed", reruns=1)], "a0000001")
    outcomes = [_o(PLACE, "failed"), _o(CANCEL, "failed")]
    p.run(outcomes, "b0000001")
    build = classify(p.history, outcomes)
    assert (build.verdict, build.failing, build.flaky) == ("failed", [CANCEL], [PLACE])
    assert build.labels == {} and build.severity is None


def test_quarantine_mutes_and_is_released_after_five_passes_with_a_notice() -> None:
    p = Pipeline()
    p.run(_junit("broken-cancel.xml"), "a0000001")
    p.history = quarantine(p.history, CANCEL, by="alice", now=p.now, reason="tracked in SHOP-12")
    assert p.history.tests[CANCEL].quarantine is not None
    p.run(_junit("broken-cancel.xml"), "a0000002")
    assert classify(p.history, _junit("broken-cancel.xml")).verdict == "flaky"
    for i in range(4):
        obs = p.run(_junit("run2-pass.xml"), f"b{i:07d}")
        assert obs.notices == [] and p.history.tests[CANCEL].quarantine is not None
    obs = p.run(_junit("run2-pass.xml"), "b0000005")
    assert [(n.kind, n.nodeid, n.owner) for n in obs.notices] == [("released", CANCEL, "alice")]
    assert "passed 5 runs in a row" in obs.notices[0].text
    assert p.history.tests[CANCEL].quarantine is None
    assert classify(p.history, _junit("broken-cancel.xml")).verdict == "failed"


def test_a_failure_resets_the_release_count() -> None:
    p = Pipeline(FlakyConfig(release_after=2))
    p.history = quarantine(p.history, CANCEL, by="bob", now=p.now)
    p.run([_o(CANCEL, "passed")], "a1")
    p.run([_o(CANCEL, "failed")], "a2")
    obs = p.run([_o(CANCEL, "passed")], "a3")
    assert obs.notices == [] and p.history.tests[CANCEL].quarantine is not None
    obs = p.run([_o(CANCEL, "passed")], "a4")
    assert [n.kind for n in obs.notices] == ["released"]


def test_quarantine_until_expires_with_a_notice_and_release_by_hand() -> None:
    p = Pipeline()
    p.history = quarantine(p.history, CANCEL, by="carol", now=p.now, until=T0 + timedelta(hours=2))
    obs = p.run([_o(CANCEL, "failed")], "a1")
    assert obs.notices == [] and classify(p.history, [_o(CANCEL, "failed")]).verdict == "flaky"
    obs = p.run([_o(CANCEL, "failed")], "a2")  # now == until
    assert [(n.kind, n.owner) for n in obs.notices] == [("expired", "carol")]
    assert classify(p.history, [_o(CANCEL, "failed")]).verdict == "failed"
    # By hand: a test that never failed leaves the history once released.
    h = quarantine(TestHistory(), PLACE, by="dan", now=T0)
    assert [v.nodeid for v in flaky_tests(h)] == [PLACE]
    assert release(h, PLACE).tests == {}
    assert release(h, "unknown") == h


def test_flaky_list_is_most_recently_failed_first() -> None:
    p = Pipeline()
    p.run([_o(PLACE, "passed", reruns=1)], "a1")
    p.run([_o(RECONNECT, "passed", reruns=2), _o(CANCEL, "failed")], "a2")
    listed = flaky_tests(p.history)
    assert [v.nodeid for v in listed] == [RECONNECT, PLACE]  # CANCEL failed once: not flaky


def test_history_is_bounded_in_runs_and_tests() -> None:
    config = FlakyConfig(window_runs=5, max_tests=3)
    p = Pipeline(config)
    for i in range(8):
        p.run([_o(f"t::{i}", "failed"), _o("t::always", "failed")], f"c{i}")
    assert len(p.history.runs) == 5
    assert len(p.history.tests) == 3
    assert all(len(r.outcomes) <= 5 for r in p.history.tests.values())
    # The least recently seen were dropped; the newest and the always-failing stay.
    assert set(p.history.tests) == {"t::always", "t::7", "t::6"}
    # A test whose failures left the window is forgotten.
    for i in range(4):
        p.run([_o("t::always", "passed")], f"d{i}")
    assert set(p.history.tests) == {"t::always", "t::7"}
    assert p.history.tests["t::always"].outcomes == "FPPPP"
    assert p.history.tests["t::7"].outcomes == "F...."
    p.run([_o("t::always", "passed")], "e0")
    assert p.history.tests == {}


def test_observe_leaves_its_input_unchanged_and_ignores_passing_unknown_tests() -> None:
    history = TestHistory()
    obs = observe(history, [_o(PLACE, "passed"), _o(CANCEL, "skipped")], commit="a", run="r1", now=T0)
    assert history == TestHistory()
    assert obs.history.tests == {} and [r.run for r in obs.history.runs] == ["r1"]
