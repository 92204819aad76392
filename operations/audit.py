"""``tocsin audit export``: who did what, when, where — from the audit journal, and Temporal before it.

For what is older than the journal's first record, the trail is rebuilt from Temporal's
visibility (which workflows: ``TocsinKind`` deployment, incident, pipeline,
and the silences store) and their histories (what happened: starts, signals and updates with the
identity they carry, status changes, the end). Each line is a JSON object::

    {"time": ..., "workflow_id": ..., "kind": ..., "actor": ..., "identity": ..., "action": ...,
     "detail": ..., "prev_sha256": ...}

``actor`` is the name; ``identity`` is how it was known, ``{name, verified, method, credential,
via}`` (``credential`` is a token id, an OIDC subject or a Slack user id, never a secret), or null
for Tocsin's own records and for actions recorded before identities were carried. Refusals by
authorization never reach Temporal: those this process made since it started (the gateway's,
for ``/api/v1``) are included as ``kind: "refusal"`` records when there is no journal; the gateway
appends every refusal to the journal (:func:`refusal_sink`).

``prev_sha256`` is the SHA-256 of the previous line's exact text (64 zeros
for the first), so editing, dropping or reordering a line breaks the chain
(:func:`verify_chain`).

Since the audit journal (:mod:`operations.journal`), the export reads the journal and rebuilds from
the histories only what is older than the journal's first record. A line from the journal keeps the
format above (``workflow_id`` is the record's object, ``detail`` its structured detail) and carries
the journal's own seal as ``journal: {seq, key, prev_sha256, sha256}``, where ``sha256`` is the
SHA-256 of the canonical JSON of ``{seq, time, actor: identity, action, object: workflow_id, detail,
key, prev_sha256}``: :func:`verify_lines` checks the lines' chain, each journal line's seal, and that
journal lines with consecutive ``seq`` link to each other. So an export file verifies alone, filtered
or not, and each journal line is the very record sealed when the event happened.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecution
from temporalio.converter import decode_typed_search_attributes

from operations.auth import Refusal, recent_refusals
from operations.context import Context, temporal_errors
from operations.journal import Journal, JournalRecord, seal
from workflows import search
from workflows.audit import JournalEntry

__all__ = [
    "GENESIS",
    "AUDIT_KINDS",
    "audit_query",
    "audit_records",
    "refusal_records",
    "chain_lines",
    "export_audit",
    "journal_line_record",
    "refusal_entry",
    "refusal_sink",
    "verify_chain",
    "verify_lines",
    "Broken",
]

GENESIS = "0" * 64
_log = logging.getLogger("tocsin.audit")
AUDIT_KINDS = ("deployment", "incident", "pipeline", "silences")
STORES = ("silences",)
"""Kinds that are stores: only the human actions on them (``add``, ``expire``…) are records, not their
start or carrying on (the first ``silence add`` starts the store; that start is no one's action)."""
_CLOSE = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "cancelled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued_as_new",
}
_ACTOR_KEYS = ("by", "actor", "author", "user")
_DETAIL_SKIP = set(_ACTOR_KEYS) | {"at", "sent_at", "tests", "coverage", "security", "state", "pending"}


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def audit_query(since: datetime | None = None, service: str | None = None, env: str | None = None) -> str:
    """The visibility query for the workflows an export covers."""
    return search.query(AUDIT_KINDS, service=service, env=env, closed_since=since)


def _first(values: list[Any]) -> Any:
    return values[0] if values else None


_IDENTITY_KEYS = ("name", "verified", "method", "credential", "via")


def _identity(arg: Any) -> dict[str, Any] | None:
    """The ``actor`` an argument carries (``{name, verified, method, credential, via}``), if any."""
    actor = arg.get("actor") if isinstance(arg, dict) else None
    if isinstance(actor, dict) and isinstance(actor.get("name"), str):
        return {key: actor.get(key) for key in _IDENTITY_KEYS}
    return None


def _actor(arg: Any) -> str | None:
    if isinstance(arg, dict):
        for key in _ACTOR_KEYS:
            if isinstance(arg.get(key), str) and arg[key]:
                return arg[key]
    return None


def _scalars(value: Any) -> bool:
    """A non-empty list of plain values (a silence's matchers), shown joined."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, (str, int, float)) for v in value)


def _detail(arg: Any, lists: bool = False) -> str:
    """``k=v, …`` of an argument's plain fields (with ``lists``, lists of plain values too, space-joined)."""
    if isinstance(arg, dict):
        items = [
            f"{k}={' '.join(str(x) for x in v) if isinstance(v, list) else v}"
            for k, v in arg.items()
            if k not in _DETAIL_SKIP
            and v not in (None, "", [], {})
            and (not isinstance(v, (dict, list)) or (lists and _scalars(v)))
        ]
        return ", ".join(items)[:1000]
    if arg is None:
        return ""
    return str(arg)[:500]


async def _workflow_records(client: Client, execution: WorkflowExecution) -> list[dict[str, Any]]:
    kind = execution.typed_search_attributes.get(search.KIND) or ""
    wid = execution.id
    decode = client.data_converter.payload_converter.from_payloads
    history = await client.get_workflow_handle(wid, run_id=execution.run_id).fetch_history()
    records: list[dict[str, Any]] = []
    updates: dict[str, tuple[str, str, Any]] = {}

    def add(event: Any, actor: str, action: str, detail: str, arg: Any = None) -> None:
        records.append(
            {
                "time": _iso(event.event_time.ToDatetime(tzinfo=UTC)),
                "workflow_id": wid,
                "kind": kind,
                "actor": actor,
                "identity": _identity(arg),
                "action": action,
                "detail": detail,
                "_order": event.event_id,
            }
        )

    store = kind in STORES
    for event in history.events:
        et = event.event_type
        if et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            started = event.workflow_execution_started_event_attributes
            if started.continued_execution_run_id or store:
                continue  # the same entity carrying on, or a store opening: not a human action
            arg = _first(decode(list(started.input.payloads))) if started.HasField("input") else None
            add(
                event,
                _actor(arg) or started.identity or "unknown",
                "started",
                f"{started.workflow_type.name}" + (f": {_detail(arg)}" if _detail(arg) else ""),
                arg,
            )
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signaled = event.workflow_execution_signaled_event_attributes
            if signaled.signal_name.startswith("lock_"):
                continue  # lock bookkeeping between workflows
            arg = _first(decode(list(signaled.input.payloads))) if signaled.HasField("input") else None
            add(event, _actor(arg) or signaled.identity or "unknown", signaled.signal_name, _detail(arg), arg)
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            accepted = event.workflow_execution_update_accepted_event_attributes
            request = accepted.accepted_request
            arg = _first(decode(list(request.input.args.payloads))) if request.input.HasField("args") else None
            updates[request.meta.update_id] = (
                request.input.name,
                _actor(arg) or request.meta.identity or "unknown",
                arg,
            )
        elif et == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            completed = event.workflow_execution_update_completed_event_attributes
            name, actor, arg = updates.pop(completed.meta.update_id, ("update", "unknown", None))
            if completed.outcome.HasField("failure"):
                outcome = f"refused: {completed.outcome.failure.message}"
            else:
                outcome = "accepted"
            detail = _detail(arg, lists=store)
            add(event, actor, name, outcome + (f" ({detail})" if detail else ""), arg)
        elif et == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            upsert = event.upsert_workflow_search_attributes_event_attributes
            status = decode_typed_search_attributes(upsert.search_attributes).get(search.STATUS)
            if status:
                add(event, "tocsin", "status", status)
        elif et in _CLOSE and not store:
            add(event, "tocsin", _CLOSE[et], "")
    return records


async def audit_records(
    client: Client, since: datetime | None = None, service: str | None = None, env: str | None = None
) -> list[dict[str, Any]]:
    """Every audit record, oldest first (not yet chained).

    Args:
        client: a Temporal client with the pydantic data converter.
        since: leave out events before this instant.
        service: only this service's workflows (``TocsinService``).
        env: only this environment's workflows (``TocsinEnvironment``).
    """
    records: list[dict[str, Any]] = []
    async for execution in client.list_workflows(audit_query(since, service, env)):
        records.extend(await _workflow_records(client, execution))
    if service is None and env is None:
        records.extend(refusal_records())
    if since is not None:
        cutoff = _iso(since)
        records = [r for r in records if r["time"] >= cutoff]
    records.sort(key=lambda r: (r["time"], r["workflow_id"], r["_order"]))
    for record in records:
        del record["_order"]
    return records


def refusal_records() -> list[dict[str, Any]]:
    """Audit records of the refusals this process made (:func:`operations.auth.recent_refusals`)."""
    return [
        {
            "time": _iso(refusal.at),
            "workflow_id": "",
            "kind": "refusal",
            "actor": refusal.actor.name,
            "identity": refusal.actor.model_dump(include=set(_IDENTITY_KEYS)),
            "action": "refused",
            "detail": f"{refusal.role}: {refusal.reason}"[:1000],
            "_order": 0,
        }
        for refusal in recent_refusals()
    ]


def chain_lines(records: Iterable[dict[str, Any]]) -> list[str]:
    """JSON lines, each carrying ``prev_sha256`` of the line before it."""
    lines: list[str] = []
    prev = GENESIS
    for record in records:
        line = json.dumps({**record, "prev_sha256": prev}, ensure_ascii=False, separators=(",", ":"))
        lines.append(line)
        prev = hashlib.sha256(line.encode("utf-8")).hexdigest()
    return lines


_KINDS = {"deploy": "deployment", "deploy-lock": "deployment", "incident": "incident", "pipeline": "pipeline"}


def journal_line_record(record: JournalRecord) -> dict[str, Any]:
    """A journal record as an export record (before :func:`chain_lines` adds ``prev_sha256``)."""
    prefix = record.object.split("/", 1)[0]
    kind = _KINDS.get(prefix, prefix) if prefix else ("refusal" if record.action == "refused" else "tocsin")
    return {
        "time": record.time,
        "workflow_id": record.object,
        "kind": kind,
        "actor": (record.actor or {}).get("name") or "tocsin",
        "identity": record.actor,
        "action": record.action,
        "detail": record.detail,
        "journal": {
            "seq": record.seq,
            "key": record.key,
            "prev_sha256": record.prev_sha256,
            "sha256": record.sha256,
        },
    }


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _kept(record: dict[str, Any], until: datetime | None, actor: str | None, action: str | None) -> bool:
    return (
        (until is None or _when(record["time"]) < until)
        and (actor is None or record["actor"] == actor)
        and (action is None or record["action"] == action)
    )


async def export_audit(
    ctx: Context,
    since: datetime | None = None,
    service: str | None = None,
    env: str | None = None,
    *,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    journal: Journal | None = None,
) -> list[str]:
    """The export: chained JSON lines (no trailing newlines), oldest first.

    With a journal, its records (filtered) follow what the histories hold from before the journal's
    first record; without one, everything comes from the histories. ``since`` is inclusive, ``until``
    exclusive; ``actor`` is the actor's name; ``action`` a journal action (or a history action name).
    """
    first = await journal.first() if journal is not None else None
    older: list[dict[str, Any]] = []
    cutoff = _when(first.time) if first is not None else None
    if cutoff is None or since is None or since < cutoff:
        with temporal_errors():
            older = await audit_records(ctx.client, since, service, env)
        if first is not None:
            older = [r for r in older if r["kind"] != "refusal"]  # the journal holds this process's refusals
        bound = min(until, cutoff) if until is not None and cutoff is not None else (until or cutoff)
        older = [r for r in older if _kept(r, bound, actor, action)]
    newer: list[dict[str, Any]] = []
    if journal is not None:
        found = journal.records(since=since, until=until, service=service, env=env, actor=actor, action=action)
        newer = [journal_line_record(r) async for r in found]
    return chain_lines([*older, *newer])


@dataclass(frozen=True)
class Broken:
    """The first broken line of an export: its 1-based number, the journal ``seq`` it carries, and why."""

    line: int
    reason: str
    seq: int | None = None


def _sealed_body(record: dict[str, Any]) -> dict[str, Any]:
    sealed = record["journal"]
    return {
        "seq": sealed["seq"],
        "time": record["time"],
        "actor": record.get("identity"),
        "action": record["action"],
        "object": record["workflow_id"],
        "detail": record["detail"],
        "key": sealed["key"],
        "prev_sha256": sealed["prev_sha256"],
    }


def _journal_problem(record: dict[str, Any], last: dict[str, Any] | None) -> str | None:
    sealed = record["journal"]
    if seal(_sealed_body(record)) != sealed.get("sha256"):
        return "the record does not match its journal sha256 (changed after sealing)"
    if last is not None and sealed["seq"] == last["seq"] + 1 and sealed["prev_sha256"] != last["sha256"]:
        return "journal prev_sha256 is not the previous record's sha256"
    if last is not None and sealed["seq"] <= last["seq"]:
        return "journal seq out of order"
    return None


def verify_lines(lines: Iterable[str]) -> Broken | None:
    """Check an export: each line's ``prev_sha256``, and each journal line's seal and link.

    Returns:
        None when intact, else the first broken line.
    """
    prev, last = GENESIS, None
    for number, line in enumerate((ln for ln in lines if ln.strip()), start=1):
        line = line.rstrip("\n")
        try:
            record = json.loads(line)
        except ValueError:
            return Broken(number, "not JSON")
        sealed = record.get("journal") if isinstance(record, dict) else None
        seq = sealed.get("seq") if isinstance(sealed, dict) else None
        if not isinstance(record, dict) or record.get("prev_sha256") != prev:
            return Broken(number, "prev_sha256 is not the sha256 of the line before", seq)
        if sealed is not None:
            try:
                problem = _journal_problem(record, last)
            except (KeyError, TypeError):
                problem = "malformed journal seal"
            if problem:
                return Broken(number, problem, seq)
            last = sealed
        prev = hashlib.sha256(line.encode("utf-8")).hexdigest()
    return None


def verify_chain(lines: Iterable[str]) -> int | None:
    """Check a chain (:func:`verify_lines`).

    Returns:
        None when intact, else the 1-based number of the first broken line.
    """
    broken = verify_lines(lines)
    return broken.line if broken is not None else None


def refusal_entry(refusal: Refusal) -> JournalEntry:
    """The journal entry of a refusal (key ``refusal/<uuid>``)."""
    return JournalEntry(
        key=f"refusal/{uuid4()}",
        time=refusal.at,
        actor=refusal.actor,
        action="refused",
        object="",
        detail={"role": refusal.role, "reason": refusal.reason[:500], "kind": refusal.kind},
    )


def refusal_sink(journal: Journal, pending: set[asyncio.Task[Any]]) -> Callable[[Refusal], None]:
    """A sink for :func:`operations.auth.set_refusal_sink` appending each refusal to ``journal``.

    The append runs as a task on the running loop (kept in ``pending`` until done, so the gateway can
    wait for them at stop); a failed append is logged.
    """

    async def append(entry: JournalEntry) -> None:
        try:
            await journal.append([entry])
        except Exception:
            _log.exception("refusal %s not journaled", entry.key)

    def sink(refusal: Refusal) -> None:
        task = asyncio.get_running_loop().create_task(append(refusal_entry(refusal)))
        pending.add(task)
        task.add_done_callback(pending.discard)

    return sink
