"""How an incident speaks: a rung's notification, and announcements on the main message and its thread.

Mixed into ``IncidentWorkflow``. The main message is built from what the incident keeps in
detail, with counts over all its alerts (``workflows.incident.bounded.main_message``), so it
stays small whatever the group's size.
"""

from __future__ import annotations

import asyncio

from workflows.config import Config
from workflows.delivery import deliver
from workflows.incident.bounded import main_message
from workflows.incident.models import IncidentState
from workflows.models import Message
from workflows.policy.incidents import Rung

__all__ = ["IncidentChat"]


class IncidentChat:
    """Mixed into ``IncidentWorkflow``: the notifications an incident sends."""

    _st: IncidentState

    @property
    def st(self) -> IncidentState:
        return self._st

    def _log(self, actor: str, action: str, detail: str = "") -> None:
        raise NotImplementedError

    def _message(self, note: str = "") -> Message:
        return main_message(self.st, note)

    async def _notify_rung(self, config: Config, rung: Rung) -> None:
        rcv = rung.receiver
        step = f"rung-{rung.index}"
        self.st.level = max(self.st.level, rung.level)
        message = self._message()
        refs = self.st.refs.get(rcv)
        records = await deliver(config, rcv, message, step, action="trigger", dedup_key=self.st.id, refs=refs)
        fresh = {r.channel: r.message_id for r in records if r.outcome == "delivered" and r.message_id}
        self.st.refs[rcv] = {**fresh, **(refs or {})}
        outcome = ", ".join(f"{r.channel}:{r.outcome}" for r in records) or "no channels"
        self._log("tocsin", f"notified L{rung.level}", f"{rcv} ({outcome})")
        others = [r for r in self.st.refs if r != rcv]
        if rung.level > 1 and others:
            note = Message(
                title=f"Escalated to L{rung.level}: {rcv}",
                severity=message.severity,
                source=self.st.id,
                labels=message.labels,
            )
            await asyncio.gather(
                *(
                    deliver(
                        config,
                        other,
                        note,
                        f"{step}-thread-{other}",
                        refs=self.st.refs[other],
                        thread=True,
                        only_types=("slack",),
                    )
                    for other in others
                )
            )

    async def _announce(self, config: Config, event: str, actor: str, note: str) -> None:
        """Tell every notified receiver: edit the main message, reply in its thread, mirror to PagerDuty."""
        self.st.updates_sent += 1
        n = self.st.updates_sent
        action = {"acknowledged": "acknowledge", "resolved": "resolve"}.get(event, "trigger")
        main = self._message()
        text = {
            "acknowledged": f"Acknowledged by {actor}",
            "resolved": f"Resolved by {actor}",
            "updated": "Alerts changed",
        }.get(event, event)
        reply = Message(title=text, text=note, severity=main.severity, source=self.st.id, labels=main.labels)
        jobs = []
        for rcv, refs in self.st.refs.items():
            jobs.append(
                deliver(
                    config,
                    rcv,
                    main,
                    f"{event}-{n}",
                    action=action,
                    dedup_key=self.st.id,
                    refs=refs,
                )
            )
            if refs:
                jobs.append(
                    deliver(config, rcv, reply, f"{event}-{n}-thread", refs=refs, thread=True, only_types=("slack",))
                )
        await asyncio.gather(*jobs)
