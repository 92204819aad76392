"""What the long-lived entity flows share (pipelines, failure patterns, silences).

* :class:`StateJournal`: the audit journal's record counter lives in the flow's state model
  (``journal_seq``), so it is carried across continue-as-new with everything else;
* :class:`Entity`: deliveries that run beside the event loop, the continue-as-new test, and the
  bounded record of dead letters.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow

from workflows.notify.models import DeadLetter

__all__ = ["StateJournal", "Entity", "RECENT_DEAD_LETTERS"]

RECENT_DEAD_LETTERS = 50
"""Dead letters kept in an entity's state (``dead_letter_count`` counts them all)."""


class StateJournal:
    """``journal_seq`` (what :class:`workflows.journal.Journal` numbers records by) kept in ``self._state``."""

    _state: Any

    @property
    def journal_seq(self) -> int:
        return int(self._state.journal_seq)

    @journal_seq.setter
    def journal_seq(self, value: int) -> None:
        self._state.journal_seq = value


class Entity(StateJournal):
    """An entity flow whose state has ``journal_seq``, ``dead_letters`` and ``dead_letter_count``, and whose
    deliveries run as tasks in ``self._deliveries``."""

    _deliveries: list[asyncio.Task[None]]

    def _should_continue(self, limit: int) -> bool:
        """Temporal suggests continuing as new, or the history holds ``limit`` events."""
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit

    def _in_flight(self) -> int:
        """Deliveries still running (finished ones are reaped, re-raising what a bug raised)."""
        for task in [t for t in self._deliveries if t.done()]:
            self._deliveries.remove(task)
            task.result()
        return len(self._deliveries)

    def _dead_lettered(self, letters: list[DeadLetter]) -> None:
        """Keep the most recent dead letters (bounded) and count them all."""
        if letters:
            self._state.dead_letters = [*self._state.dead_letters, *letters][-RECENT_DEAD_LETTERS:]
            self._state.dead_letter_count += len(letters)
