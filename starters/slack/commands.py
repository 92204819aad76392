"""Slash commands: ``/tocsin <subcommand> …`` and the seed's ``/deploy``, ``/rollback``, ``/status``,
``/metrics``, ``/approve``, ``/incident`` (each the same handler as its subcommand).

:func:`parse_command` turns Slack's ``command`` and ``text`` into an :class:`Invocation` or raises
:class:`Usage` (answered with the usage line, ephemerally); :func:`run_command` calls the operation
(which authorizes the actor) and answers a reply for the ``response_url``: ``in_channel`` for what
others should see (a deployment started, an approval, an incident raised), ``ephemeral`` otherwise.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from operations import Actor, Context
from operations.alerts import ALERT_SEVERITIES, raise_alert
from operations.deployments import approve, reject, rollback, start_deployment
from operations.incidents import acknowledge, resolve
from operations.journal import dsn_from_env, open_journal
from operations.metrics import collect_metrics
from operations.status import collect_status
from starters.api_models import NAME_PATTERN
from starters.slack.blocks import metrics_blocks, status_blocks
from starters.slack.reply import ephemeral, in_channel
from workers.settings import Settings
from workflows.deployment import DeployInput

__all__ = ["Invocation", "Usage", "parse_command", "run_command", "USAGE", "ALIASES", "help_text"]

USAGE: dict[str, str] = {
    "deploy": "deploy SERVICE ENV VERSION",
    "rollback": "rollback SERVICE ENV REASON…",
    "status": "status [SERVICE]",
    "metrics": "metrics [SERVICE]",
    "approve": "approve ID",
    "reject": "reject ID REASON…",
    "incident": "incident SEVERITY TITLE…",
    "ack": "ack ID",
    "resolve": "resolve ID [NOTE…]",
    "help": "help",
}
"""Each subcommand's usage line (after ``/tocsin``)."""

ALIASES = {f"/{name}": name for name in ("deploy", "rollback", "status", "metrics", "approve", "incident")}
"""The seed's separate commands, each the subcommand of the same name."""

# subcommand → (required words, optional words, trailing text: "" none, "required", "optional")
_SHAPES: dict[str, tuple[int, int, str]] = {
    "deploy": (3, 0, ""),
    "rollback": (2, 0, "required"),
    "status": (0, 1, ""),
    "metrics": (0, 1, ""),
    "approve": (1, 0, ""),
    "reject": (1, 0, "required"),
    "incident": (1, 0, "required"),
    "ack": (1, 0, ""),
    "resolve": (1, 0, "optional"),
    "help": (0, 0, ""),
}
_NAME = re.compile(NAME_PATTERN)
log = logging.getLogger("tocsin.slack")


class Usage(Exception):
    """Bad arguments; ``str()`` is the usage line to answer with."""


@dataclass(frozen=True)
class Invocation:
    """One parsed slash command."""

    name: str
    """The subcommand (``deploy``, ``status``…)."""
    args: tuple[str, ...] = ()
    """Its positional words."""
    rest: str = ""
    """The trailing free text (a reason, a title, a note)."""
    command: str = "/tocsin"
    """The slash command as typed (for usage lines)."""


def help_text(command: str = "/tocsin") -> str:
    """Every subcommand's usage line."""
    lines = "\n".join(f"• `/tocsin {line}`" for line in USAGE.values())
    aliases = ", ".join(f"`{alias}`" for alias in ALIASES)
    return f"Tocsin commands:\n{lines}\nAlso {aliases}: the same as `/tocsin <name> …`."


def usage_line(name: str, command: str) -> str:
    """``Usage: /tocsin deploy SERVICE ENV VERSION`` (or ``/deploy SERVICE ENV VERSION``)."""
    line = USAGE[name]
    if command in ALIASES:
        return f"Usage: {command}{line[len(name) :]}"
    return f"Usage: /tocsin {line}"


def _check(name: str, command: str, args: list[str]) -> None:
    if name in ("deploy", "rollback") or (name in ("status", "metrics") and args):
        labels = ("SERVICE", "ENV", "VERSION")
        for label, word in zip(labels, args, strict=False):
            if not _NAME.match(word) or len(word) > 200:
                raise Usage(f"{label} {word!r} is not a valid name. {usage_line(name, command)}")
    if name == "incident" and args[0].lower() not in ALERT_SEVERITIES:
        raise Usage(
            f"SEVERITY must be one of {'|'.join(ALERT_SEVERITIES)}, not {args[0]!r}. {usage_line(name, command)}"
        )


def parse_command(command: str, text: str) -> Invocation:
    """Parse Slack's ``command`` (``/tocsin``, ``/deploy``…) and ``text``.

    Raises:
        Usage: an unknown subcommand or command, or arguments that do not fit (the message is the usage line).
    """
    command = command.strip().lower() or "/tocsin"
    words = html.unescape(text).split()  # Slack escapes &, < and > in the text
    if command in ALIASES:
        name = ALIASES[command]
    elif command == "/tocsin":
        name = words.pop(0).lower() if words else "help"
    else:
        raise Usage(f"Unknown command {command}. {help_text()}")
    if name not in _SHAPES:
        raise Usage(f"Unknown subcommand {name!r}. {help_text()}")
    required, optional, trailing = _SHAPES[name]
    if len(words) < required or (trailing == "required" and len(words) == required):
        raise Usage(usage_line(name, command))
    positional = required + min(optional, len(words) - required)
    args, extra = words[:positional], words[positional:]
    if extra and not trailing:
        raise Usage(usage_line(name, command))
    _check(name, command, args)
    return Invocation(name=name, args=tuple(args), rest=" ".join(extra), command=command)


# ---------------------------------------------------------------------------------------- handlers

Handler = Callable[[Context, Actor, Invocation], Awaitable[dict[str, Any]]]


async def _deploy(ctx: Context, actor: Actor, inv: Invocation) -> dict[str, Any]:
    service, env, version = inv.args
    request = DeployInput(service=service, env=env, version=version, by=actor.name)
    handle, started = await start_deployment(ctx, actor, request)
    if not started:
        return ephemeral(f"`{handle.id}` is already running.")
    return in_channel(f"<@{actor.credential}> started the deployment of {service} {version} to {env}: `{handle.id}`")


async def _rollback(ctx: Context, actor: Actor, inv: Invocation) -> dict[str, Any]:
    service, env = inv.args
    outcome = await rollback(ctx, actor, service, env, inv.rest)
    if outcome.action == "nothing":
        return ephemeral(f"Nothing rolled back: {outcome.detail}")
    verb = "signalled a rollback of" if outcome.action == "signalled" else "started the rollback"
    return in_channel(f"<@{actor.credential}> {verb} `{outcome.workflow_id}` ({service} in {env}): {inv.rest}")


async def _status(ctx: Context, actor: Actor, inv: Invocation) -> dict[str, Any]:
    service = inv.args[0] if inv.args else None
    status = await collect_status(ctx, service)
    summary = f"{len(status['incidents'])} open incident(s), {len(status['deployments'])} running deployment(s)"
    return ephemeral(summary, status_blocks(status, service))


async def _dora_report(service: str | None) -> dict[str, Any] | None:
    """``tocsin metrics --json`` for the service, from the audit journal (None when it cannot be read)."""
    try:
        journal = await open_journal(dsn_from_env(), Settings().home)
    except Exception as exc:
        log.warning(
            "/tocsin metrics: audit journal unavailable: %s", str(exc).splitlines()[0][:200] if str(exc) else exc
        )
        return None
    try:
        return await collect_metrics(journal, service=service)
    finally:
        await journal.close()


async def _metrics(ctx: Context, actor: Actor, inv: Invocation) -> dict[str, Any]:
    service = inv.args[0] if inv.args else None
    status = await collect_status(ctx, service)
    report = await _dora_report(service)
    summary = "DORA keys, MTTA/MTTR" if report is not None else "MTTA/MTTR (DORA keys: audit journal unavailable)"
    return ephemeral(summary, metrics_blocks(status, service, report))


async def _approve(ctx: Context, actor: Actor, inv: Invocation) -> dict[str, Any]:
    result = await approve(ctx, actor, inv.args[0])
    return in_channel(
        f"<@{actor.credential}> approved `{inv.args[0]}` ({result.approvals}/{result.required}). {result.message}".strip()
    )


async def _reject(ctx: Context, actor: Actor, inv: Invocation) -> dict[str, Any]:
    await reject(ctx, actor, inv.args[0], inv.rest)
    return in_channel(f"<@{actor.credential}> rejected `{inv.args[0]}`: {inv.rest}")


async def _incident(ctx: Context, actor: Actor, inv: Invocation) -> dict[str, Any]:
    severity = inv.args[0].lower()
    ids = await raise_alert(ctx, actor, inv.rest, severity, {"source": "slack"}, inv.rest)
    where = ", ".join(f"`{i}`" for i in ids) or "no incident (routed to a receiver with no channels)"
    return in_channel(f"<@{actor.credential}> raised a {severity} incident: {inv.rest} → {where}")


async def _ack(ctx: Context, actor: Actor, inv: Invocation) -> dict[str, Any]:
    result = await acknowledge(ctx, actor, inv.args[0])
    return in_channel(f"<@{actor.credential}> acknowledged `{inv.args[0]}` ({result.status})")


async def _resolve(ctx: Context, actor: Actor, inv: Invocation) -> dict[str, Any]:
    result = await resolve(ctx, actor, inv.args[0], inv.rest)
    note = f": {inv.rest}" if inv.rest else ""
    return in_channel(f"<@{actor.credential}> resolved `{inv.args[0]}` ({result.status}){note}")


async def _help(ctx: Context, actor: Actor, inv: Invocation) -> dict[str, Any]:
    return ephemeral(help_text(inv.command))


HANDLERS: dict[str, Handler] = {
    "deploy": _deploy,
    "rollback": _rollback,
    "status": _status,
    "metrics": _metrics,
    "approve": _approve,
    "reject": _reject,
    "incident": _incident,
    "ack": _ack,
    "resolve": _resolve,
    "help": _help,
}


async def run_command(ctx: Context, actor: Actor, inv: Invocation) -> dict[str, Any]:
    """Run the invocation's operation; its reply (operation errors propagate to the caller)."""
    return await HANDLERS[inv.name](ctx, actor, inv)
