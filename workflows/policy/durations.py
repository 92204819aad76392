"""Prometheus-style durations: ``30s``, ``5m``, ``1h30m``, ``4h``, ``1d``, ``1w``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

__all__ = ["parse_duration", "format_duration", "check_duration", "DurationError"]

_UNITS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


class DurationError(ValueError):
    """Raised for a string that is not a duration."""


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Parse a Prometheus duration string (units ms, s, m, h, d, w, y).

    Args:
        value: ``"1h30m"``, a number of seconds, or a timedelta.

    Returns:
        The duration.

    Raises:
        DurationError: the value is empty, negative or has an unknown unit.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise DurationError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise DurationError(f"negative duration: {value!r}")
        return timedelta(seconds=value)
    text = str(value).strip()
    if text == "0":
        return timedelta(0)
    pos = 0
    total = 0.0
    last_rank = -1
    order = ["y", "w", "d", "h", "m", "s", "ms"]
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        rank = order.index(match.group(2))
        if rank <= last_rank:
            raise DurationError(f"not a duration: {value!r} (units out of order)")
        last_rank = rank
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise DurationError(f"not a duration: {value!r} (expected e.g. 30s, 5m, 4h, 1d)")
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    """Format a timedelta the way Prometheus prints durations (``1h30m``)."""
    ms = int(round(delta.total_seconds() * 1000))
    if ms == 0:
        return "0s"
    out = []
    for unit, size in (("w", 604800000), ("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def check_duration(value: Any) -> str | None:
    """A pydantic field validator: ``value`` as text when it is a duration; ``None`` passes through.

    Raises:
        ValueError: the value is not a duration (pydantic reports the message).
    """
    if value is None:
        return None
    try:
        parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    return str(value)
