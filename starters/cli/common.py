"""What every ``tocsin`` command shares: the app, one-line failures, and running an operation.

:func:`run_op` (and :func:`run_async`) is the one place that decides between talking to Temporal
directly and remote mode (``TOCSIN_URL`` set: the gateway's ``/api/v1``, see
:mod:`starters.cli.remote`); a command gives it both ways of doing its work.

Exit codes: 0 success; 1 operational error (Temporal unreachable…); 2 bad
input (the message names the field) or a refusal; 3 deployment rolled back;
4 deployment rejected or approval expired.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import NoReturn, Optional, TypeVar

import typer
from temporalio.service import RPCError

from operations import Actor, BadInput, Context, NotFound, OperationError, Refused
from operations.audit import refusal_entry
from operations.auth import Refusal, set_refusal_sink
from operations.config import ConfigError, load_config_file
from operations.journal import dsn_from_env, open_journal
from starters.cli.remote import Api, run_remote, use_oidc
from starters.cli.remote import enabled as remote_enabled
from workers.settings import Settings
from workers.temporal import TemporalUnavailable, connect
from workflows.config import Config

__all__ = [
    "app",
    "EXIT_OK",
    "EXIT_ERROR",
    "EXIT_BAD_INPUT",
    "EXIT_ROLLED_BACK",
    "EXIT_REJECTED",
    "fail",
    "bad_input",
    "run_async",
    "run_op",
    "load_config_or_exit",
    "actor_from",
    "check_url",
    "setup_logging",
    "non_empty",
    "json_default",
    "Remote",
    "remote_enabled",
]

T = TypeVar("T")
Remote = Callable[[Api], Awaitable[T]]
"""A command's remote-mode way of doing its work: one call on the gateway's API."""

app = typer.Typer(
    name="tocsin",
    help="Durable CI/CD notifications, incident escalation and deployments on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_ROLLED_BACK, EXIT_REJECTED = 0, 1, 2, 3, 4


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"tocsin {version('tocsin')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
    ),
    oidc: Optional[str] = typer.Option(
        None,
        "--oidc",
        metavar="PROVIDER",
        help="Remote mode (TOCSIN_URL): authenticate with this CI's OIDC ID token (github).",
    ),
) -> None:
    """Durable CI/CD notifications, incident escalation and deployments on Temporal.

    With TOCSIN_URL set, every command goes through the gateway's /api/v1 with TOCSIN_TOKEN (or an
    OIDC ID token: TOCSIN_OIDC_TOKEN, --oidc github); --by, where given, must name that identity.
    """
    try:
        use_oidc(oidc)
    except BadInput as exc:
        bad_input(exc.field, exc.message)


def json_default(value: object) -> str:
    """``json.dumps`` fallback: ISO 8601 for times, ``str`` for the rest."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print one line to stderr and exit."""
    typer.echo(f"tocsin: {message}", err=True)
    raise typer.Exit(code)


def bad_input(field: str, message: str) -> NoReturn:
    """Exit 2 naming the field."""
    fail(f"{field}: {message}", EXIT_BAD_INPUT)


def non_empty(field: str, value: str | None) -> str:
    """The stripped value, or exit 2 naming the field when it is empty."""
    if value is None or not value.strip():
        bad_input(field, "must not be empty")
    return value.strip()


def run_async(
    factory: Callable[[], Awaitable[T]],
    refused: tuple[str, int] = ("refused", EXIT_BAD_INPUT),
    remote: Remote[T] | None = None,
) -> T:
    """Run a coroutine, mapping failures to exit codes once for every command.

    In remote mode (``TOCSIN_URL`` set) ``remote`` runs on the gateway's API instead of ``factory``
    and its answers come back as the same errors (commands without one, such as ``worker``, stay
    local). :class:`BadInput` → 2 naming the field; :class:`NotFound` → 2 naming the id;
    :class:`Refused` → ``refused`` (prefix, exit code; 2 by default) with the reason; any other
    operation error (not authenticated, a conflict), an unreachable Temporal or gateway, or an
    RPC failure → 1.
    """

    async def go() -> T:
        if remote is not None and remote_enabled():
            return await run_remote(remote)
        refusals: list[Refusal] = []
        set_refusal_sink(refusals.append)
        try:
            return await factory()
        finally:
            set_refusal_sink(None)
            if refusals:
                await _journal_refusals(refusals)

    try:
        return asyncio.run(go())
    except BadInput as exc:
        bad_input(exc.field, exc.message)
    except NotFound as exc:
        fail(f"ID: {exc}", EXIT_BAD_INPUT)
    except Refused as exc:
        fail(f"{refused[0]}: {exc}", refused[1])
    except (OperationError, TemporalUnavailable) as exc:
        fail(str(exc))
    except RPCError as exc:
        fail(f"Temporal refused the request: {exc.message}")


async def _journal_refusals(refusals: list[Refusal]) -> None:
    """Append the refusals a direct-mode command met to the audit journal (a warning when it cannot)."""
    try:
        journal = await open_journal(dsn_from_env(), Settings().home)
        try:
            await journal.append([refusal_entry(r) for r in refusals])
        finally:
            await journal.close()
    except Exception as exc:
        logging.getLogger("tocsin.audit").warning(
            "refusal not journaled (TOCSIN_AUDIT_DSN): %s", str(exc).splitlines()[0][:200] if str(exc) else exc
        )


def run_op(
    op: Callable[[Context], Awaitable[T]],
    config: Config | None = None,
    refused: tuple[str, int] = ("refused", EXIT_BAD_INPUT),
    remote: Remote[T] | None = None,
) -> T:
    """Connect to Temporal and run one operation with a :class:`Context`; in remote mode run ``remote``."""
    settings = Settings()
    cfg = config if config is not None or remote_enabled() else load_config_or_exit(None)

    async def go() -> T:
        client = await connect(settings)
        assert cfg is not None
        return await op(Context(client, cfg, settings.task_queue))

    return run_async(go, refused, remote)


def load_config_or_exit(path: Path | None) -> Config:
    """The config (file or built-in default); exit 2 listing each error with its key path."""
    try:
        return load_config_file(path)
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(f"tocsin: {issue}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def actor_from(by: str | None, field: str = "--by") -> Actor:
    """The actor of a direct-mode command: the typed ``--by``, recorded as unverified."""
    return Actor(name=non_empty(field, by), verified=False, method="unverified", via="cli")


def check_url(field: str, url: str | None) -> None:
    """Exit 2 unless ``url`` is an http(s) URL (or None)."""
    if url is not None and not re.match(r"^https?://[^\s/]+", url):
        bad_input(field, f"not an http(s) URL: {url!r}")


def setup_logging(verbose: bool = False) -> None:
    """Log lines with time, level and logger; Temporal's and HTTP clients' chatter at WARNING."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("temporalio", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
