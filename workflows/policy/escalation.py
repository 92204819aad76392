"""Escalation ladders: the ``escalation_policies`` schema and the schedule it yields. Pure.

A policy is a list of levels, each with a receiver and an ``after`` measured
from the incident's first notification, plus ``repeat`` (how many more times
the last level is paged) and ``ack_timeout`` (re-escalate an acknowledged
incident still open after this long). :func:`ladder` turns a policy and a start
instant into the timed :class:`Rung` list a workflow waits through.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import overload

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workflows.policy.durations import check_duration, parse_duration

__all__ = ["EscalationLevel", "EscalationPolicy", "DEFAULT_LADDER", "Rung", "Repeats", "ladder"]

_STRICT = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)


class EscalationLevel(BaseModel):
    """One rung of an escalation ladder."""

    model_config = _STRICT

    after: str
    """Time since the incident was first notified."""
    receiver: str

    _v_after = field_validator("after")(lambda cls, v: check_duration(v))


class EscalationPolicy(BaseModel):
    """A named escalation ladder (L1..Ln)."""

    model_config = _STRICT

    levels: list[EscalationLevel] = Field(default_factory=list)
    repeat: int = 0
    """How many times to repeat the last level after the ladder ends."""
    ack_timeout: str | None = None
    """Re-escalate an acknowledged incident still open after this long."""

    _v_ack = field_validator("ack_timeout")(lambda cls, v: check_duration(v))


DEFAULT_LADDER = EscalationPolicy.model_validate(
    {
        "levels": [
            {"after": "0m", "receiver": "critical"},
            {"after": "5m", "receiver": "senior"},
            {"after": "10m", "receiver": "cto"},
            {"after": "15m", "receiver": "emergency"},
        ]
    }
)
"""The seed's L1..L4 (0/5/10/15 min); the default config names these receivers."""


class Rung:
    """One scheduled escalation step."""

    __slots__ = ("index", "level", "receiver", "due")

    def __init__(self, index: int, level: int, receiver: str, due: datetime):
        self.index = index
        """Position in the schedule (0-based), unique per rung, used in idempotency keys."""
        self.level = level
        """The ladder level, L1 = 1 (repeats of the last level keep its number)."""
        self.receiver = receiver
        self.due = due

    def __repr__(self) -> str:
        return f"Rung(L{self.level} #{self.index} {self.receiver} at {self.due.isoformat()})"


class Repeats(Sequence[Rung]):
    """A receiver notified at ``start``, then every ``every``, ``count`` times: rungs made when read.

    The schedule of a route without a ladder. It answers ``len`` and indexing like the list it
    replaces, without building a thousand rungs each time an incident looks at its schedule.
    """

    def __init__(self, receiver: str, start: datetime, every: timedelta, count: int) -> None:
        self.receiver, self.start, self.every, self.times = receiver, start, every, count

    def __len__(self) -> int:
        return self.times

    @overload
    def __getitem__(self, i: int) -> Rung: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Rung]: ...

    def __getitem__(self, i: int | slice) -> Rung | Sequence[Rung]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self.times))]
        k = i + self.times if i < 0 else i
        if not 0 <= k < self.times:
            raise IndexError(i)
        return Rung(k, 1, self.receiver, self.start + self.every * k)


def ladder(policy: EscalationPolicy, start: datetime) -> list[Rung]:
    """The full schedule of an escalation policy from ``start``.

    Args:
        policy: levels (``after`` measured from the first notification) and ``repeat``.
        start: when the incident was first notified (market hours shorten waits by attaching a
            policy with shorter ``after`` values on a route active in market hours).

    Returns:
        Rungs in time order; repeats of the last level follow it, spaced like the
        last two levels (or 5 minutes when there is only one level).
    """
    rungs: list[Rung] = []
    afters = [parse_duration(level.after) for level in policy.levels]
    for i, (level, after) in enumerate(zip(policy.levels, afters, strict=True)):
        rungs.append(Rung(i, i + 1, level.receiver, start + after))
    if policy.levels and policy.repeat > 0:
        gap = afters[-1] - afters[-2] if len(afters) > 1 else timedelta(minutes=5)
        gap = gap if gap > timedelta(0) else timedelta(minutes=5)
        for r in range(policy.repeat):
            rungs.append(
                Rung(len(rungs), len(policy.levels), policy.levels[-1].receiver, start + afters[-1] + gap * (r + 1))
            )
    return rungs
