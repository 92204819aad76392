"""The gateway's audit journal: opened at start, every refusal appended to it, closed at stop.

The gateway is the process that authorizes ``/api/v1`` and Slack requests, so its refusals (which
never reach Temporal) are appended here as ``refused`` records, keyed ``refusal/<uuid>``. A journal
that cannot be opened (bad ``TOCSIN_AUDIT_DSN``, database down) is logged and the gateway serves on
without it: alerts must keep flowing; ``audit export`` then opens the journal per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request

from operations.audit import refusal_sink
from operations.auth import set_refusal_sink
from operations.journal import Journal, dsn_from_env, open_journal
from workers.settings import Settings

__all__ = ["journaling", "request_journal"]

log = logging.getLogger("tocsin.gateway")


@contextlib.asynccontextmanager
async def journaling(app: FastAPI, settings: Settings) -> AsyncIterator[Journal | None]:
    """Open the journal for the app's life (``app.state.journal``) and journal every refusal."""
    try:
        journal: Journal | None = await open_journal(dsn_from_env(), settings.home)
    except Exception as exc:
        log.error("audit journal unavailable, refusals are only logged: %s", str(exc).splitlines()[0][:300])
        journal = None
    app.state.journal = journal
    pending: set[asyncio.Task[Any]] = set()
    if journal is not None:
        set_refusal_sink(refusal_sink(journal, pending))
    try:
        yield journal
    finally:
        if journal is not None:
            set_refusal_sink(None)
            if pending:
                await asyncio.wait(list(pending), timeout=10)
            app.state.journal = None
            await journal.close()


@contextlib.asynccontextmanager
async def request_journal(request: Request) -> AsyncIterator[Journal]:
    """The gateway's journal, or one opened for this request (an app run without its lifespan)."""
    journal: Journal | None = getattr(request.app.state, "journal", None)
    if journal is not None:
        yield journal
        return
    settings: Settings = request.app.state.settings
    journal = await open_journal(dsn_from_env(), settings.home)
    try:
        yield journal
    finally:
        await journal.close()
