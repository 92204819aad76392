"""Silences (maintenance windows), with Alertmanager's rules.

- A silence holds matchers (Alertmanager syntax, one or more per string); it
  silences an alert when **all** of them match its labels.
- It is active from ``starts_at`` through ``ends_at`` inclusive (Alertmanager:
  pending before the start, expired only *after* the end); expiring a silence
  sets ``ends_at`` to now.
- It needs at least one matcher, and at least one matcher that does not
  match the empty string — otherwise it would silence every alert.
- Durations (``amtool silence add --duration``) are Prometheus durations and
  must be greater than zero.

Pure: the instant is always passed in; naive datetimes are taken as UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from workflows.policy.durations import DurationError, parse_duration
from workflows.policy.matchers import Matcher, MatcherError, matches_all, parse_matchers

__all__ = [
    "Silence",
    "SilenceState",
    "silence_matchers",
    "validate_silence",
    "silenced",
    "parse_silence_duration",
]

SilenceState = Literal["pending", "active", "expired"]


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def silence_matchers(texts: Iterable[str]) -> list[Matcher]:
    """Parse a silence's matcher strings and apply Alertmanager's silence rules.

    Raises:
        MatcherError: a string does not parse, there is no matcher, or every
            matcher matches the empty string.
    """
    found: list[Matcher] = []
    for i, text in enumerate(texts):
        try:
            found.extend(parse_matchers(text, allow_empty=True))
        except MatcherError as exc:
            raise MatcherError(f"matchers[{i}]: {exc}") from None
    if not found:
        raise MatcherError("at least one matcher is required")
    if all(m.matches_value("") for m in found):
        raise MatcherError("at least one matcher must not match the empty string")
    return found


class Silence(BaseModel):
    """One silence."""

    id: str
    matchers: list[str] = Field(default_factory=list)
    """Alertmanager matcher strings, e.g. ``service="payments"`` or ``{env="prod", team=~"db|web"}``."""
    starts_at: datetime
    ends_at: datetime
    created_by: str = ""
    comment: str = ""

    def state(self, at: datetime) -> SilenceState:
        """``pending`` before ``starts_at``, ``expired`` after ``ends_at``, else ``active``."""
        now = _utc(at)
        if now < _utc(self.starts_at):
            return "pending"
        if now > _utc(self.ends_at):
            return "expired"
        return "active"

    def is_active(self, at: datetime) -> bool:
        """Whether the silence is in effect at ``at``."""
        return self.state(at) == "active"

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the silence's matchers match ``labels`` (an invalid silence matches nothing)."""
        try:
            found = silence_matchers(self.matchers)
        except MatcherError:
            return False
        return matches_all(found, labels)

    def expired_at(self, at: datetime) -> Silence:
        """A copy expired at ``at``, as Alertmanager expires: ``ends_at = at`` (a pending one also starts at ``at``)."""
        copy = self.model_copy()
        if self.state(at) == "pending":
            copy.starts_at = _utc(at)
        if self.state(at) != "expired":
            copy.ends_at = _utc(at)
        return copy


def validate_silence(silence: Silence) -> list[str]:
    """Alertmanager's checks for a new silence; each message names its field."""
    problems: list[str] = []
    if not silence.id:
        problems.append("id: missing")
    try:
        silence_matchers(silence.matchers)
    except MatcherError as exc:
        message = str(exc)
        problems.append(message if message.startswith("matchers[") else f"matchers: {message}")
    if _utc(silence.ends_at) < _utc(silence.starts_at):
        problems.append("ends_at: must not be before starts_at")
    return problems


def silenced(labels: Mapping[str, str], silences: Iterable[Silence | Mapping[str, object]], at: datetime) -> list[str]:
    """Ids of the silences active at ``at`` whose matchers all match ``labels``, in input order."""
    out: list[str] = []
    for raw in silences:
        silence = raw if isinstance(raw, Silence) else Silence.model_validate(raw)
        if silence.is_active(at) and silence.matches(labels):
            out.append(silence.id)
    return out


def parse_silence_duration(text: str) -> timedelta:
    """A silence's length: a Prometheus duration (``2h``, ``1d``, ``1h30m``) greater than zero.

    Raises:
        DurationError: not a duration, or not positive.
    """
    value = parse_duration(text)
    if value <= timedelta(0):
        raise DurationError(f"silence duration must be greater than 0: {text!r}")
    return value
