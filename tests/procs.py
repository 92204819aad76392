"""Real processes for integration tests: `tocsin worker`, `tocsin gateway`, Alertmanager."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

TOCSIN = str(Path(sys.executable).parent / "tocsin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TOCSIN_CONFIG", "TEMPORAL_ADDRESS")}
    env.update(extra)
    return env


def wait_http(url: str, timeout: float = 30, ok: tuple[int, ...] = (200,)) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(url, timeout=1)
            if resp.status_code in ok:
                return
            last = resp.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready: {last}")


@contextlib.contextmanager
def process(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process for the block; SIGTERM (then SIGKILL) after."""
    with log.open("ab") as out:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def tocsin_gateway(cwd: Path, env: dict[str, str]) -> Iterator[str]:
    """`tocsin gateway` on a free port; yields its base URL."""
    port = free_port()
    with process([TOCSIN, "gateway", "--port", str(port)], cwd, env, cwd / "gateway.log"):
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz")
        yield url


def alertmanager_binary() -> str:
    for path in ("/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager"):
        if Path(path).exists():
            return path
    raise AssertionError("Alertmanager is not installed: run `bash scripts/install-system-deps.sh` (make test does)")
