"""``tocsin audit export``: who did what, when, where — from Temporal itself.

Nothing here keeps its own records: the trail is rebuilt from Temporal's
visibility (which workflows: ``TocsinKind`` deployment, incident, pipeline,
and the silences store) and their histories (what happened: starts, signals and updates with the
identity they carry, status changes, the end). Each line is a JSON object::

    {"time": ..., "workflow_id": ..., "kind": ..., "actor": ..., "identity": ..., "action": ...,
     "detail": ..., "prev_sha256": ...}

``actor`` is the name; ``identity`` is how it was known, ``{name, verified, method, credential,
via}`` (``credential`` is a token id, an OIDC subject or a Slack user id, never a secret), or null
for Tocsin's own records and for actions recorded before identities were carried. Refusals by
authorization never reach Temporal: those this process made since it started (the gateway's,
for ``/api/v1``) are included as ``kind: "refusal"`` records; the persistent audit journal will
keep them for good.

``prev_sha256`` is the SHA-256 of the previous line's exact text (64 zeros
for the first), so editing, dropping or reordering a line breaks the chain
(:func:`verify_chain`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecution
from temporalio.converter import decode_typed_search_attributes

from operations.auth import recent_refusals
from operations.context import Context, temporal_errors
from workflows import search

__all__ = [
    "GENESIS",
    "AUDIT_KINDS",
    "audit_query",
    "audit_records",
    "refusal_records",
    "chain_lines",
    "export_audit",
    "verify_chain",
]

GENESIS = "0" * 64
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


async def export_audit(
    ctx: Context, since: datetime | None = None, service: str | None = None, env: str | None = None
) -> list[str]:
    """The export: chained JSON lines (no trailing newlines), oldest first."""
    with temporal_errors():
        return chain_lines(await audit_records(ctx.client, since, service, env))


def verify_chain(lines: Iterable[str]) -> int | None:
    """Check a chain.

    Returns:
        None when intact, else the 1-based number of the first line whose
        ``prev_sha256`` does not match (or that is not JSON).
    """
    prev = GENESIS
    for number, line in enumerate((ln for ln in lines if ln.strip()), start=1):
        line = line.rstrip("\n")
        try:
            record = json.loads(line)
        except ValueError:
            return number
        if record.get("prev_sha256") != prev:
            return number
        prev = hashlib.sha256(line.encode("utf-8")).hexdigest()
    return None
