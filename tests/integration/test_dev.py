"""`tocsin dev` (what `make run` runs) and `tocsin worker` as real processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from operations.journal import open_journal
from tests.helpers import address_of, cli

TOCSIN = str(Path(sys.executable).parent / "tocsin")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 90) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line.rstrip())
        if needle in line:
            return seen
    raise AssertionError(
        f"never saw {needle!r}; output: {seen}; stderr: "
        f"{proc.stderr.read() if proc.stderr and proc.poll() is not None else ''}"
    )


def start_dev(cwd: Path, ports: list[int], extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("TOCSIN_CONFIG", "TEMPORAL_ADDRESS", "TOCSIN_GATEWAY_TOKEN")
    }
    env.update(extra_env or {})
    return subprocess.Popen(
        [TOCSIN, "dev", "--port", str(ports[0]), "--ui-port", str(ports[1]), "--gateway-port", str(ports[2])],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_dev_runs_everything_and_state_survives_restart(tmp_path: Path) -> None:
    ports = free_ports(3)
    proc = start_dev(tmp_path, ports)
    try:
        banner = wait_for_line(proc, "Press Ctrl-C to stop.")
        assert any(f"http://127.0.0.1:{ports[1]}" in line for line in banner)
        assert any(f"http://127.0.0.1:{ports[2]}" in line for line in banner)
        assert httpx.get(f"http://127.0.0.1:{ports[2]}/healthz", timeout=5).status_code == 200
        token = _check_generated_token(banner, ports[2])
        assert httpx.get(f"http://127.0.0.1:{ports[1]}/", timeout=5).status_code == 200  # the Temporal UI
        # One partition per task queue: paced send queues keep their exact rate and page-first order.
        server = _server_args(ports[0])
        assert "matching.numTaskqueueReadPartitions=1" in server
        assert "matching.numTaskqueueWritePartitions=1" in server
        done = cli(
            "build",
            "--repo",
            "acme/api",
            "--branch",
            "main",
            "--commit",
            "abcdef1",
            "--status",
            "failure",
            address=f"127.0.0.1:{ports[0]}",
        )
        assert done.returncode == 0, done.stderr
        printed = wait_for_line(proc, "Build failed: acme/api@main (ci)", timeout=30)
        assert printed
        outbox = tmp_path / ".tocsin" / "outbox.jsonl"
        assert json.loads(outbox.read_text().splitlines()[0])["message"]["labels"]["alertname"] == "BuildFailed"
        # the embedded default's audit journal: SQLite under TOCSIN_HOME, the build sealed in it
        reported = _journaled(tmp_path / ".tocsin", "build.reported")
        assert reported and reported[0]["detail"]["repo"] == "acme/api", reported
    finally:
        code = stop(proc)
    assert code == 0
    assert (tmp_path / ".tocsin" / "temporal.db").exists()
    for port in ports:  # everything it started is gone
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open after Ctrl-C"

    proc = start_dev(tmp_path, ports)
    try:
        banner = wait_for_line(proc, "Press Ctrl-C to stop.")
        assert _banner_token(banner) == token, "the generated gateway token changed across a restart"
        done = cli(
            "build",
            "--repo",
            "acme/api",
            "--branch",
            "main",
            "--commit",
            "abcdef2",
            "--status",
            "success",
            address=f"127.0.0.1:{ports[0]}",
        )
        assert done.returncode == 0, done.stderr
        # The pipeline remembered the failure across the restart, so this success is a fix.
        wait_for_line(proc, "Build fixed: acme/api@main (ci)", timeout=30)
    finally:
        assert stop(proc) == 0


def _journaled(home: Path, action: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The records of ``action`` in the journal under ``home`` (waiting up to ``timeout`` for one)."""

    async def wait() -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            journal = await open_journal(None, home)
            try:
                found = [r.as_dict() async for r in journal.records(action=action)]
            finally:
                await journal.close()
            if found or asyncio.get_running_loop().time() > deadline:
                return found
            await asyncio.sleep(0.5)

    return asyncio.run(wait())


def _server_args(port: int) -> list[str]:
    """The command line of the dev server ``tocsin dev`` started on ``port``."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "start-dev" in args and str(port) in args:
            return args
    raise AssertionError(f"no dev server process on port {port}")


AM_WEBHOOK = {
    "version": "4",
    "status": "firing",
    "receiver": "tocsin",
    "alerts": [{"status": "firing", "labels": {"alertname": "DevToken", "severity": "info"}}],
}


def _banner_token(banner: list[str]) -> str:
    found = [m.group(1) for line in banner if (m := re.search(r"Authorization: Bearer ([A-Za-z0-9_-]{20,})", line))]
    assert found, f"no gateway token in the banner: {banner}"
    return found[0]


def _check_generated_token(banner: list[str], gateway_port: int) -> str:
    """The banner shows a generated token with a curl and an Alertmanager snippet; the gateway requires it."""
    token = _banner_token(banner)
    text = "\n".join(banner)
    assert "curl" in text and f"http://127.0.0.1:{gateway_port}/webhooks/alertmanager" in text
    assert "authorization:" in text and f"credentials: {token}" in text  # Alertmanager's http_config
    assert "generated" in text and "TOCSIN_GATEWAY_TOKEN" in text
    url = f"http://127.0.0.1:{gateway_port}/webhooks/alertmanager"
    assert httpx.post(url, json=AM_WEBHOOK, timeout=10).status_code == 401
    wrong = httpx.post(url, json=AM_WEBHOOK, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    right = httpx.post(url, json=AM_WEBHOOK, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert right.status_code == 202, right.text
    return token


def test_dev_uses_the_token_it_is_given_and_does_not_print_it(tmp_path: Path) -> None:
    ports = free_ports(3)
    proc = start_dev(tmp_path, ports, {"TOCSIN_GATEWAY_TOKEN": "my-own-dev-token"})
    try:
        banner = wait_for_line(proc, "Press Ctrl-C to stop.")
        assert not any("my-own-dev-token" in line for line in banner), banner
        assert any("$TOCSIN_GATEWAY_TOKEN" in line for line in banner), banner
        url = f"http://127.0.0.1:{ports[2]}/webhooks/alertmanager"
        assert httpx.post(url, json=AM_WEBHOOK, timeout=10).status_code == 401
        ok = httpx.post(url, json=AM_WEBHOOK, headers={"Authorization": "Bearer my-own-dev-token"}, timeout=10)
        assert ok.status_code == 202, ok.text
    finally:
        assert stop(proc) == 0
    assert not (tmp_path / ".tocsin" / "gateway-token").exists()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("route: {receiver: nowhere}\n", "route.receiver"),
        ("route: [unclosed\n", "not valid YAML"),
        (None, "cannot read"),
    ],
    ids=["inconsistent", "broken", "missing"],
)
def test_dev_with_a_bad_config_is_one_line_and_exit_2(tmp_path: Path, config: str | None, expected: str) -> None:
    path = tmp_path / "tocsin.yaml"
    if config is not None:
        path.write_text(config)
    ports = free_ports(3)
    proc = start_dev(tmp_path, ports, {"TOCSIN_CONFIG": str(path)})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and expected in lines[0] and "Traceback" not in err
    assert "Tocsin is running" not in out
    assert not (tmp_path / ".tocsin" / "temporal.db").exists(), "the dev server started anyway"


def test_dev_refuses_a_busy_port(tmp_path: Path) -> None:
    ports = free_ports(3)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports[2]))
        busy.listen()
        proc = start_dev(tmp_path, ports)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert f"port {ports[2]} (gateway) is already in use" in err


def test_worker_process_stops_cleanly_on_sigterm(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TOCSIN_CONFIG"}
    env.update(TEMPORAL_ADDRESS=address_of(dev_env.client), TOCSIN_TASK_QUEUE="sigterm-test")
    proc = subprocess.Popen(
        [TOCSIN, "worker"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for_line(proc, "worker polling task queue 'sigterm-test'", timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
