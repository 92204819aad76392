"""The ``tocsin`` command line.

Exit codes: 0 success; 1 operational error (Temporal unreachable…); 2 bad
input (the message names the field); 3 deployment rolled back; 4 deployment
rejected or approval expired.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, NoReturn, Optional, TypeVar

import typer
from temporalio.service import RPCError

from workers.settings import Settings

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="tocsin",
    help="Durable CI/CD notifications, incident escalation and deployments on Temporal.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the config file.", no_args_is_help=True, rich_markup_mode=None)
routes_app = typer.Typer(help="Test the route tree.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")
app.add_typer(routes_app, name="routes")

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT = 0, 1, 2


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print one line to stderr and exit."""
    typer.echo(f"tocsin: {message}", err=True)
    raise typer.Exit(code)


def bad_input(field: str, message: str) -> NoReturn:
    """Exit 2 naming the field."""
    fail(f"{field}: {message}", EXIT_BAD_INPUT)


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine, mapping Temporal connection/RPC failures to exit 1."""
    from workers.temporal import TemporalUnavailable

    try:
        return asyncio.run(factory())  # type: ignore[arg-type]
    except TemporalUnavailable as exc:
        fail(str(exc))
    except RPCError as exc:
        fail(f"Temporal refused the request: {exc.message}")


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("temporalio", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# ---------------------------------------------------------------- processes


@app.command()
def dev(
    port: int = typer.Option(7233, help="Temporal gRPC port."),
    ui_port: int = typer.Option(8233, "--ui-port", help="Temporal UI port."),
    gateway_port: int = typer.Option(8080, "--gateway-port", help="Gateway HTTP port."),
    host: str = typer.Option("127.0.0.1", help="Interface the gateway and the dev server listen on."),
) -> None:
    """Embedded dev server + worker + gateway (what `make run` calls)."""
    from starters.dev import run_dev

    _setup_logging()
    code = asyncio.run(run_dev(host=host, port=port, ui_port=ui_port, gateway_port=gateway_port))
    raise typer.Exit(code)


@app.command()
def worker(
    metrics_port: int = typer.Option(0, "--metrics-port", envvar="TOCSIN_METRICS_PORT",
                                     help="Serve Prometheus /metrics (notifications, MTTA/MTTR) on this port; 0: off."),
) -> None:
    """Run one worker against TEMPORAL_ADDRESS until SIGINT/SIGTERM."""
    from workers.main import install_stop_signals, run_worker
    from workers.temporal import connect, ensure_search_attributes

    _setup_logging()
    settings = Settings()
    _load_config_or_exit(None)
    if metrics_port:
        from prometheus_client import start_http_server

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
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
) -> None:
    """Run the HTTP gateway (webhooks, /healthz, /metrics)."""
    from starters.gateway import serve

    _setup_logging()
    asyncio.run(serve(Settings(), host=host, port=port))


# ---------------------------------------------------------------- config


def _load_config_or_exit(path: Optional[Path]) -> Any:
    from operations.config import ConfigError, load_config_file

    try:
        return load_config_file(path)
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(f"tocsin: {issue}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


@config_app.command("check")
def config_check(
    config: Optional[Path] = typer.Option(None, "--config", help="Config file (default: $TOCSIN_CONFIG or ./tocsin.yaml)."),
) -> None:
    """Validate the config: errors name their key path (exit 2); warnings are printed and exit 0."""
    from operations.config import config_path
    from workflows.config import validate_references

    cfg = _load_config_or_exit(config)
    for issue in validate_references(cfg):
        if issue.level == "warning":
            typer.echo(f"warning: {issue.path}: {issue.message}", err=True)
    where = config_path(config)
    typer.echo(f"{where if where else 'built-in defaults'}: ok "
               f"({len(cfg.channels)} channels, {len(cfg.receivers)} receivers)")


@routes_app.command("test")
def routes_test(
    labels: list[str] = typer.Argument(None, help="label=value pairs of the alert (label=\"value\" also works)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Config file."),
    tree: bool = typer.Option(False, "--tree", help="Also print the matching routes tree, as amtool does."),
    at: Optional[str] = typer.Option(
        None, "--at", metavar="ISO8601",
        help="Evaluate mute_time_intervals/active_time_intervals at this instant and leave out the receivers "
             "of routes muted then (no time zone = UTC)."),
) -> None:
    """Print the receivers an alert with these labels reaches, comma-separated, in route order.

    The output is byte for byte what `amtool config routes test` prints for the
    same tree (receivers are not de-duplicated; --tree prints amtool's
    "Matching routes" tree first). Labels parse as amtool parses them.
    """
    from datetime import datetime, timezone

    from workflows.policy.matchers import MatcherError, parse_matcher
    from workflows.policy.routing import routes_test_output

    when = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at.strip())
        except ValueError:
            bad_input("--at", f"not an ISO 8601 date-time: {at!r} (e.g. 2024-03-10T09:30:00+09:00)")
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    cfg = _load_config_or_exit(config)
    parsed: dict[str, str] = {}
    for item in labels or []:
        try:
            matcher = parse_matcher(item)
        except MatcherError as exc:
            bad_input("labels", f"failed to parse {item!r}: {exc}")
        if matcher.op != "=":
            bad_input("labels", f"labels must be specified as key=value pairs, got {item!r}")
        parsed[matcher.name] = matcher.value
    typer.echo(routes_test_output(cfg.route, parsed, tree=tree, at=when, time_intervals=cfg.time_intervals),
               nl=False)


# ---------------------------------------------------------------- CI events

_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")


def _check_url(field: str, url: Optional[str]) -> None:
    if url is not None and not re.match(r"^https?://[^\s/]+", url):
        bad_input(field, f"not an http(s) URL: {url!r}")


@app.command()
def build(
    repo: str = typer.Option(..., help="Repository, e.g. acme/payments."),
    branch: str = typer.Option(..., help="Branch name."),
    commit: str = typer.Option(..., help="Commit SHA."),
    status: str = typer.Option(..., help="started|success|failure|cancelled"),
    workflow: str = typer.Option("ci", "--workflow", help="CI workflow name (one track per name)."),
    url: Optional[str] = typer.Option(None, help="Link to the CI run."),
    pr: Optional[int] = typer.Option(None, help="Pull request number."),
    author: Optional[str] = typer.Option(None, help="Commit author."),
    duration: Optional[float] = typer.Option(None, help="Build duration in seconds."),
    junit: list[Path] = typer.Option(None, "--junit", help="JUnit XML report (repeatable)."),
    coverage: Optional[Path] = typer.Option(None, "--coverage", help="Cobertura XML, LCOV or coverage.py JSON."),
    sarif: list[Path] = typer.Option(None, "--sarif", help="SARIF report (repeatable)."),
) -> None:
    """Send one CI event to the pipeline's workflow (pipeline/<repo>/<branch>)."""
    from workflows.pipeline.models import BUILD_STATUSES, BuildEvent

    if status not in BUILD_STATUSES:
        bad_input("--status", f"must be one of {'|'.join(BUILD_STATUSES)}, got {status!r}")
    for field, value in (("--repo", repo), ("--branch", branch), ("--workflow", workflow)):
        if not value.strip():
            bad_input(field, "must not be empty")
    if not _SHA.match(commit):
        bad_input("--commit", f"not a commit SHA (7-64 hex digits): {commit!r}")
    _check_url("--url", url)
    if pr is not None and pr <= 0:
        bad_input("--pr", f"must be a positive number, got {pr}")
    if duration is not None and duration < 0:
        bad_input("--duration", f"must not be negative, got {duration}")
    tests = cov = None
    scans: list[Any] = []
    if junit or coverage or sarif:
        from starters.reports import ReportError, parse_coverage, parse_junit, parse_sarif

        try:
            tests = parse_junit(list(junit)) if junit else None
            cov = parse_coverage(coverage) if coverage else None
            scans = parse_sarif(list(sarif)) if sarif else []
        except ReportError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
    event = BuildEvent(repo=repo, branch=branch, commit=commit, status=status,  # type: ignore[arg-type]
                       workflow=workflow, url=url, pr=pr, author=author, duration_seconds=duration,
                       tests=tests, coverage=cov, security=scans)
    settings = Settings()

    async def go() -> str:
        from starters.actions import send_build_event
        from workers.temporal import connect

        client = await connect(settings)
        return await send_build_event(client, event, settings.task_queue)

    typer.echo(run_async(go))


@app.command()
def notify(
    receiver: str = typer.Option(..., help="Receiver name from the config."),
    title: str = typer.Option(..., help="Message title."),
    text: str = typer.Option("", help="Message body."),
    severity: str = typer.Option("info", help="info|success|warning|error|critical"),
    link: Optional[str] = typer.Option(None, help="A link to show with the message."),
) -> None:
    """One durable notification to one receiver; prints its workflow id."""
    from workflows.models import SEVERITIES, Link, Message

    if severity not in SEVERITIES:
        bad_input("--severity", f"must be one of {'|'.join(SEVERITIES)}, got {severity!r}")
    if not title.strip():
        bad_input("--title", "must not be empty")
    _check_url("--link", link)
    cfg = _load_config_or_exit(None)
    if cfg.receiver(receiver) is None:
        known = ", ".join(r.name for r in cfg.receivers) or "none"
        bad_input("--receiver", f"unknown receiver {receiver!r} (known: {known})")
    message = Message(title=title, text=text, severity=severity,  # type: ignore[arg-type]
                      links=[Link(text="Link", url=link)] if link else [])
    settings = Settings()

    async def go() -> str:
        from starters.actions import start_notify
        from workers.temporal import connect

        client = await connect(settings)
        handle = await start_notify(client, receiver, message, settings.task_queue)
        return handle.id

    typer.echo(run_async(go))


from starters import cli_incidents  # noqa: E402

cli_incidents.register(app)

from starters import cli_deploy  # noqa: E402

cli_deploy.register(app)


def main() -> None:
    """Console-script entry point.

    Exits with ``os._exit`` after flushing: the Temporal client's native runtime
    threads can otherwise crash the interpreter's teardown (a fatal
    ``PyGILState_Release`` after the work is already done).
    """
    import os

    code = 0
    try:
        app()  # standalone mode: ends with SystemExit carrying the exit code
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
