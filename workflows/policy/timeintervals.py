"""Alertmanager ``time_intervals``: parsing, validation and "is it active now?".

Semantics follow Alertmanager's ``timeinterval`` package:

- A named interval is active when **any** of its specs contains the instant;
  an interval with no specs is never active; a spec with no fields always is.
- Within a spec, every field that is given must match (``times`` AND
  ``weekdays`` AND ``days_of_month`` AND ``months`` AND ``years``); each field
  matches when any of its ranges does.
- ``times``: ``start_time``/``end_time`` as ``HH:MM`` (two-digit hour,
  ``24:00`` allowed as an end), start inclusive, end exclusive, start < end.
  They compare against the wall clock in ``location``, so a range keeps its
  local meaning across DST changes (01:30 occurs twice on a fall-back day and
  matches both times; 02:30 does not occur on a spring-forward day).
- ``weekdays``: names (case-insensitive) or ranges ``monday:friday``; a range
  must not wrap (``saturday:sunday`` is an error, list both instead).
- ``days_of_month``: ``1``..``31`` or ``-1``..``-31`` (from the month end,
  ``-1`` = last day), ranges ``1:5``, ``-3:-1``; a negative start needs a
  negative end. Ranges are clamped to the month; a start beyond the month's
  length never matches (``31`` in April).
- ``months``: names or numbers ``1``..``12``, ranges ``june:august``.
- ``years``: ranges ``2024:2026``.
- ``location``: an IANA zone (``Europe/London``), ``UTC`` (the default) or
  ``Local`` (the host's zone).

One deliberate divergence: Alertmanager before PR #5447 computed a month's
length from elapsed hours, so in a spring-forward month with a DST
``location`` ``-1`` resolved to the 30th; Tocsin uses the calendar (the fix).

Pure: the instant is always passed in. Naive datetimes are taken as UTC.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "TimeIntervalError",
    "TimeSpecLike",
    "TimeIntervalLike",
    "HasTimeIntervals",
    "ParsedSpec",
    "parse_time",
    "parse_weekday_range",
    "parse_day_of_month_range",
    "parse_month_range",
    "parse_year_range",
    "load_location",
    "parse_spec",
    "spec_errors",
    "spec_contains",
    "active",
    "is_active",
    "active_names",
    "yaml_scalar",
    "yaml_time",
]

WEEKDAYS = {"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6}
MONTHS = {
    "january": 1,
    "february": 2,
    "march": 3,
    "april": 4,
    "may": 5,
    "june": 6,
    "july": 7,
    "august": 8,
    "september": 9,
    "october": 10,
    "november": 11,
    "december": 12,
}
_VALID_TIME = re.compile(r"(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00)\Z")
_INT = re.compile(r"[+-]?[0-9]+\Z")


class TimeSpecLike(Protocol):
    """What this module reads from one spec (``workflows.config.TimeSpec`` has it; a mapping may stand in)."""

    @property
    def times(self) -> Sequence[Any]: ...  # items with ``start_time`` and ``end_time``
    @property
    def weekdays(self) -> Sequence[str]: ...
    @property
    def days_of_month(self) -> Sequence[str]: ...
    @property
    def months(self) -> Sequence[str]: ...
    @property
    def years(self) -> Sequence[str]: ...
    @property
    def location(self) -> str | None: ...


class TimeIntervalLike(Protocol):
    """A named time interval (``workflows.config.TimeInterval``; a mapping may stand in)."""

    @property
    def name(self) -> str: ...
    @property
    def time_intervals(self) -> Sequence[Any]: ...  # TimeSpecLike or mappings


class HasTimeIntervals(Protocol):
    """Anything holding named time intervals (``workflows.config.Config``)."""

    @property
    def time_intervals(self) -> Sequence[TimeIntervalLike]: ...


class TimeIntervalError(ValueError):
    """A bad time interval spec; ``path`` is relative to the spec (``weekdays[1]``)."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def yaml_scalar(value: Any) -> Any:
    """YAML may read ``2024`` or ``-1`` as numbers; Alertmanager reads them as text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    return value


def yaml_time(value: Any) -> Any:
    """PyYAML reads an unquoted ``17:00`` as the base-60 integer 1020; turn it back into ``17:00``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        hours, minutes = divmod(value, 60)
        return f"{hours:02d}:{minutes:02d}"
    return value


def parse_time(text: str) -> int:
    """``HH:MM`` → minutes since midnight (``24:00`` → 1440)."""
    if not isinstance(text, str) or not _VALID_TIME.match(text):
        raise ValueError(f"couldn't parse timestamp {text}, invalid format (expected HH:MM, 00:00 to 24:00)")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _atoi(text: str, what: str) -> int:
    if not _INT.match(text):
        raise ValueError(f"{text} is not a valid {what}")
    return int(text)


def _split(text: str) -> tuple[str, str]:
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a string")
    text = text.lower()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 2:
            raise ValueError(f"couldn't parse range {text}, invalid format")
        return parts[0], parts[1]
    return text, text


def parse_weekday_range(text: str) -> tuple[int, int]:
    """``monday`` or ``monday:friday`` → (1, 5); 0 is Sunday."""
    begin_s, end_s = _split(text)
    for part in (begin_s, end_s):
        if part not in WEEKDAYS:
            raise ValueError(f"{part} is not a valid weekday")
    begin, end = WEEKDAYS[begin_s], WEEKDAYS[end_s]
    if begin > end:
        raise ValueError(f"start day cannot be after end day in {text} (ranges do not wrap; list both parts)")
    return begin, end


def parse_day_of_month_range(text: str) -> tuple[int, int]:
    """``1``, ``1:5``, ``-1``, ``-7:-1`` → (begin, end); negatives count from the month end."""
    begin_s, end_s = _split(text)
    begin, end = _atoi(begin_s, "day of the month"), _atoi(end_s, "day of the month")
    for value in (begin, end):
        if value == 0 or value < -31 or value > 31:
            raise ValueError(f"{value} is not a valid day of the month: out of range")
    if begin < 0 and end > 0:
        raise ValueError("end day must be negative if start day is negative")
    check_begin = 28 + begin if begin < 0 else begin
    check_end = 28 + end if end < 0 else end
    if check_begin > check_end:
        raise ValueError(f"end day {end} is always before start day {begin}")
    return begin, end


def parse_month_range(text: str) -> tuple[int, int]:
    """``march``, ``3``, ``june:august`` → (begin, end)."""
    begin_s, end_s = _split(text)

    def member(part: str) -> int:
        if part in MONTHS:
            return MONTHS[part]
        if not _INT.match(part):
            raise ValueError(f"{part} is not a valid month")
        value = int(part)
        if value < 1 or value > 12:
            raise ValueError(f"{part} is not a valid month: out of range")
        return value

    begin, end = member(begin_s), member(end_s)
    if begin > end:
        raise ValueError(f"end month {end_s} is before start month {begin_s}")
    return begin, end


def parse_year_range(text: str) -> tuple[int, int]:
    """``2024`` or ``2024:2026`` → (begin, end)."""
    begin_s, end_s = _split(text)
    begin, end = _atoi(begin_s, "year"), _atoi(end_s, "year")
    if begin > end:
        raise ValueError(f"end year {end} is before start year {begin}")
    return begin, end


def load_location(name: str | None) -> tzinfo | None:
    """An IANA zone; ``None``/``""``/``UTC`` → UTC; ``Local`` → the host's zone (returned as None-like marker)."""
    if name is None or name == "" or name == "UTC":
        return UTC
    if name == "Local":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as Europe/London)") from None


@dataclass(frozen=True)
class ParsedSpec:
    """One spec of a time interval, parsed. ``None`` fields are absent (match anything)."""

    times: tuple[tuple[int, int], ...] | None = None
    weekdays: tuple[tuple[int, int], ...] | None = None
    days_of_month: tuple[tuple[int, int], ...] | None = None
    months: tuple[tuple[int, int], ...] | None = None
    years: tuple[tuple[int, int], ...] | None = None
    location: tzinfo | None = UTC
    """None means the host's local zone (``location: Local``)."""


def _field(spec: Any, name: str) -> Any:
    if isinstance(spec, Mapping):
        return spec.get(name)
    return getattr(spec, name, None)


def _time_range(item: Any) -> tuple[Any, Any]:
    if isinstance(item, Mapping):
        return item.get("start_time"), item.get("end_time")
    return getattr(item, "start_time", None), getattr(item, "end_time", None)


def _parse_list(
    values: Sequence[Any] | None, key: str, parse: Any, errors: list[TimeIntervalError]
) -> tuple[tuple[int, int], ...] | None:
    if not values:
        return None
    out = []
    for i, raw in enumerate(values):
        try:
            out.append(parse(yaml_scalar(raw)))
        except ValueError as exc:
            errors.append(TimeIntervalError(f"{key}[{i}]", str(exc)))
    return tuple(out)


def _collect(spec: Any) -> tuple[ParsedSpec, list[TimeIntervalError]]:
    errors: list[TimeIntervalError] = []
    times: list[tuple[int, int]] = []
    for i, item in enumerate(_field(spec, "times") or []):
        start_raw, end_raw = (yaml_time(v) for v in _time_range(item))
        if start_raw in (None, "") or end_raw in (None, ""):
            errors.append(TimeIntervalError(f"times[{i}]", "both start_time and end_time must be provided"))
            continue
        bounds = []
        for key, raw in (("start_time", start_raw), ("end_time", end_raw)):
            try:
                bounds.append(parse_time(raw))
            except ValueError as exc:
                errors.append(TimeIntervalError(f"times[{i}].{key}", str(exc)))
        if len(bounds) == 2:
            if bounds[0] >= bounds[1]:
                errors.append(TimeIntervalError(f"times[{i}]", "start_time must be before end_time"))
            else:
                times.append((bounds[0], bounds[1]))
    location: tzinfo | None = UTC
    try:
        location = load_location(_field(spec, "location"))
    except ValueError as exc:
        errors.append(TimeIntervalError("location", str(exc)))
    parsed = ParsedSpec(
        times=tuple(times) if _field(spec, "times") else None,
        weekdays=_parse_list(_field(spec, "weekdays"), "weekdays", parse_weekday_range, errors),
        days_of_month=_parse_list(_field(spec, "days_of_month"), "days_of_month", parse_day_of_month_range, errors),
        months=_parse_list(_field(spec, "months"), "months", parse_month_range, errors),
        years=_parse_list(_field(spec, "years"), "years", parse_year_range, errors),
        location=location,
    )
    return parsed, errors


def spec_errors(spec: TimeSpecLike | Mapping[str, Any]) -> list[TimeIntervalError]:
    """Every problem in one spec, each with its path relative to the spec."""
    return _collect(spec)[1]


def parse_spec(spec: TimeSpecLike | Mapping[str, Any] | ParsedSpec) -> ParsedSpec:
    """Parse one spec (a config ``TimeSpec`` or a plain mapping).

    Raises:
        TimeIntervalError: the first problem found.
    """
    if isinstance(spec, ParsedSpec):
        return spec
    parsed, errors = _collect(spec)
    if errors:
        raise errors[0]
    return parsed


def _local(at: datetime, location: tzinfo | None) -> datetime:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(location) if location is not None else at.astimezone()


def _in(value: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(lo <= value <= hi for lo, hi in ranges)


def spec_contains(spec: ParsedSpec | TimeSpecLike | Mapping[str, Any], at: datetime) -> bool:
    """Whether one spec contains the instant ``at``."""
    parsed = parse_spec(spec)
    t = _local(at, parsed.location)
    if parsed.times is not None:
        minute = t.hour * 60 + t.minute
        if not any(start <= minute < end for start, end in parsed.times):
            return False
    if parsed.days_of_month is not None:
        days = calendar.monthrange(t.year, t.month)[1]
        hit = False
        for lo, hi in parsed.days_of_month:
            begin = days + lo + 1 if lo < 0 else lo
            end = days + hi + 1 if hi < 0 else hi
            if begin > days:
                continue
            begin = max(-days, min(begin, days))
            end = max(-days, min(end, days))
            if begin <= t.day <= end:
                hit = True
                break
        if not hit:
            return False
    if parsed.months is not None and not _in(t.month, parsed.months):
        return False
    if parsed.weekdays is not None and not _in((t.weekday() + 1) % 7, parsed.weekdays):
        return False
    if parsed.years is not None and not _in(t.year, parsed.years):
        return False
    return True


def active(interval: TimeIntervalLike | Mapping[str, Any], at: datetime) -> bool:
    """Whether a named time interval is active at ``at`` (any of its specs contains it)."""
    specs = _field(interval, "time_intervals") or []
    return any(spec_contains(spec, at) for spec in specs)


def is_active(config: HasTimeIntervals, name: str, at: datetime) -> bool:
    """Whether the config's time interval ``name`` is active at ``at``.

    Raises:
        KeyError: no time interval has that name.
    """
    for interval in config.time_intervals:
        if interval.name == name:
            return active(interval, at)
    raise KeyError(name)


def active_names(
    intervals: Iterable[TimeIntervalLike | Mapping[str, Any]], names: Iterable[str], at: datetime
) -> list[str]:
    """The names, among ``names`` and in that order, of intervals active at ``at`` (unknown: never)."""
    by_name = {_field(i, "name"): i for i in intervals}
    return [n for n in names if n in by_name and active(by_name[n], at)]
