"""The Slack door: ``POST /webhooks/slack/commands`` and ``POST /webhooks/slack/interactions``.

Every request is verified first (:func:`starters.slack.verify.check_signature` over the raw body;
401 otherwise, logged and counted); without ``SLACK_SIGNING_SECRET`` both routes answer 403 and
accept nothing. Slack wants an answer within 3 seconds, so each route answers at once and does the
work in a background task through :mod:`operations`, replying on the request's ``response_url``.
Slack's retries (``X-Slack-Retry-Num``) and double clicks act once: requests are remembered by
(``trigger_id``/``action_ts``, user, action) for ten minutes, and a click on the same button of the
same workflow by the same user within five seconds is taken as the same click.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter

from operations import Actor, Context
from starters.slack.blocks import REASON_BLOCK, reject_view
from starters.slack.commands import Usage, help_text, parse_command, run_command
from starters.slack.interactions import (
    REJECT_ACTION,
    Click,
    Submission,
    act,
    clicks_of,
    reject_submitted,
    submission_of,
)
from starters.slack.reply import ephemeral, failure_text, open_view, post_response, slack_actor, unmapped
from starters.slack.verify import REJECTED, Deduper, SlackSettings, check_signature

__all__ = ["install", "COMMANDS_PATH", "INTERACTIONS_PATH"]

log = logging.getLogger("tocsin.slack")

COMMANDS_PATH = "/webhooks/slack/commands"
INTERACTIONS_PATH = "/webhooks/slack/interactions"

HANDLED = Counter("tocsin_slack_requests_total", "Slack requests taken in, by kind and outcome", ["kind", "outcome"])

RETRY_TTL = 600.0
CLICK_TTL = 5.0


def _context(app: FastAPI) -> Context:
    state = app.state
    return Context(state.client, state.store.get(), state.settings.task_queue)


def _refused(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason, "field": None}, status_code=status)


async def _verified(request: Request) -> tuple[bytes, SlackSettings] | JSONResponse:
    """The raw body and settings of a request Slack signed, or the 403/401 answer."""
    settings = SlackSettings.from_env()
    if not settings.signing_secret:
        REJECTED.labels("not-configured").inc()
        log.warning("Slack request refused: SLACK_SIGNING_SECRET is not set (Slack not configured)")
        return _refused(403, "Slack not configured: the gateway has no SLACK_SIGNING_SECRET")
    raw = await request.body()
    why = check_signature(settings.signing_secret, raw, dict(request.headers.items()))
    if why is not None:
        REJECTED.labels(why).inc()
        who = request.client.host if request.client else "unknown"
        log.warning("Slack request from %s refused on %s: %s signature", who, request.url.path, why)
        return _refused(401, f"not a signed Slack request ({why})")
    return raw, settings


def _form(raw: bytes) -> dict[str, str]:
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def _first(request: Request, exact: tuple[str, ...], loose: tuple[str, ...] | None = None) -> bool:
    """Whether this request acts (False: a retry or a double click already did)."""
    retries: Deduper = request.app.state.slack_retries
    clicks: Deduper = request.app.state.slack_clicks
    if not retries.first(exact):
        return False
    return loose is None or clicks.first(loose)


async def _reply(response_url: str, run: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    """Run ``run``; post its reply on ``response_url``, or the failure's reason ephemerally."""
    try:
        message = await run()
    except Exception as exc:  # every failure is answered with its reason, never left unanswered
        log.info("Slack action not done: %s", exc)
        message = ephemeral(failure_text(exc))
    await post_response(response_url, message)


async def commands(request: Request, background: BackgroundTasks) -> Response:
    """A slash command: usage and refusals answered at once; the work in the background, replied on response_url."""
    checked = await _verified(request)
    if isinstance(checked, Response):
        return checked
    raw, _settings = checked
    form = _form(raw)
    if form.get("ssl_check") == "1":  # Slack checking the certificate: nothing to do
        return Response(status_code=200)
    user_id, command, text = form.get("user_id", ""), form.get("command", ""), form.get("text", "")
    request_key = form.get("trigger_id") or hashlib.sha256(raw).hexdigest()
    if not _first(request, ("command", request_key, user_id, command)):
        HANDLED.labels("command", "duplicate").inc()
        return Response(status_code=200)
    try:
        invocation = parse_command(command, text)
    except Usage as exc:
        HANDLED.labels("command", "usage").inc()
        return JSONResponse(ephemeral(str(exc)))
    if invocation.name == "help":
        return JSONResponse(ephemeral(help_text(invocation.command)))
    actor = slack_actor(request.app.state.store.get(), user_id)
    if actor is None:
        HANDLED.labels("command", "unmapped").inc()
        return JSONResponse(ephemeral(unmapped(user_id, form.get("user_name", ""))))
    HANDLED.labels("command", "accepted").inc()
    app = request.app
    background.add_task(_reply, form.get("response_url", ""), lambda: run_command(_context(app), actor, invocation))
    return JSONResponse(ephemeral(f"Working on `{f'{command} {text}'.strip()}`…"))


async def _click(app: FastAPI, settings: SlackSettings, click: Click) -> None:
    config = app.state.store.get()
    actor = slack_actor(config, click.user_id)
    if actor is None:
        await post_response(click.response_url, ephemeral(unmapped(click.user_id, click.username)))
        return
    if click.action_id == REJECT_ACTION:
        why = await open_view(settings, click.trigger_id, reject_view(click.value, click.response_url, click.channel))
        if why is not None:
            text = f"{why}; reject with `/tocsin reject {click.value} REASON…` instead"
            await post_response(click.response_url, ephemeral(text))
        return
    log.info("Slack %s on %s by %s (%s)", click.action_id, click.value, actor.name, click.user_id)
    await _reply(click.response_url, lambda: _confirmed(act(_context(app), actor, click)))


async def _confirmed(run: Awaitable[str]) -> dict[str, Any]:
    return ephemeral(await run)


async def _submitted(app: FastAPI, submission: Submission) -> None:
    actor: Actor | None = slack_actor(app.state.store.get(), submission.user_id)
    if actor is None:
        await post_response(submission.response_url, ephemeral(unmapped(submission.user_id, submission.username)))
        return
    await _reply(submission.response_url, lambda: _confirmed(reject_submitted(_context(app), actor, submission)))


def _payload(raw: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(_form(raw).get("payload", ""))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


async def interactions(request: Request, background: BackgroundTasks) -> Response:
    """Button clicks (``block_actions``) and the Reject dialog (``view_submission``); answered at once."""
    checked = await _verified(request)
    if isinstance(checked, Response):
        return checked
    raw, settings = checked
    payload = _payload(raw)
    if payload is None:
        return _refused(400, "the body has no JSON payload field")
    kind = payload.get("type")
    if kind == "block_actions":
        for click in clicks_of(payload):
            exact = ("click", click.action_ts, click.user_id, click.action_id, click.value)
            if not _first(request, exact, (click.user_id, click.action_id, click.value)):
                HANDLED.labels("click", "duplicate").inc()
                continue
            HANDLED.labels("click", "accepted").inc()
            background.add_task(_click, request.app, settings, click)
        return Response(status_code=200)
    submission = submission_of(payload) if kind == "view_submission" else None
    if submission is None:
        return Response(status_code=200)
    if not submission.reason:
        return JSONResponse({"response_action": "errors", "errors": {REASON_BLOCK: "Say why you reject it"}})
    if _first(request, ("submit", submission.view_id, submission.user_id, submission.deployment)):
        HANDLED.labels("reject", "accepted").inc()
        background.add_task(_submitted, request.app, submission)
    return Response(status_code=200)


def install(app: FastAPI) -> None:
    """Add the two Slack routes (and their retry memory) to the gateway app."""
    if not SlackSettings.from_env().signing_secret:
        log.info("SLACK_SIGNING_SECRET is not set: /webhooks/slack/* answer 403 (Slack not configured)")
    app.state.slack_retries = Deduper(ttl=RETRY_TTL)
    app.state.slack_clicks = Deduper(ttl=CLICK_TTL)
    app.add_api_route(COMMANDS_PATH, commands, methods=["POST"], include_in_schema=False)
    app.add_api_route(INTERACTIONS_PATH, interactions, methods=["POST"], include_in_schema=False)
