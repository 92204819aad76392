"""``tocsin metrics``: the DORA keys, the time-to-production estimate, build success rate, MTTA/MTTR."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from sqlalchemy.exc import SQLAlchemyError

from operations import Unavailable
from operations.journal import dsn_from_env, open_journal
from operations.metrics import DEFAULT_LAST_N, DEFAULT_WINDOW, collect_metrics, metrics_lines
from starters.cli.common import app, json_default, run_async
from workers.settings import Settings

__all__ = ["metrics"]


async def _collect(**filters: Any) -> dict[str, Any]:
    try:
        journal = await open_journal(dsn_from_env(), Settings().home)
    except (OSError, SQLAlchemyError, ValueError) as exc:
        raise Unavailable(f"audit journal unavailable: {str(exc).splitlines()[0][:200]}") from None
    try:
        return await collect_metrics(journal, **filters)
    finally:
        await journal.close()


@app.command()
def metrics(
    service: Optional[str] = typer.Option(None, metavar="SERVICE", help="Only this service."),
    env: Optional[str] = typer.Option(None, "--env", metavar="ENV", help="Only this environment."),
    window: str = typer.Option(DEFAULT_WINDOW, "--window", metavar="DURATION", help="Over this long (30d, 7d, 12h)."),
    last: int = typer.Option(
        DEFAULT_LAST_N, "--last", metavar="N", help="Lead time (time to production) over the last N changes."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """DORA keys per service and environment (deployment frequency, lead time for changes, change failure
    rate, time to restore), the time-to-production estimate (median and p90 lead time of the last N
    changes), build success rate and MTTA/MTTR, from the audit journal (TOCSIN_AUDIT_DSN)."""
    filters: dict[str, Any] = {"service": service, "env": env, "window": window, "last_n": last}
    report = run_async(lambda: _collect(**filters), remote=lambda api: api.metrics(**filters))
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=json_default))
        return
    typer.echo("\n".join(metrics_lines(report)))
