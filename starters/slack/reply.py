"""Who a Slack user is, and talking back to Slack: ``response_url`` replies and ``views.open``.

A Slack user id maps to the Tocsin user whose ``users[].slack`` it is; the actor is then
``{name, verified: true, method: slack, credential: <user id>, via: slack}`` and each operation
authorizes it (roles, four eyes). An unmapped user is refused before any operation runs: the refusal
names the missing mapping, is logged on ``tocsin.audit`` with the Slack user id and counted
(``tocsin_refusals{reason="unmapped"}``).

Replies go to the request's ``response_url`` (valid 30 minutes, for five replies): ``ephemeral``
(only the requester sees it) or ``in_channel``; replies to a button never replace the message
(the workflows edit their own messages in place).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from pydantic import ValidationError
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError

from operations.auth import refuse
from operations.errors import BadInput, Conflict, NotFound, Refused, Unavailable
from starters.slack.verify import SlackSettings
from workflows.config import Config
from workflows.identity import Actor

__all__ = [
    "slack_actor",
    "unmapped",
    "ephemeral",
    "in_channel",
    "post_response",
    "open_view",
    "failure_text",
    "TIMEOUT",
]

log = logging.getLogger("tocsin.slack")

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def slack_actor(config: Config, user_id: str) -> Actor | None:
    """The verified actor of a Slack user id, or None when no ``users[].slack`` is that id."""
    user = next((u for u in config.users if user_id and u.slack == user_id), None)
    if user is None:
        return None
    return Actor(name=user.name, verified=True, method="slack", credential=user_id, via="slack")


def unmapped(user_id: str, username: str = "") -> str:
    """Record the refusal of a Slack user no ``users[].slack`` names; the ephemeral text that says so."""
    who = f"{user_id} (@{username})" if username else user_id
    reason = (
        f"your Slack user {who} is not in users[].slack of Tocsin's config: "
        "ask an admin to add `slack: " + user_id + "` to your entry under users"
    )
    actor = Actor(name=f"slack:{user_id}", verified=False, method="slack", credential=user_id, via="slack")
    refuse(actor, "slack user", reason, "unmapped")
    return reason


def ephemeral(text: str, blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A reply only the requester sees; the original message stays as it is."""
    body: dict[str, Any] = {"response_type": "ephemeral", "replace_original": False, "text": text}
    if blocks:
        body["blocks"] = blocks
    return body


def in_channel(text: str, blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A reply everyone in the channel sees."""
    body: dict[str, Any] = {"response_type": "in_channel", "replace_original": False, "text": text}
    if blocks:
        body["blocks"] = blocks
    return body


async def post_response(url: str, message: dict[str, Any]) -> bool:
    """POST a reply to a ``response_url``; False (logged) when Slack did not take it."""
    if not url:
        log.warning("no response_url to reply to: %s", message.get("text", "")[:200])
        return False
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            resp = await client.post(url, json=message)
    except httpx.HTTPError as exc:
        log.warning("reply to Slack's response_url failed: %s", type(exc).__name__)
        return False
    if resp.status_code >= 300:
        log.warning("Slack's response_url answered %d: %s", resp.status_code, resp.text[:200])
        return False
    return True


async def open_view(settings: SlackSettings, trigger_id: str, view: dict[str, Any]) -> str | None:
    """``views.open`` with the bot token; None when the modal opened, else why not."""
    if not settings.bot_token:
        return "SLACK_BOT_TOKEN is not set on the gateway, so the reason dialog cannot open"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            resp = await client.post(
                settings.api_url + "views.open",
                json={"trigger_id": trigger_id, "view": view},
                headers={"Authorization": f"Bearer {settings.bot_token}"},
            )
        data = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        return f"views.open failed: {type(exc).__name__}"
    if resp.status_code != 200 or not isinstance(data, dict) or not data.get("ok"):
        error = data.get("error") if isinstance(data, dict) else None
        return f"views.open failed: {error or resp.status_code}"
    return None


def failure_text(exc: BaseException) -> str:
    """What the requester is told when an operation did not happen (its reason, never a stack trace)."""
    if isinstance(exc, Refused):
        return f"Refused: {exc}"
    if isinstance(exc, BadInput):
        return f"Not done: {exc.field} {exc.message}"
    if isinstance(exc, NotFound | Conflict):
        return f"Not done: {exc}"
    if isinstance(exc, Unavailable):
        return f"Not done: {exc}; try again shortly"
    if isinstance(exc, RPCError):
        return f"Not done: Temporal answered {exc.status.name if exc.status else 'an error'}: {exc.message[:200]}"
    if isinstance(exc, WorkflowFailureError):
        return f"Not done: the workflow failed: {exc.cause or exc}"
    if isinstance(exc, ValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
        return f"Not done: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return f"Not done: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
