"""An incident's deliveries run beside its escalation loop, in order per receiver and channel.

Mixed into ``IncidentWorkflow`` for runs with the ``incident-concurrent-deliveries`` patch
(older runs await each delivery, as they did). Every notification (a rung, an announcement, an
escalation note) is a background task, so a channel that is down never holds up the next rung,
an acknowledgement's announcement or the resolve notice on the other channels (ARCHITECTURE
principle 8); each send still gives up after its receiver's ``give_up_after`` and is
dead-lettered (``workflows.delivery``).

* **Lanes** keep order where it matters: the sends of one receiver on one channel go one after
  the other (the main message before its edits and thread replies, PagerDuty's trigger before
  its acknowledge and resolve), and each reads the incident's ``refs`` when its turn comes, so
  an edit finds the message the rung posted. Different channels and receivers never wait for
  each other.
* **Coalescing**: a newer "alerts changed" announcement supersedes the older ones still waiting
  or still queued: a send still waiting for its turn is skipped, a send already scheduled is
  cancelled (Temporal drops it from the channel's queue). What was superseded is recorded as
  ``skipped``, never dead-lettered.
* **Dead letters** of the incident's deliveries are kept in its state (the last
  ``RECENT_DEAD_LETTERS``, and a count).
* Nothing is dropped across continue-as-new or at the end: the run continues as new, or
  completes, only once every delivery has finished or given up (see ``IncidentWorkflow``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.incident.models import IncidentState
from workflows.models import DeliveryRecord
from workflows.notify.models import DeadLetter

__all__ = ["CONCURRENT_DELIVERIES_PATCH", "RECENT_DEAD_LETTERS", "UPDATED", "Lanes", "IncidentDeliveries"]

CONCURRENT_DELIVERIES_PATCH = "incident-concurrent-deliveries"
RECENT_DEAD_LETTERS = 20
UPDATED = "updated"
"""The tag of "alerts changed" sends: a newer one supersedes the older."""
SUPERSEDED = "superseded by a newer update"


class _Entry:
    """One send on a lane (a plain class: a dataclass costs every new run ~0.4 ms to create)."""

    __slots__ = ("tag", "superseded", "task")

    def __init__(self, tag: str | None) -> None:
        self.tag = tag
        self.superseded = False
        self.task: asyncio.Task[DeliveryRecord] | None = None


class Lanes:
    """One lane per (receiver, channel): each send starts once the earlier ones on its lane are done."""

    def __init__(self) -> None:
        self._lanes: dict[tuple[str, str], list[_Entry]] = {}

    def view(self, tag: str | None = None, on_sent: Callable[[DeliveryRecord], None] | None = None) -> LaneView:
        """A :class:`workflows.delivery.Sequencer` for one delivery: its sends are tagged ``tag``, and
        ``on_sent`` sees each record before the next send on its lane starts."""
        return LaneView(self, tag, on_sent)

    def start(
        self,
        receiver: str,
        channel: str,
        send: Callable[[], Awaitable[DeliveryRecord]],
        tag: str | None,
        on_sent: Callable[[DeliveryRecord], None] | None,
    ) -> asyncio.Task[DeliveryRecord]:
        lane = (receiver, channel)
        waiting = [e for e in self._lanes.get(lane, []) if e.task is not None and not e.task.done()]
        earlier = [e.task for e in waiting if e.task is not None]
        entry = _Entry(tag)
        entry.task = asyncio.create_task(self._run(entry, earlier, send, on_sent, lane))
        self._lanes[lane] = [*waiting, entry]
        return entry.task

    async def _run(
        self,
        entry: _Entry,
        earlier: list[asyncio.Task[DeliveryRecord]],
        send: Callable[[], Awaitable[DeliveryRecord]],
        on_sent: Callable[[DeliveryRecord], None] | None,
        lane: tuple[str, str],
    ) -> DeliveryRecord:
        skipped = DeliveryRecord(channel=lane[1], receiver=lane[0], outcome="skipped", error=SUPERSEDED)
        try:
            if earlier:
                await workflow.wait(earlier)
            if entry.superseded:
                return skipped
            record = await send()
        except (asyncio.CancelledError, ActivityError):
            if entry.superseded:
                return skipped
            raise
        if on_sent is not None:
            on_sent(record)
        return record

    def supersede(self, tag: str) -> int:
        """Skip or cancel every unfinished send tagged ``tag``; how many there were."""
        count = 0
        for entries in self._lanes.values():
            for entry in entries:
                if entry.tag == tag and not entry.superseded and entry.task is not None and not entry.task.done():
                    entry.superseded = True
                    entry.task.cancel()
                    count += 1
        return count


class LaneView:
    """The :class:`workflows.delivery.Sequencer` of one delivery (see :meth:`Lanes.view`)."""

    def __init__(self, lanes: Lanes, tag: str | None, on_sent: Callable[[DeliveryRecord], None] | None) -> None:
        self._lanes, self._tag, self._on_sent = lanes, tag, on_sent

    def start(
        self, receiver: str, channel: str, send: Callable[[], Awaitable[DeliveryRecord]]
    ) -> asyncio.Task[DeliveryRecord]:
        return self._lanes.start(receiver, channel, send, self._tag, self._on_sent)


def keep_ref(refs: dict[str, str]) -> Callable[[DeliveryRecord], None]:
    """Remember where a main message landed (the first one per channel), for later edits and replies."""

    def keep(record: DeliveryRecord) -> None:
        if record.outcome == "delivered" and record.message_id:
            refs.setdefault(record.channel, record.message_id)

    return keep


class IncidentDeliveries:
    """Mixed into ``IncidentWorkflow``: deliveries as background tasks, their dead letters in the state."""

    _st: IncidentState
    _lanes: Lanes
    _deliveries: list[asyncio.Task[None]]

    def _spawn(self, job: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``job`` (one delivery and its bookkeeping) beside the escalation loop."""
        task = asyncio.create_task(job)
        self._deliveries.append(task)
        return task

    def _in_flight(self) -> int:
        """Deliveries still running (finished ones are reaped, re-raising what a bug raised)."""
        for task in [t for t in self._deliveries if t.done()]:
            self._deliveries.remove(task)
            task.result()
        return len(self._deliveries)

    async def _deliveries_done(self) -> None:
        """Wait until every delivery has finished or given up (each is bounded by ``give_up_after``)."""
        if self._in_flight():
            await workflow.wait_condition(lambda: not self._in_flight())

    def _dead_lettered(self, letters: list[DeadLetter]) -> None:
        """Keep the last ``RECENT_DEAD_LETTERS`` in the state, and count them all."""
        if letters:
            self._st.dead_letters = [*self._st.dead_letters, *letters][-RECENT_DEAD_LETTERS:]
            self._st.dead_letter_count += len(letters)
