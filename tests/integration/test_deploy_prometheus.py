"""Canary analysis against a real Prometheus (Debian's ``/usr/bin/prometheus``).

Prometheus scrapes a tiny service in this test process every second
(``http_requests_total{code=...}``, ``tests/fakes/hooks.py``). With the error
counter still, the canary passes and ``tocsin deploy --wait`` exits 0; when the
test raises the error counter during the canary, the analysis fails and the
deployment rolls back: exit 3.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from tests.fakes.hooks import FakeHooks
from tests.helpers import address_of
from tests.procs import TOCSIN, base_env, free_port, process, wait_http

PROMETHEUS = "/usr/bin/prometheus"
ERROR_RATE = 'sum(increase(http_requests_total{job="{service}",code="500"}[5s]))'


@pytest.fixture
def hooks() -> Iterator[FakeHooks]:
    with FakeHooks() as fake:
        yield fake


@pytest.fixture
def service() -> str:
    return f"checkout-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def prometheus(tmp_path: Path, hooks: FakeHooks, service: str) -> Iterator[str]:
    """A real Prometheus scraping the fake service every second; yields its URL."""
    binary = PROMETHEUS if Path(PROMETHEUS).exists() else shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run `bash scripts/install-system-deps.sh`", pytrace=False)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": service,
                        "scrape_interval": "1s",
                        "static_configs": [{"targets": [hooks.url.removeprefix("http://")]}],
                    }
                ],
            }
        )
    )
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with process(args, tmp_path, base_env(), tmp_path / "prometheus.log"):
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready", timeout=60)
        # wait until the error-rate query has data (a few scrapes)
        query = ERROR_RATE.replace("{service}", service)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            body = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
            if body["data"]["result"]:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(
                f"Prometheus never scraped the test service: {(tmp_path / 'prometheus.log').read_text()}"
            )
        yield url


@pytest.fixture
def worker(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, hooks: FakeHooks, prometheus: str
) -> Iterator[dict[str, str]]:
    config = {
        "channels": {"console": {"type": "console"}},
        "receivers": [{"name": "deploys", "channels": ["console"]}],
        "route": {"receiver": "deploys"},
        "environments": {
            "prod": {
                "required_approvals": 0,
                "canary": {
                    "steps": [25, 100],
                    "bake": "2s",
                    "analysis": {
                        "prometheus_url": prometheus,
                        "interval": "1s",
                        "count": 4,
                        "failure_limit": 0,
                        "metrics": [{"name": "errors", "query": ERROR_RATE, "max": 1}],
                    },
                },
                "hooks": {"deploy": {"url": hooks.url + "/deploy"}, "rollback": {"url": hooks.url + "/rollback"}},
            }
        },
    }
    path = tmp_path / "tocsin.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = base_env(
        TEMPORAL_ADDRESS=address_of(dev_env.client),
        TOCSIN_TASK_QUEUE=task_queue,
        TOCSIN_CONFIG=str(path),
        TOCSIN_HOME=str(tmp_path / ".tocsin"),
    )
    with process([TOCSIN, "worker"], tmp_path, env, tmp_path / "worker.log"):
        yield env


def deploy(env: dict[str, str], service: str, version: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [TOCSIN, "deploy", "--service", service, "--env", "prod", "--version", version, "--by", "ci-bot", "--wait"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_canary_passes_with_low_errors_and_rolls_back_when_they_rise(
    worker: dict[str, str], hooks: FakeHooks, service: str
) -> None:
    hooks.add_requests("200", 100)
    good = deploy(worker, service, "v1")
    out, err = await asyncio.to_thread(good.communicate, timeout=90)
    assert good.returncode == 0, err
    assert out.splitlines()[0] == f"deploy/{service}/prod/v1"
    assert "analysis_passed" in err and "errors=0" in err
    assert [c.body["weight"] for c in hooks.calls_to("/deploy")] == [25, 100]
    assert hooks.calls_to("/rollback") == []

    stop = threading.Event()

    def errors() -> None:  # the new version starts failing requests
        while not stop.is_set():
            hooks.add_requests("500", 20)
            time.sleep(0.25)

    bad = deploy(worker, service, "v2")
    assert bad.stdout is not None
    assert bad.stdout.readline().strip() == f"deploy/{service}/prod/v2"
    thread = threading.Thread(target=errors, daemon=True)
    thread.start()
    try:
        _, err = await asyncio.to_thread(bad.communicate, timeout=90)
    finally:
        stop.set()
        thread.join()
    assert bad.returncode == 3, err
    assert "canary analysis failed at 25%" in err and "errors=" in err
    rollback = hooks.calls_to("/rollback")
    assert len(rollback) == 1 and rollback[0].body["version"] == "v2"
    assert [c.body["weight"] for c in hooks.calls_to("/deploy")] == [25, 100, 25]
