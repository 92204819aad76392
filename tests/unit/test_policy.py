"""Pure policy: durations, matchers, the route tree and build classification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflows.config import PipelinesConfig, Route
from workflows.pipeline.models import BuildEvent
from workflows.policy.builds import Track, build_labels, build_message, classify, format_duration_s
from workflows.policy.durations import DurationError, format_duration, parse_duration
from workflows.policy.escalation import Repeats, Rung
from workflows.policy.matchers import MatcherError, parse_matcher, parse_matchers
from workflows.policy.routing import build_tree, match_routes, receivers_for


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("30s", 30),
        ("5m", 300),
        ("4h", 14400),
        ("1h30m", 5400),
        ("1d", 86400),
        ("1w", 604800),
        ("0", 0),
        ("250ms", 0.25),
        (45, 45),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "30m1h", "-5m", "1.5h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("30s", "5m", "1h30m", "1d", "1w2d"):
        assert format_duration(parse_duration(text)) == text


def test_matchers_operators_and_anchoring() -> None:
    labels = {"severity": "critical", "service": "payments-api"}
    assert parse_matcher('severity="critical"').matches(labels)
    assert not parse_matcher('severity!="critical"').matches(labels)
    assert parse_matcher('service=~"payments.*"').matches(labels)
    assert not parse_matcher('service=~"payments"').matches(labels), "regex must be anchored"
    assert parse_matcher('service!~"billing.*"').matches(labels)
    assert parse_matcher('team=""').matches(labels), "a missing label equals the empty string"
    assert parse_matcher("severity=critical").matches(labels), "bare values are allowed"


def test_matchers_quoting_and_lists() -> None:
    found = parse_matchers('{a="x,y", b=~"1|2", c!="q\\"uote"}')
    assert [(m.name, m.op, m.value) for m in found] == [("a", "=", "x,y"), ("b", "=~", "1|2"), ("c", "!=", 'q"uote')]
    assert str(found[2]) == 'c!="q\\"uote"'


@pytest.mark.parametrize("text", ["=foo", 'a=~"("', 'a="unterminated', "a", 'a="1" b="2"'])
def test_matchers_reject_garbage(text: str) -> None:
    with pytest.raises(MatcherError):
        parse_matchers(text)


TREE = Route.model_validate(
    {
        "receiver": "default",
        "group_by": ["alertname"],
        "group_wait": "10s",
        "routes": [
            {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True, "group_wait": "0s"},
            {
                "matchers": ['team="db"'],
                "receiver": "db",
                "routes": [
                    {"match": {"env": "prod"}, "receiver": "db-prod"},
                ],
            },
            {"match_re": {"service": "pay.*"}, "receiver": "payments", "group_by": ["..."]},
        ],
    }
)


@pytest.mark.parametrize(
    "labels,expected",
    [
        ({}, ["default"]),
        ({"severity": "critical"}, ["pager"]),
        ({"severity": "critical", "team": "db"}, ["pager", "db"]),
        ({"team": "db", "env": "prod"}, ["db-prod"]),
        ({"team": "db", "service": "payments"}, ["db"]),
        ({"service": "payments"}, ["payments"]),
        ({"severity": "critical", "service": "payx"}, ["pager", "payments"]),
    ],
)
def test_route_tree_alertmanager_semantics(labels: dict[str, str], expected: list[str]) -> None:
    assert receivers_for(TREE, labels) == expected


def test_route_inheritance() -> None:
    tree = build_tree(TREE)
    db_prod = match_routes(tree, {"team": "db", "env": "prod"})[0]
    assert db_prod.group_by == ["alertname"] and db_prod.group_wait == timedelta(seconds=10)
    assert db_prod.group_interval == timedelta(minutes=5) and db_prod.repeat_interval == timedelta(hours=4)
    pager = match_routes(tree, {"severity": "critical"})[0]
    assert pager.group_wait == timedelta(0)
    payments = match_routes(tree, {"service": "pay"})[0]
    assert payments.group_by_all and payments.group_key_labels({"a": "1", "service": "pay"}) == {
        "a": "1",
        "service": "pay",
    }


def _ev(status: str, commit: str = "abcdef1") -> BuildEvent:
    return BuildEvent(repo="acme/api", branch="main", commit=commit, status=status)  # type: ignore[arg-type]


def test_classify_state_machine() -> None:
    cfg = PipelinesConfig()
    track = Track()
    seen = []
    for status in ["started", "success", "failure", "failure", "cancelled", "success", "success"]:
        result = classify(track, _ev(status), cfg)
        seen.append((result.alertname, result.notify))
        track = result.track
    assert seen == [
        ("BuildStarted", False),
        ("BuildSucceeded", False),
        ("BuildFailed", True),
        ("BuildFailed", True),
        ("BuildCancelled", True),
        ("BuildFixed", True),
        ("BuildSucceeded", False),
    ]


def test_classify_notify_success_and_started_when_configured() -> None:
    cfg = PipelinesConfig(notify_success=True, notify_started=True)
    assert classify(Track(), _ev("success"), cfg).notify
    assert classify(Track(), _ev("started"), cfg).notify


def test_build_labels_and_message() -> None:
    event = BuildEvent(
        repo="acme/api",
        branch="main",
        commit="0123456789abcdef",
        status="failure",
        workflow="tests",
        author="alice",
        duration_seconds=754,
        url="https://ci/1",
        pr=42,
    )
    result = classify(Track(), event, PipelinesConfig())
    labels = build_labels(event, result.alertname)
    assert labels == {
        "alertname": "BuildFailed",
        "kind": "build",
        "repo": "acme/api",
        "branch": "main",
        "workflow": "tests",
        "status": "failure",
        "severity": "error",
        "service": "api",
        "author": "alice",
        "commit": "0123456789abcdef",
        "pr": "42",
        "url": "https://ci/1",
    }
    msg = build_message(event, result, "pipeline/acme/api/main")
    fields = {f.title: f.value for f in msg.fields}
    assert fields["Commit"] == "0123456" and fields["Duration"] == "12m 34s" and fields["Pull request"] == "#42"
    assert msg.links[0].url == "https://ci/1" and msg.severity == "error"
    assert format_duration_s(3725) == "1h 2m 5s"


def test_escalation_ladder_schedule_with_repeats() -> None:
    from datetime import datetime

    from workflows.config import EscalationPolicy
    from workflows.policy.incidents import DEFAULT_LADDER, ladder

    t0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    rungs = ladder(DEFAULT_LADDER, t0)
    assert [(r.level, r.receiver, (r.due - t0).total_seconds() / 60) for r in rungs] == [
        (1, "critical", 0),
        (2, "senior", 5),
        (3, "cto", 10),
        (4, "emergency", 15),
    ]
    policy = EscalationPolicy.model_validate(
        {"levels": [{"after": "0m", "receiver": "a"}, {"after": "3m", "receiver": "b"}], "repeat": 2}
    )
    assert [(r.index, r.level, r.receiver, (r.due - t0).total_seconds() / 60) for r in ladder(policy, t0)] == [
        (0, 1, "a", 0),
        (1, 2, "b", 3),
        (2, 2, "b", 6),
        (3, 2, "b", 9),
    ]


def test_repeats_reads_like_the_list_it_replaces() -> None:
    """A route without a ladder: its receiver now, then every repeat_interval; rungs made when read."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    every = timedelta(hours=4)
    lazy = Repeats("oncall", start, every, 1000)
    eager = [Rung(i, 1, "oncall", start + every * i) for i in range(1000)]
    assert len(lazy) == 1000
    for i in (0, 1, 999, -1, -1000):
        assert (lazy[i].index, lazy[i].level, lazy[i].receiver, lazy[i].due) == (
            eager[i].index,
            eager[i].level,
            eager[i].receiver,
            eager[i].due,
        )
    assert [r.due for r in lazy[2:5]] == [r.due for r in eager[2:5]]
    for bad in (1000, -1001):
        with pytest.raises(IndexError):
            lazy[bad]
