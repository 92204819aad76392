"""The muting stage of an incident's first notification: silences, inhibition, time intervals, digests.

One local activity (``mute_verdict``) returns one verdict; the incident holds
(never drops) while silenced, inhibited or muted by time, and a digest
receiver's incident waits for the digest. A new incident on a route with no
group_wait gets its first verdict with its config snapshot (``first_look``, one
local activity before the first page). Incidents whose history predates the
one-verdict stage (no ``one-muting-stage`` patch marker) replay the two reads
they made then (``check_suppression``, then ``route_state``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.config import Config
from workflows.incident.models import (
    AlertBatch,
    IncidentState,
    MuteQuery,
    MuteVerdict,
    RouteState,
    RouteStateQuery,
    Suppression,
    SuppressionQuery,
)
from workflows.timer import wait_until

with workflow.unsafe.imports_passed_through():
    from activities.incidents import IncidentActivities

__all__ = ["MutingStage", "MUTING_STAGE_PATCH", "SUPPRESSION_RECHECK"]

MUTING_STAGE_PATCH = "one-muting-stage"
SUPPRESSION_RECHECK = timedelta(minutes=1)
ACTIVITY_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))


class MutingStage:
    """Mixed into ``IncidentWorkflow``: everything between group_wait and the first notification."""

    _st: IncidentState
    _pending: list[AlertBatch]
    _events: list[tuple[str, str, str]]
    _first_verdict: tuple[MuteVerdict, list[dict[str, str]]] | None = None
    """A new incident's verdict from ``first_look`` and the alerts it judged (``incident-first-look`` runs)."""

    @property
    def st(self) -> IncidentState:
        return self._st

    if TYPE_CHECKING:  # provided by IncidentWorkflow

        def _log(self, actor: str, action: str, detail: str = "") -> None: ...
        def _set_status(self, status: str) -> None: ...
        def _apply_pending(self) -> bool: ...
        def _closed(self, why: str) -> bool: ...
        async def _continue_if_long(self, changed: bool = False) -> None: ...

    async def _recheck(self) -> None:
        await wait_until(lambda: bool(self._pending) or self.st.status == "resolved", SUPPRESSION_RECHECK)
        self._apply_pending()
        await self._continue_if_long()

    async def _first_look(self) -> Config:
        """The config snapshot, and the mute verdict when the route waits no group_wait (kept for the muting stage)."""
        firing = [a.labels for a in self.st.firing()]
        look = await workflow.execute_local_activity_method(
            IncidentActivities.first_look,
            self._mute_query(firing),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=ACTIVITY_RETRY,
        )
        if look.verdict is not None:
            self._first_verdict = (look.verdict, firing)
        return look.config

    async def _muting_stage(self) -> bool:
        """Hold while silenced, inhibited or muted by time; hand a digest receiver's incident to the digest.

        Returns:
            True when the incident goes on to notify; False when it ended first.
        """
        why = "suppressed"
        while self.st.status != "resolved":
            firing = [a.labels for a in self.st.firing()]
            verdict = self._taken_first_verdict(firing)
            if verdict is None:
                verdict = await workflow.execute_local_activity_method(
                    IncidentActivities.mute_verdict,
                    self._mute_query(firing),
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=ACTIVITY_RETRY,
                )
            if verdict.suppressed():
                why = "suppressed"
                self._suppressed(verdict.silenced_by, verdict.inhibited_by)
            elif verdict.digest:
                self.st.suppressed_by = []
                return await self._held_for_digest()
            elif verdict.muted_by:
                why = "muted by time"
                self.st.suppressed_by = []
                self._muted(verdict.muted_by)
            else:
                self.st.suppressed_by = []
                return True
            await self._recheck()
        return self._closed(f"resolved while {why}: recorded, nothing was sent")

    def _mute_query(self, firing: list[dict[str, str]]) -> MuteQuery:
        """What a verdict judges: these firing alerts of this incident's route, now."""
        return MuteQuery(incident=self.st.id, route_path=self.st.route_path, alerts=firing, at=workflow.now())

    def _taken_first_verdict(self, firing: list[dict[str, str]]) -> MuteVerdict | None:
        """The verdict ``first_look`` brought (once), when it judged the alerts firing now."""
        kept, self._first_verdict = self._first_verdict, None
        if kept is None or kept[1] != firing:
            return None
        return kept[0]

    def _suppressed(self, silenced_by: list[str], inhibited_by: list[str]) -> None:
        if self.st.suppressed_by != silenced_by + inhibited_by:
            self.st.suppressed_by = silenced_by + inhibited_by
            self._log("tocsin", "silenced" if silenced_by else "inhibited", ", ".join(self.st.suppressed_by))
        self._set_status("silenced" if silenced_by else "inhibited")

    def _muted(self, muted_by: list[str]) -> None:
        if self.st.status != "muted":
            self._log("tocsin", "muted", ", ".join(muted_by))
            self._set_status("muted")

    async def _held_for_digest(self) -> bool:
        if not self.st.held_for_digest:  # (a run continued as new comes back here already held)
            self.st.held_for_digest = True
            self._log("tocsin", "held for digest", self.st.receiver)
        self._set_status("held")
        while self.st.digest is None:
            await workflow.wait_condition(lambda: self.st.digest is not None or bool(self._pending))
            self._apply_pending()  # a resolution while held is recorded; the digest still lists it
            await self._continue_if_long()
        self._events.clear()
        if self.st.status != "resolved":
            await self._quiet_until_resolved()
        return False

    async def _legacy_muting(self) -> bool:
        """The two-read stage of histories recorded before ``one-muting-stage``."""
        if not await self._wait_while_suppressed():
            return self._closed("resolved while suppressed: recorded, nothing was sent")
        self.st.suppressed_by = []
        if not await self._hold():
            if self.st.status != "resolved" and self.st.held_for_digest:
                await self._quiet_until_resolved()
            return False
        return True

    async def _wait_while_suppressed(self) -> bool:
        """Silences and inhibitions hold notifications, never drop them. False: resolved while held."""
        while self.st.status != "resolved":
            held = await self._suppression()
            if not held.any():
                break
            if self.st.suppressed_by != held.silenced_by + held.inhibited_by:
                self.st.suppressed_by = held.silenced_by + held.inhibited_by
                self._log("tocsin", "silenced" if held.silenced_by else "inhibited", ", ".join(self.st.suppressed_by))
            self._set_status("silenced" if held.silenced_by else "inhibited")
            await self._recheck()
        return self.st.status != "resolved"

    async def _quiet_until_resolved(self) -> None:
        """Carried by the digest and still firing: stay open, quietly, until resolved."""
        self._set_status("notified")
        await workflow.wait_condition(lambda: self.st.status == "resolved" or bool(self._pending))
        while self.st.status != "resolved":
            self._apply_pending()
            await self._continue_if_long()
            if self.st.status != "resolved":
                await workflow.wait_condition(lambda: self.st.status == "resolved" or bool(self._pending))
        self._events.clear()

    async def _suppression(self) -> Suppression:
        # A local activity: a read, on the hot path of every first notification.
        return await workflow.execute_local_activity_method(
            IncidentActivities.check_suppression,
            SuppressionQuery(incident=self.st.id, alerts=[a.labels for a in self.st.firing()], at=workflow.now()),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=ACTIVITY_RETRY,
        )

    async def _route_state(self) -> RouteState:
        return await workflow.execute_local_activity_method(
            IncidentActivities.route_state,
            RouteStateQuery(route_path=self.st.route_path, at=workflow.now()),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=ACTIVITY_RETRY,
        )

    async def _hold(self) -> bool:
        """Time-based routing: wait while the route is muted; hold for a digest receiver.

        Returns:
            True when the incident should go on to notify; False when it ended
            (resolved while muted) or the digest already carried it.
        """
        while True:
            route = await self._route_state()
            if route.digest:
                self.st.held_for_digest = True
                self._log("tocsin", "held for digest", self.st.receiver)
                self._set_status("held")
                while self.st.digest is None:
                    await workflow.wait_condition(lambda: self.st.digest is not None or bool(self._pending))
                    self._apply_pending()  # a resolution while held is recorded; the digest still lists it
                self._events.clear()
                return False
            if not route.muted_by:
                return True
            if self.st.status != "muted":
                self._log("tocsin", "muted", ", ".join(route.muted_by))
                self._set_status("muted")
            await wait_until(lambda: bool(self._pending) or self.st.status == "resolved", SUPPRESSION_RECHECK)
            self._apply_pending()
            if self.st.status == "resolved":
                self._events.clear()
                self._log("tocsin", "closed", "resolved while muted by time: recorded, nothing was sent")
                return False
