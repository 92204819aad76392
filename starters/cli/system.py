"""Processes and config: ``dev``, ``worker``, ``gateway``, ``config check``, ``routes test``."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Optional

import typer
from prometheus_client import start_http_server

from operations.config import config_path
from starters.cli.common import EXIT_BAD_INPUT, app, bad_input, fail, load_config_or_exit, run_async, setup_logging
from starters.dev import run_dev
from starters.gateway import serve, startup_problem
from workers.channels import channel_issues
from workers.main import install_stop_signals, run_worker
from workers.settings import Settings
from workers.temporal import TemporalUnavailable, connect, connect_options, ensure_search_attributes
from workflows.config import validate_references
from workflows.policy.matchers import MatcherError, parse_matcher
from workflows.policy.routing import routes_test_output

__all__ = ["config_app", "routes_app"]

config_app = typer.Typer(help="Inspect the config file.", no_args_is_help=True, rich_markup_mode=None)
routes_app = typer.Typer(help="Test the route tree.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")
app.add_typer(routes_app, name="routes")


@app.command()
def dev(
    port: int = typer.Option(7233, metavar="PORT", help="Temporal gRPC port."),
    ui_port: int = typer.Option(8233, "--ui-port", metavar="PORT", help="Temporal UI port."),
    gateway_port: int = typer.Option(8080, "--gateway-port", metavar="PORT", help="Gateway HTTP port."),
    host: str = typer.Option("127.0.0.1", metavar="HOST", help="Interface the gateway and the dev server listen on."),
) -> None:
    """Embedded dev server + worker + gateway (what `make run` calls)."""
    setup_logging()
    code = asyncio.run(run_dev(host=host, port=port, ui_port=ui_port, gateway_port=gateway_port))
    raise typer.Exit(code)


@app.command()
def worker(
    metrics_port: int = typer.Option(
        0,
        "--metrics-port",
        metavar="PORT",
        envvar="TOCSIN_METRICS_PORT",
        help="Serve Prometheus /metrics (builds, deployments, DORA keys, incidents, notifications) on this port; 0: off.",
    ),
) -> None:
    """Run one worker against TEMPORAL_ADDRESS until SIGINT/SIGTERM."""
    setup_logging()
    settings = Settings()
    load_config_or_exit(None)
    if metrics_port:
        try:
            start_http_server(metrics_port)
        except OSError as exc:
            fail(f"--metrics-port: cannot listen on {metrics_port}: {exc.strerror}")

    async def go() -> None:
        client = await connect(settings, identity=None)
        added = await ensure_search_attributes(client, settings.namespace)
        if added:
            logging.getLogger("tocsin").info("registered search attributes: %s", ", ".join(added))
        stop = asyncio.Event()
        install_stop_signals(stop)
        await run_worker(client, settings, stop)

    run_async(go)


@app.command()
def gateway(
    host: str = typer.Option("127.0.0.1", metavar="HOST", help="Interface to listen on."),
    port: int = typer.Option(8080, metavar="PORT", help="Port to listen on."),
    insecure_no_auth: bool = typer.Option(
        False,
        "--insecure-no-auth",
        help="Accept unauthenticated webhooks when TOCSIN_GATEWAY_TOKEN is unset (logged loudly; never in production).",
    ),
) -> None:
    """Run the HTTP gateway (webhooks, /healthz, /metrics); it requires TOCSIN_GATEWAY_TOKEN."""
    setup_logging()
    settings = replace(Settings(), gateway_insecure_no_auth=insecure_no_auth)
    problem = startup_problem(settings)
    if problem:
        fail(problem, EXIT_BAD_INPUT)
    load_config_or_exit(None)
    try:
        connect_options(settings)  # the gateway connects lazily: unusable credentials stop it here, in one line
    except TemporalUnavailable as exc:
        fail(str(exc))
    asyncio.run(serve(settings, host=host, port=port))


@config_app.command("check")
def config_check(
    config: Optional[Path] = typer.Option(
        None, "--config", metavar="FILE", help="Config file (default: $TOCSIN_CONFIG or ./tocsin.yaml)."
    ),
) -> None:
    """Validate the config and build every channel (no network): errors name their key path (exit 2).

    A channel whose settings are malformed, or whose ``${SECRET}`` is not set in this environment, is
    an error. Warnings are printed and exit 0.
    """
    cfg = load_config_or_exit(config)
    for issue in validate_references(cfg):
        if issue.level == "warning":
            typer.echo(f"warning: {issue.path}: {issue.message}", err=True)
    broken = channel_issues(cfg)
    for issue in broken:
        typer.echo(f"tocsin: {issue.path}: {issue.message}", err=True)
    if broken:
        raise typer.Exit(EXIT_BAD_INPUT)
    where = config_path(config)
    typer.echo(
        f"{where if where else 'built-in defaults'}: ok ({len(cfg.channels)} channels, {len(cfg.receivers)} receivers)"
    )


def _parse_at(at: str) -> datetime:
    try:
        when = datetime.fromisoformat(at.strip())
    except ValueError:
        bad_input("--at", f"not an ISO 8601 date-time: {at!r} (e.g. 2024-03-10T09:30:00+09:00)")
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@routes_app.command("test")
def routes_test(
    labels: list[str] = typer.Argument(None, help='label=value pairs of the alert (label="value" also works).'),
    config: Optional[Path] = typer.Option(None, "--config", metavar="FILE", help="Config file."),
    tree: bool = typer.Option(False, "--tree", help="Also print the matching routes tree, as amtool does."),
    at: Optional[str] = typer.Option(
        None,
        "--at",
        metavar="ISO8601",
        help="Evaluate mute_time_intervals/active_time_intervals at this instant and leave out the receivers "
        "of routes muted then (no time zone = UTC).",
    ),
) -> None:
    """Print the receivers an alert with these labels reaches, comma-separated, in route order.

    The output is byte for byte what `amtool config routes test` prints for the
    same tree (receivers are not de-duplicated; --tree prints amtool's
    "Matching routes" tree first). Labels parse as amtool parses them.
    """
    when = _parse_at(at) if at is not None else None
    cfg = load_config_or_exit(config)
    parsed: dict[str, str] = {}
    for item in labels or []:
        try:
            matcher = parse_matcher(item)
        except MatcherError as exc:
            bad_input("labels", f"failed to parse {item!r}: {exc}")
        if matcher.op != "=":
            bad_input("labels", f"labels must be specified as key=value pairs, got {item!r}")
        parsed[matcher.name] = matcher.value
    typer.echo(routes_test_output(cfg.route, parsed, tree=tree, at=when, time_intervals=cfg.time_intervals), nl=False)
