"""Buttons and dialogs: the ten ``tocsin_*`` action ids of the messages Tocsin sends, and Reject's modal.

Each button's ``value`` is the workflow id it acts on (``incident/…``, ``deploy/<service>/<env>/<version>``).
Incidents: ``tocsin_ack``, ``tocsin_resolve``, ``tocsin_escalate``, ``tocsin_snooze`` (one hour);
approval requests: ``tocsin_approve``, ``tocsin_reject`` (opens a modal asking why; its submission
rejects); deployments: ``tocsin_pause``, ``tocsin_resume``, ``tocsin_promote``, ``tocsin_abort``
(rolls back). Each calls the same operation as the CLI and the API, which authorizes the actor.
A refused click gets the reason ephemerally and the message is left alone; an accepted one an
ephemeral confirmation (the workflows edit their messages in place).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from operations import Actor, Context
from operations.deployments import Control, approve, control, reject
from operations.incidents import acknowledge, escalate, resolve, snooze
from starters.slack.blocks import REASON_ACTION, REASON_BLOCK, REJECT_CALLBACK

__all__ = ["Click", "BUTTONS", "REJECT_ACTION", "SNOOZE_FOR", "clicks_of", "act", "Submission", "submission_of"]

REJECT_ACTION = "tocsin_reject"
SNOOZE_FOR = timedelta(hours=1)


@dataclass(frozen=True)
class Click:
    """One button click of a ``block_actions`` payload."""

    action_id: str
    value: str
    """The workflow id the button acts on."""
    action_ts: str
    user_id: str
    username: str
    response_url: str
    trigger_id: str
    channel: str = ""


def _str(data: Any, key: str) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def clicks_of(payload: dict[str, Any]) -> list[Click]:
    """The clicks on Tocsin's buttons in a ``block_actions`` payload (other actions, such as link buttons, left out)."""
    user = payload.get("user") or {}
    channel = payload.get("channel") or {}
    found = []
    for action in payload.get("actions") or []:
        action_id = _str(action, "action_id")
        if action_id not in BUTTONS and action_id != REJECT_ACTION:
            continue
        found.append(
            Click(
                action_id=action_id,
                value=_str(action, "value").strip(),
                action_ts=_str(action, "action_ts"),
                user_id=_str(user, "id"),
                username=_str(user, "username") or _str(user, "name"),
                response_url=_str(payload, "response_url"),
                trigger_id=_str(payload, "trigger_id"),
                channel=_str(channel, "id"),
            )
        )
    return found


Button = Callable[[Context, Actor, str], Awaitable[str]]


async def _ack(ctx: Context, actor: Actor, wid: str) -> str:
    result = await acknowledge(ctx, actor, wid)
    return f"Acknowledged `{wid}` ({result.status}): its escalation stopped."


async def _resolve(ctx: Context, actor: Actor, wid: str) -> str:
    result = await resolve(ctx, actor, wid)
    return f"Resolved `{wid}` ({result.status})."


async def _escalate(ctx: Context, actor: Actor, wid: str) -> str:
    result = await escalate(ctx, actor, wid)
    return f"Escalated `{wid}` now ({result.status})."


async def _snooze(ctx: Context, actor: Actor, wid: str) -> str:
    result = await snooze(ctx, actor, wid, SNOOZE_FOR)
    return f"Snoozed `{wid}` for 1h ({result.status}): the ladder resumes where it was."


async def _approve(ctx: Context, actor: Actor, wid: str) -> str:
    result = await approve(ctx, actor, wid)
    return f"Approved `{wid}` ({result.approvals}/{result.required}). {result.message}".strip()


def _control(what: Control, done: str) -> Button:
    async def steer(ctx: Context, actor: Actor, wid: str) -> str:
        await control(ctx, actor, wid, what, f"{what} from Slack")
        return f"{done} `{wid}`."

    return steer


BUTTONS: dict[str, Button] = {
    "tocsin_ack": _ack,
    "tocsin_resolve": _resolve,
    "tocsin_escalate": _escalate,
    "tocsin_snooze": _snooze,
    "tocsin_approve": _approve,
    "tocsin_pause": _control("pause", "Paused"),
    "tocsin_resume": _control("resume", "Resumed"),
    "tocsin_promote": _control("promote", "Promoted"),
    "tocsin_abort": _control("abort", "Aborted (rolling back)"),
}
"""The buttons that act at once (``tocsin_reject`` first asks why)."""


async def act(ctx: Context, actor: Actor, click: Click) -> str:
    """Run the click's operation; the confirmation (operation errors propagate)."""
    return await BUTTONS[click.action_id](ctx, actor, click.value)


@dataclass(frozen=True)
class Submission:
    """The submitted reason dialog of a Reject click."""

    view_id: str
    user_id: str
    username: str
    deployment: str
    reason: str
    response_url: str


def submission_of(payload: dict[str, Any]) -> Submission | None:
    """The Reject dialog's submission in a ``view_submission`` payload (None: not Tocsin's dialog)."""
    view = payload.get("view") or {}
    if not isinstance(view, dict) or view.get("callback_id") != REJECT_CALLBACK:
        return None
    try:
        meta = json.loads(_str(view, "private_metadata") or "{}")
    except ValueError:
        meta = {}
    values = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
    user = payload.get("user") or {}
    return Submission(
        view_id=_str(view, "id"),
        user_id=_str(user, "id"),
        username=_str(user, "username") or _str(user, "name"),
        deployment=_str(meta, "deployment"),
        reason=(_str(values.get(REASON_ACTION) or {}, "value")).strip(),
        response_url=_str(meta, "response_url"),
    )


async def reject_submitted(ctx: Context, actor: Actor, submission: Submission) -> str:
    """Reject with the dialog's reason; the confirmation (operation errors propagate)."""
    await reject(ctx, actor, submission.deployment, submission.reason)
    return f"Rejected `{submission.deployment}`: {submission.reason}"
