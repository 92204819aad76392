"""The pure silence model: activity window, matching, validation, durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflows.policy.durations import DurationError
from workflows.policy.matchers import MatcherError
from workflows.policy.silences import (
    Silence,
    parse_silence_duration,
    silence_matchers,
    silenced,
    validate_silence,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def sil(id: str, matchers: list[str], start: int = 0, end: int = 60) -> Silence:
    return Silence(
        id=id,
        matchers=matchers,
        starts_at=T0 + timedelta(minutes=start),
        ends_at=T0 + timedelta(minutes=end),
        created_by="alice",
        comment="maintenance",
    )


LABELS = {"alertname": "HighLatency", "service": "payments", "env": "prod"}


def test_active_matching_silences_by_id_in_order() -> None:
    silences = [
        sil("s1", ['service="payments"']),
        sil("s2", ['service="billing"']),
        sil("s3", ['{env="prod", alertname=~"High.*"}']),
        sil("s4", ['service="payments"'], start=30),  # pending
        sil("s5", ['service="payments"'], start=-60, end=-1),  # expired
    ]
    assert silenced(LABELS, silences, T0 + timedelta(minutes=10)) == ["s1", "s3"]
    assert silenced(LABELS, silences, T0 + timedelta(minutes=30)) == ["s1", "s3", "s4"]


def test_window_is_inclusive_at_both_ends_like_alertmanager() -> None:
    s = sil("s", ['env="prod"'])
    assert s.state(T0 - timedelta(microseconds=1)) == "pending"
    assert s.state(T0) == "active" and s.state(T0 + timedelta(minutes=60)) == "active"
    assert s.state(T0 + timedelta(minutes=60, microseconds=1)) == "expired"


def test_all_matchers_must_match() -> None:
    s = sil("s", ['service="payments"', 'env="staging"'])
    assert silenced(LABELS, [s], T0) == []
    assert silenced(LABELS | {"env": "staging"}, [s], T0) == ["s"]


def test_naive_datetimes_are_utc_and_dicts_are_accepted() -> None:
    raw = {"id": "d", "matchers": ['env="prod"'], "starts_at": "2024-05-01T12:00:00", "ends_at": "2024-05-01T13:00:00"}
    assert silenced(LABELS, [raw], datetime(2024, 5, 1, 12, 30)) == ["d"]


def test_expire() -> None:
    active = sil("s", ['env="prod"'])
    done = active.expired_at(T0 + timedelta(minutes=5))
    assert done.ends_at == T0 + timedelta(minutes=5) and done.state(T0 + timedelta(minutes=6)) == "expired"
    pending = sil("p", ['env="prod"'], start=30)
    stopped = pending.expired_at(T0)
    assert stopped.starts_at == stopped.ends_at == T0 and not stopped.is_active(T0 + timedelta(minutes=31))


@pytest.mark.parametrize(
    "matchers,message",
    [
        ([], "at least one matcher is required"),
        (["{}"], "at least one matcher is required"),
        (['env=""'], "at least one matcher must not match the empty string"),
        (['env=~".*"', 'team!="x"'], "at least one matcher must not match the empty string"),
        (['env="'], "matchers[0]: matcher value contains unescaped double quote"),
        (['env="prod"', 'a=~"("'], "matchers[1]: bad regex"),
    ],
)
def test_alertmanager_silence_rules(matchers: list[str], message: str) -> None:
    with pytest.raises(MatcherError, match=message.replace("[", r"\[").replace("]", r"\]")):
        silence_matchers(matchers)
    assert any(message in p for p in validate_silence(sil("x", matchers)))


def test_an_invalid_silence_never_matches() -> None:
    assert silenced(LABELS, [sil("bad", ['env=""']), sil("bad2", ['a=~"("'])], T0) == []


def test_validate_silence_window_and_id() -> None:
    assert validate_silence(sil("ok", ['env="prod"'])) == []
    assert validate_silence(sil("", ['env="prod"'], start=10, end=5)) == [
        "id: missing",
        "ends_at: must not be before starts_at",
    ]


@pytest.mark.parametrize("text,expected", [("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("45s", 45), ("1w", 604800)])
def test_parse_silence_duration(text: str, expected: int) -> None:
    assert parse_silence_duration(text) == timedelta(seconds=expected)


@pytest.mark.parametrize("text", ["0", "0s", "-1h", "soon", "", "1.5h"])
def test_parse_silence_duration_rejects(text: str) -> None:
    with pytest.raises(DurationError):
        parse_silence_duration(text)
