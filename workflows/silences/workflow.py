"""``SilencesWorkflow``: maintenance windows, stored durably in Temporal (no database).

One entity workflow, ``silences/<namespace-wide name>`` (default ``silences/default``),
holds every silence. ``add`` and ``expire`` are updates with identity; each
silence expires on time (a timer), and its creator is told. Runs with the ``audit-journal``
patch journal ``silence.added`` and ``silence.expired`` (early, with who expired it, or on time)
as they happen (``workflows.journal``).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows import search
from workflows.delivery import deliver, load_config
from workflows.entity import StateJournal
from workflows.identity import Actor
from workflows.journal import Journal
from workflows.models import Message
from workflows.policy.durations import DurationError, parse_duration
from workflows.policy.matchers import MatcherError
from workflows.policy.routing import receivers_for
from workflows.policy.silences import silence_matchers
from workflows.silences.models import AddSilence, ExpireSilence, SilenceRecord, SilencesState

__all__ = ["SilencesWorkflow"]

KEEP_EXPIRED = 200


@workflow.defn(name="SilencesWorkflow")
class SilencesWorkflow(StateJournal):
    """The durable store of silences."""

    def __init__(self) -> None:
        self._state = SilencesState()
        self._told: set[str] = set()
        self._changed = False
        self._journal = Journal(self)

    def _journal_silence(self, action: str, record: SilenceRecord, actor: Actor | None, **detail: object) -> None:
        info = {"id": record.id, "matchers": record.matchers, "ends_at": record.ends_at.isoformat()}
        self._journal.record(action, actor=actor, detail={**info, **detail})

    @workflow.query(name="list")
    def list(self) -> SilencesState:
        """All silences."""
        return self._state

    @workflow.update(name="add")
    async def add(self, request: AddSilence) -> SilenceRecord:
        """Add a silence starting now."""
        now = workflow.now()
        self._state.seq += 1
        record = SilenceRecord(
            id=f"s{self._state.seq}-{workflow.uuid4().hex[:8]}",
            matchers=request.matchers,
            starts_at=now,
            ends_at=now + parse_duration(request.duration),
            created_by=request.by,
            comment=request.comment,
            created_by_actor=request.actor,
        )
        self._state.silences.insert(0, record)
        self._changed = True
        self._journal_silence("silence.added", record, request.actor, by=request.by, comment=request.comment)
        return record

    @add.validator
    def _validate_add(self, request: AddSilence) -> None:
        try:
            silence_matchers(request.matchers)  # Alertmanager's rules: one matcher must not match ""
        except MatcherError as exc:
            raise ValueError(f"--matcher: {exc}") from None
        try:
            if parse_duration(request.duration) <= timedelta(0):
                raise ValueError("--duration: must be positive")
        except DurationError as exc:
            raise ValueError(f"--duration: {exc}") from None
        if not request.by.strip():
            raise ValueError("--by: required")
        if not request.comment.strip():
            raise ValueError("--comment: required")

    @workflow.update(name="expire")
    async def expire(self, request: ExpireSilence) -> SilenceRecord:
        """End a silence now."""
        now = workflow.now()
        for record in self._state.silences:
            if record.id == request.id:
                record.ends_at = now
                record.expired_by = request.by
                record.expired_by_actor = request.actor
                self._changed = True
                self._journal_silence("silence.expired", record, request.actor, by=request.by, early=True)
                return record
        raise ValueError(f"unknown silence {request.id}")  # pragma: no cover - validator refuses first

    @expire.validator
    def _validate_expire(self, request: ExpireSilence) -> None:
        now = workflow.now()
        for record in self._state.silences:
            if record.id == request.id:
                if not record.active(now):
                    raise ValueError(f"silence {request.id} is not active (ended {record.ends_at.isoformat()})")
                return
        raise ValueError(f"unknown silence {request.id}")

    async def _tell_expired(self, record: SilenceRecord) -> None:
        config = await load_config()
        who = f" early by {record.expired_by}" if record.expired_by else ""
        message = Message(
            title=f"Silence {record.id} expired{who}",
            text=f"Created by {record.created_by}: {record.comment}\nMatchers: {', '.join(record.matchers)}",
            severity="info",
            source=workflow.info().workflow_id,
            labels={"kind": "silence", "alertname": "SilenceExpired", "user": record.created_by, "severity": "info"},
        )

        for rcv in receivers_for(config.route, message.labels):
            await deliver(config, rcv, message, f"expired-{record.id}/{rcv}")

    @workflow.run
    async def run(self, state: SilencesState | None = None) -> None:
        if state is not None:
            self._state = state
        self._told = {r.id for r in self._state.silences if r.ends_at <= workflow.now()}
        workflow.upsert_search_attributes([search.KIND.value_set("silences")])
        self._journal.start()
        while True:
            now = workflow.now()
            for record in self._state.silences:
                if record.id not in self._told and record.ends_at <= now:
                    self._told.add(record.id)
                    if record.expired_by is None:
                        self._journal_silence("silence.expired", record, None, by="tocsin", early=False)
                    await self._tell_expired(record)
            pending = [r.ends_at for r in self._state.silences if r.id not in self._told]
            timeout = max(min(pending) - workflow.now(), timedelta(0)) if pending else None
            self._changed = False
            try:
                await workflow.wait_condition(lambda: self._changed, timeout=timeout)
            except TimeoutError:
                pass
            expired = [r for r in self._state.silences if r.ends_at <= workflow.now() and r.id in self._told]
            if len(expired) > KEEP_EXPIRED:
                drop = {r.id for r in expired[KEEP_EXPIRED:]}
                self._state.silences = [r for r in self._state.silences if r.id not in drop]
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._journal.busy())
                workflow.continue_as_new(self._state)
