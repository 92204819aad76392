"""Alertmanager ``time_intervals`` semantics: zones, DST, month ends, validation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from operations.config import ConfigError, load_config_file, parse_config
from workflows.config import Config, TimeInterval
from workflows.policy.timeintervals import (
    active,
    active_names,
    is_active,
    parse_day_of_month_range,
    parse_month_range,
    parse_time,
    parse_weekday_range,
    spec_contains,
    spec_errors,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def interval(*specs: dict[str, Any], name: str = "ti") -> TimeInterval:
    return TimeInterval.model_validate({"name": name, "time_intervals": list(specs)})


SEOUL_MARKET = interval(
    {"times": [{"start_time": "08:30", "end_time": "17:00"}], "weekdays": ["monday:friday"], "location": "Asia/Seoul"}
)


@pytest.mark.parametrize(
    "instant,expected",
    [
        ("2024-03-04T08:29:00+09:00", False),  # Monday, one minute before the open
        ("2024-03-04T08:30:00+09:00", True),  # start inclusive
        ("2024-03-03T23:30:00+00:00", True),  # the same Monday 08:30 KST seen from UTC (a Sunday)
        ("2024-03-04T16:59:59+09:00", True),
        ("2024-03-04T17:00:00+09:00", False),  # end exclusive
        ("2024-03-08T12:00:00+09:00", True),  # Friday
        ("2024-03-09T10:00:00+09:00", False),  # Saturday
        ("2024-03-08T23:00:00+00:00", False),  # Saturday 08:00 KST, though Friday in UTC
    ],
)
def test_seoul_market_hours(instant: str, expected: bool) -> None:
    assert active(SEOUL_MARKET, utc(instant)) is expected


NY_NIGHT = interval({"times": [{"start_time": "01:00", "end_time": "03:00"}], "location": "America/New_York"})
NY_TWO = interval({"times": [{"start_time": "02:00", "end_time": "03:00"}], "location": "America/New_York"})


@pytest.mark.parametrize(
    "ti,instant,expected",
    [
        # 2024-03-10: clocks jump from 02:00 EST to 03:00 EDT.
        (NY_NIGHT, "2024-03-10T06:30:00Z", True),  # 01:30 EST
        (NY_NIGHT, "2024-03-10T06:59:59Z", True),  # 01:59:59 EST
        (NY_NIGHT, "2024-03-10T07:00:00Z", False),  # 03:00 EDT: the 02:xx hour never happens
        (NY_TWO, "2024-03-10T06:59:00Z", False),
        (NY_TWO, "2024-03-10T07:00:00Z", False),
        (NY_TWO, "2024-03-11T06:30:00Z", True),  # next day, 02:30 EDT exists
        # 2024-11-03: 01:00-02:00 happens twice (EDT then EST); both are inside.
        (NY_NIGHT, "2024-11-03T05:30:00Z", True),  # 01:30 EDT
        (NY_NIGHT, "2024-11-03T06:30:00Z", True),  # 01:30 EST
        (NY_NIGHT, "2024-11-03T07:30:00Z", True),  # 02:30 EST
        (NY_NIGHT, "2024-11-03T08:00:00Z", False),  # 03:00 EST
    ],
)
def test_new_york_dst_change_days(ti: TimeInterval, instant: str, expected: bool) -> None:
    assert active(ti, utc(instant)) is expected


LONDON_OFFICE = interval(
    {
        "times": [{"start_time": "09:00", "end_time": "17:00"}],
        "weekdays": ["Monday:Friday"],
        "location": "Europe/London",
    }
)


@pytest.mark.parametrize(
    "instant,expected",
    [
        ("2024-03-29T09:00:00Z", True),  # GMT: 09:00 local
        ("2024-03-29T16:59:00Z", True),
        ("2024-04-02T08:30:00Z", True),  # BST: 09:30 local
        ("2024-04-02T16:30:00Z", False),  # BST: 17:30 local
        ("2024-04-02T08:00:00Z", True),  # BST: 09:00 local
        ("2024-03-31T10:00:00Z", False),  # Sunday (the change day)
    ],
)
def test_london_office_hours_across_bst(instant: str, expected: bool) -> None:
    assert active(LONDON_OFFICE, utc(instant)) is expected


LAST_DAY = interval({"days_of_month": ["-1"]})


@pytest.mark.parametrize(
    "instant,expected",
    [
        ("2024-02-29T12:00:00Z", True),  # leap year
        ("2024-02-28T12:00:00Z", False),
        ("2023-02-28T12:00:00Z", True),  # non-leap year
        ("2023-02-27T12:00:00Z", False),
        ("2100-02-28T00:00:00Z", True),  # 2100 is not a leap year
        ("2000-02-29T00:00:00Z", True),  # 2000 is
        ("2024-04-30T23:59:00Z", True),
        ("2024-12-31T00:00:00Z", True),
    ],
)
def test_last_day_of_month(instant: str, expected: bool) -> None:
    assert active(LAST_DAY, utc(instant)) is expected


def test_last_day_in_a_spring_forward_month_uses_the_calendar() -> None:
    # Alertmanager before PR #5447 counted 743 hours in March (New York) and got the 30th.
    ti = interval({"days_of_month": ["-1"], "location": "America/New_York"})
    assert active(ti, utc("2021-03-31T16:00:00Z")) is True
    assert active(ti, utc("2021-03-30T16:00:00Z")) is False


@pytest.mark.parametrize(
    "days,instant,expected",
    [
        (["1:5"], "2024-06-05T00:00:00Z", True),
        (["1:5"], "2024-06-06T00:00:00Z", False),
        (["-7:-1"], "2024-02-23T00:00:00Z", True),  # last week of a 29-day February
        (["-7:-1"], "2024-02-22T00:00:00Z", False),
        (["31"], "2024-04-30T00:00:00Z", False),  # never in a 30-day month
        (["31"], "2024-05-31T00:00:00Z", True),
        (["25:31"], "2024-02-29T00:00:00Z", True),  # clamped to the month's end
        (["-31:-29"], "2023-02-01T00:00:00Z", False),  # begins before a 28-day month does
        (["-31:-29"], "2024-01-02T00:00:00Z", True),
    ],
)
def test_days_of_month(days: list[str], instant: str, expected: bool) -> None:
    assert active(interval({"days_of_month": days}), utc(instant)) is expected


@pytest.mark.parametrize(
    "spec,instant,expected",
    [
        ({"months": ["june:august"]}, "2024-07-15T00:00:00Z", True),
        ({"months": ["june:august"]}, "2024-09-01T00:00:00Z", False),
        ({"months": ["12", "january"]}, "2025-01-10T00:00:00Z", True),
        ({"years": ["2024:2025"]}, "2025-12-31T23:59:59Z", True),
        ({"years": ["2024:2025"]}, "2026-01-01T00:00:00Z", False),
        ({"weekdays": ["saturday", "sunday"]}, "2024-03-09T00:00:00Z", True),
        ({"times": [{"start_time": "22:00", "end_time": "24:00"}]}, "2024-03-09T23:59:59Z", True),
        (
            {"times": [{"start_time": "00:00", "end_time": "06:00"}, {"start_time": "22:00", "end_time": "24:00"}]},
            "2024-03-09T12:00:00Z",
            False,
        ),
        ({}, "1999-01-01T00:00:00Z", True),  # a spec with no fields always matches
        ({"weekdays": ["monday"], "months": ["march"]}, "2024-03-11T00:00:00Z", True),  # fields AND
        ({"weekdays": ["monday"], "months": ["april"]}, "2024-03-11T00:00:00Z", False),
    ],
)
def test_fields_and_ranges(spec: dict[str, Any], instant: str, expected: bool) -> None:
    assert spec_contains(spec, utc(instant)) is expected


def test_specs_are_or_and_no_spec_is_never() -> None:
    weekend = interval({"weekdays": ["saturday"]}, {"weekdays": ["sunday"]})
    assert active(weekend, utc("2024-03-10T12:00:00Z")) and not active(weekend, utc("2024-03-11T12:00:00Z"))
    assert not active(interval(), utc("2024-03-10T12:00:00Z"))


def test_naive_datetimes_are_utc() -> None:
    ti = interval({"times": [{"start_time": "10:00", "end_time": "11:00"}]})
    assert active(ti, datetime(2024, 1, 1, 10, 30)) and not active(ti, datetime(2024, 1, 1, 11, 0))


def test_is_active_by_name() -> None:
    config = Config.model_validate(
        {
            "receivers": [{"name": "r"}],
            "route": {"receiver": "r"},
            "time_intervals": [SEOUL_MARKET.model_dump() | {"name": "market"}],
        }
    )
    assert is_active(config, "market", utc("2024-03-04T10:00:00+09:00"))
    assert not is_active(config, "market", utc("2024-03-04T18:00:00+09:00"))
    with pytest.raises(KeyError):
        is_active(config, "nope", utc("2024-03-04T10:00:00+09:00"))
    assert active_names(config.time_intervals, ["nope", "market"], utc("2024-03-04T10:00:00+09:00")) == ["market"]


@pytest.mark.parametrize("text,expected", [("00:00", 0), ("08:30", 510), ("23:59", 1439), ("24:00", 1440)])
def test_parse_time(text: str, expected: int) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["24:01", "25:00", "9:30", "12:60", "12", "aa:bb", "-1:00", ""])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_range_parsers() -> None:
    assert parse_weekday_range("MONDAY:friday") == (1, 5) and parse_weekday_range("sunday") == (0, 0)
    assert parse_month_range("June:8") == (6, 8)
    assert parse_day_of_month_range("-3:-1") == (-3, -1)
    for bad in ("funday", "saturday:sunday", "monday:tuesday:friday", "1"):
        with pytest.raises(ValueError):
            parse_weekday_range(bad)
    for bad in ("0", "32", "-32", "-1:5", "10:2", "x"):
        with pytest.raises(ValueError):
            parse_day_of_month_range(bad)
    for bad in ("13", "0", "june:march", "smarch"):
        with pytest.raises(ValueError):
            parse_month_range(bad)


def test_spec_errors_name_their_field() -> None:
    found = [
        (e.path, e.message)
        for e in spec_errors(
            {
                "times": [{"start_time": "10:00", "end_time": "09:00"}, {"start_time": "25:00", "end_time": "26:00"}],
                "weekdays": ["monday", "funday"],
                "location": "Mars/Olympus_Mons",
            }
        )
    ]
    paths = [p for p, _ in found]
    assert paths == ["times[0]", "times[1].start_time", "times[1].end_time", "location", "weekdays[1]"]


def issues(data: dict[str, Any]) -> list[str]:
    base = {"receivers": [{"name": "r"}], "route": {"receiver": "r"}}
    with pytest.raises(ConfigError) as err:
        parse_config(base | data)
    return [str(i) for i in err.value.issues]


def test_config_errors_name_the_key_path() -> None:
    found = issues(
        {
            "time_intervals": [
                {
                    "name": "ti",
                    "time_intervals": [
                        {"weekdays": ["monday", "funday"], "times": [{"start_time": "25:00", "end_time": "26:00"}]},
                        {
                            "times": [{"start_time": "17:00", "end_time": "09:00"}],
                            "location": "Mars/Olympus_Mons",
                            "days_of_month": ["0"],
                            "months": ["13"],
                            "years": ["2026:2024"],
                        },
                    ],
                }
            ]
        }
    )
    joined = "\n".join(found)
    assert "time_intervals[0].time_intervals[0].weekdays[1]: funday is not a valid weekday" in joined
    assert "time_intervals[0].time_intervals[0].times[0].start_time: couldn't parse timestamp 25:00" in joined
    assert "time_intervals[0].time_intervals[1].times[0]: start_time 17:00 must be before end_time 09:00" in joined
    assert "time_intervals[0].time_intervals[1].location: unknown time zone 'Mars/Olympus_Mons'" in joined
    assert "time_intervals[0].time_intervals[1].days_of_month[0]: 0 is not a valid day of the month" in joined
    assert "time_intervals[0].time_intervals[1].months[0]: 13 is not a valid month: out of range" in joined
    assert "time_intervals[0].time_intervals[1].years[0]: end year 2024 is before start year 2026" in joined


def test_duplicate_and_unknown_interval_names() -> None:
    found = issues(
        {
            "time_intervals": [{"name": "a"}, {"name": "a"}],
            "route": {"receiver": "r", "routes": [{"receiver": "r", "mute_time_intervals": ["b"]}]},
        }
    )
    assert "time_intervals[1].name: duplicate time interval 'a'" in found
    assert "route.routes[0].mute_time_intervals[0]: unknown time interval 'b'" in found


def test_unquoted_yaml_times_and_numbers_load(tmp_path: Path) -> None:
    # PyYAML reads `17:00` as the base-60 number 1020 and `2024` as an int; Alertmanager reads text.
    path = tmp_path / "tocsin.yaml"
    path.write_text(
        "receivers: [{name: r}]\nroute: {receiver: r}\ntime_intervals:\n  - name: office\n"
        "    time_intervals:\n      - times: [{start_time: 08:30, end_time: 17:00}]\n"
        "        days_of_month: [1, -1]\n        years: [2024]\n"
    )
    config = load_config_file(path)
    spec = config.time_intervals[0].time_intervals[0]
    assert (spec.times[0].start_time, spec.times[0].end_time) == ("08:30", "17:00")
    assert spec.days_of_month == ["1", "-1"] and spec.years == ["2024"]
    assert active(config.time_intervals[0], utc("2024-05-31T16:59:00Z"))
