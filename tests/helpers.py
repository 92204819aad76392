"""Test helpers: run a Tocsin worker against a test environment."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from operations import Actor, Context
from operations.config import ConfigStore, load_config_file
from operations.journal import open_journal
from workers.main import ActivitySet, build_worker
from workers.settings import Settings
from workflows.config import Config, default_config


def settings_for(task_queue: str, home: Path) -> Settings:
    """Settings pointing at a test task queue and a temporary home."""
    return replace(Settings(), task_queue=task_queue, home=home)


@contextlib.asynccontextmanager
async def tocsin_worker(
    client: Client,
    task_queue: str,
    home: Path,
    config: Path | None = None,
    replace_send: Callable[..., Any] | None = None,
) -> AsyncIterator[Worker]:
    """A real Tocsin worker; ``replace_send`` swaps the send activity for a test double.

    Its audit journal is the SQLite file ``<home>/audit.db``.
    """
    settings = settings_for(task_queue, home)
    journal = await open_journal(None, home)
    activities = ActivitySet(client, settings, ConfigStore(config), journal)
    acts = activities.functions()
    if replace_send is not None:
        acts = [a for a in acts if a != activities.delivery.send] + [replace_send]
    try:
        async with build_worker(client, settings, acts) as worker:
            yield worker
    finally:
        await activities.aclose()
        await journal.close()


def outbox(home: Path) -> list[dict[str, Any]]:
    """Records the console channel appended."""
    path = home / "outbox.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cli(
    *args: str,
    address: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``tocsin`` console script."""
    import os
    import sys

    full_env = {k: v for k, v in os.environ.items() if k not in ("TOCSIN_CONFIG", "TEMPORAL_ADDRESS")}
    if address:
        full_env["TEMPORAL_ADDRESS"] = address
    full_env.update(env or {})
    exe = str(Path(sys.executable).parent / "tocsin")
    return subprocess.run([exe, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


def address_of(client: Client) -> str:
    """host:port of a client's Temporal frontend."""
    return client.service_client.config.target_host


def ops(client: Client, task_queue: str, config: Path | Config | None = None) -> Context:
    """An operations :class:`Context` for tests (the config file's, or the built-in default)."""
    if isinstance(config, Config):
        cfg = config
    else:
        cfg = load_config_file(config) if config is not None else default_config()
    return Context(client, cfg, task_queue)


def person(name: str, via: str = "cli") -> Actor:
    """An unverified actor, as the direct-mode CLI makes one."""
    return Actor(name=name, via=via)


def deployment_config(
    hooks_url: str, *, bake: str, extra_environments: dict[str, Any] | None = None, **prod: Any
) -> dict[str, Any]:
    """A config with a ``prod`` environment deploying through hooks at ``hooks_url`` (four eyes, canary).

    Shared by the deployment workflow tests and ``scripts/record_histories.py``; ``prod`` overrides
    the environment's keys.
    """
    env: dict[str, Any] = {
        "approvers": ["alice", "bob", "carol"],
        "required_approvals": 1,
        "four_eyes": True,
        "approval_timeout": "2h",
        "reminder_every": "30m",
        "receiver": "deploys",
        "canary": {"steps": [10, 50, 100], "bake": bake},
        "hooks": {
            "deploy": {"url": hooks_url + "/deploy", "deadline": "1m"},
            "rollback": {"url": hooks_url + "/rollback", "deadline": "1m"},
            "health": [hooks_url + "/health"],
            "health_deadline": "2m",
        },
    }
    env.update(prod)
    return {
        "channels": {"console": {"type": "console"}, "deploy-chat": {"type": "console"}},
        "receivers": [{"name": "default", "channels": ["console"]}, {"name": "deploys", "channels": ["deploy-chat"]}],
        "route": {"receiver": "default"},
        "environments": {"prod": env, **(extra_environments or {})},
    }


async def until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 15.0) -> None:
    """Wait until ``predicate()`` (a plain or an async check) is true, polling every 50 ms."""
    for _ in range(int(timeout / 0.05)):
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")
