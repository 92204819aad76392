"""How an incident speaks: a rung's notification, and announcements on the main message and its thread.

Mixed into ``IncidentWorkflow``. The main message is built from what the incident keeps in
detail, with counts over all its alerts (``workflows.incident.bounded.main_message``), so it
stays small whatever the group's size.

Runs with ``incident-concurrent-deliveries`` (``workflows.incident.deliveries``) start each
notification as a background delivery, ordered per receiver and channel, and return at once;
a rung's page is sent with priority ``critical`` (critical incidents) or ``page``, everything
else (announcements, escalation notes) as ``update``, and a newer "alerts changed"
supersedes an older one still waiting. Older runs await each delivery, as they did.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from workflows.config import Config
from workflows.delivery import deliver
from workflows.incident.bounded import main_message
from workflows.incident.deliveries import UPDATED, IncidentDeliveries, keep_ref
from workflows.models import DeliveryRecord, Message, SendPriority
from workflows.notify.models import DeadLetter
from workflows.policy.incidents import Rung

__all__ = ["IncidentChat"]

ANNOUNCED = {"acknowledged": "Acknowledged by {}", "resolved": "Resolved by {}", UPDATED: "Alerts changed"}
ACTIONS = {"acknowledged": "acknowledge", "resolved": "resolve"}


class IncidentChat(IncidentDeliveries):
    """Mixed into ``IncidentWorkflow``: the notifications an incident sends."""

    _concurrent: bool
    """This run delivers in the background (decided at the start of the run)."""
    _first_page: asyncio.Task[None] | None

    if TYPE_CHECKING:  # provided by IncidentWorkflow

        def _log(self, actor: str, action: str, detail: str = "") -> None: ...

    def _first_page_in_flight(self) -> bool:
        """The journal's hold: the first page was started and has not finished (it gives up in bounded time)."""
        return self._first_page is not None and not self._first_page.done()

    def _message(self, note: str = "") -> Message:
        return main_message(self._st, note)

    def _logged_rung(self, rung: Rung, records: list[DeliveryRecord]) -> None:
        outcome = ", ".join(f"{r.channel}:{r.outcome}" for r in records) or "no channels"
        self._log("tocsin", f"notified L{rung.level}", f"{rung.receiver} ({outcome})")

    def _escalation_note(self, rung: Rung, message: Message) -> Message:
        return Message(
            title=f"Escalated to L{rung.level}: {rung.receiver}",
            severity=message.severity,
            source=self._st.id,
            labels=message.labels,
        )

    async def _notify_rung(self, config: Config, rung: Rung) -> None:
        rcv = rung.receiver
        step = f"rung-{rung.index}"
        self._st.level = max(self._st.level, rung.level)
        message = self._message()
        if self._concurrent:
            self._page(config, rung, message, step)
            return
        refs = self._st.refs.get(rcv)
        records = await deliver(config, rcv, message, step, action="trigger", dedup_key=self._st.id, refs=refs)
        fresh = {r.channel: r.message_id for r in records if r.outcome == "delivered" and r.message_id}
        self._st.refs[rcv] = {**fresh, **(refs or {})}
        self._logged_rung(rung, records)
        others = [r for r in self._st.refs if r != rcv]
        if rung.level > 1 and others:
            note = self._escalation_note(rung, message)
            await asyncio.gather(
                *(
                    deliver(
                        config,
                        other,
                        note,
                        f"{step}-thread-{other}",
                        refs=self._st.refs[other],
                        thread=True,
                        only_types=("slack",),
                    )
                    for other in others
                )
            )

    def _page(self, config: Config, rung: Rung, message: Message, step: str) -> None:
        """Start a rung's page (and the escalation notes in the other receivers' threads) in the background."""
        rcv = rung.receiver
        refs = self._st.refs.setdefault(rcv, {})
        priority: SendPriority = "critical" if message.severity == "critical" else "page"

        async def page() -> None:
            letters: list[DeadLetter] = []
            records = await deliver(
                config,
                rcv,
                message,
                step,
                action="trigger",
                dedup_key=self._st.id,
                refs=refs,
                priority=priority,
                sequencer=self._lanes.view(on_sent=keep_ref(refs)),
                dead_letters=letters,
            )
            self._logged_rung(rung, records)
            self._dead_lettered(letters)

        task = self._spawn(page())
        if rung.index == 0 and self._first_page is None:
            self._first_page = task
        if rung.level > 1:
            note = self._escalation_note(rung, message)
            for other, other_refs in self._st.refs.items():
                if other != rcv:
                    thread = f"{step}-thread-{other}"
                    self._spawn(self._background(config, other, note, thread, other_refs, thread=True))

    async def _background(
        self,
        config: Config,
        rcv: str,
        message: Message,
        step: str,
        refs: dict[str, str],
        *,
        thread: bool = False,
        action: str = "notify",
        tag: str | None = None,
    ) -> None:
        """One update-priority delivery on the incident's lanes; its dead letters go to the state."""
        letters: list[DeadLetter] = []
        await deliver(
            config,
            rcv,
            message,
            step,
            action=action,
            dedup_key=None if thread else self._st.id,
            refs=refs,
            thread=thread,
            only_types=("slack",) if thread else None,
            priority="update",
            sequencer=self._lanes.view(tag, on_sent=None if thread else keep_ref(refs)),
            dead_letters=letters,
        )
        self._dead_lettered(letters)

    async def _announce(self, config: Config, event: str, actor: str, note: str) -> None:
        """Tell every notified receiver: edit the main message, reply in its thread, mirror to PagerDuty."""
        self._st.updates_sent += 1
        n = self._st.updates_sent
        action = ACTIONS.get(event, "trigger")
        main = self._message()
        text = ANNOUNCED[event].format(actor) if event in ANNOUNCED else event
        reply = Message(title=text, text=note, severity=main.severity, source=self._st.id, labels=main.labels)
        if self._concurrent:
            tag = UPDATED if event == UPDATED else None
            if tag is not None:
                self._lanes.supersede(tag)
            for rcv, refs in self._st.refs.items():
                self._spawn(self._background(config, rcv, main, f"{event}-{n}", refs, action=action, tag=tag))
                self._spawn(self._background(config, rcv, reply, f"{event}-{n}-thread", refs, thread=True, tag=tag))
            return
        jobs = []
        for rcv, refs in self._st.refs.items():
            jobs.append(deliver(config, rcv, main, f"{event}-{n}", action=action, dedup_key=self._st.id, refs=refs))
            if refs:
                jobs.append(
                    deliver(config, rcv, reply, f"{event}-{n}-thread", refs=refs, thread=True, only_types=("slack",))
                )
        await asyncio.gather(*jobs)
