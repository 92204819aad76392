"""Checking a config's channels the way the worker builds them, without sending anything.

``tocsin config check`` calls :func:`channel_issues` so that a malformed URL or a
``${SECRET}`` missing from the environment is reported before the first send,
naming the key path, instead of failing a notification at 3 a.m.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import httpx

from activities.channels import REGISTRY, ChannelDeps, ChannelError
from operations.config import resolve_env
from workflows.config import Config, ConfigIssue

__all__ = ["channel_issues"]


def _check(config: Config, environ: Mapping[str, str], deps: ChannelDeps) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for name, spec in config.channels.items():
        path = f"channels.{name}"
        try:
            settings = resolve_env(spec.settings(), environ)
        except KeyError as exc:
            issues.append(ConfigIssue(path=path, message=f"environment variable {exc.args[0]} is not set"))
            continue
        cls = REGISTRY.get(spec.type)
        if cls is None:
            issues.append(ConfigIssue(path=f"{path}.type", message=f"type '{spec.type}' is not available"))
            continue
        try:
            cls(name, settings, deps)
        except ChannelError as exc:
            issues.append(ConfigIssue(path=path, message=str(exc)))
        except (ValueError, TypeError, KeyError) as exc:
            issues.append(ConfigIssue(path=path, message=f"{type(exc).__name__}: {exc}"))
    return issues


def channel_issues(config: Config, environ: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    """Build every channel of ``config`` (settings resolved from ``environ``); one issue per channel that fails.

    Nothing is sent and no connection is opened: channels only validate their settings when built.
    """

    async def run() -> list[ConfigIssue]:
        async with httpx.AsyncClient() as http:
            with tempfile.TemporaryDirectory(prefix="tocsin-check-") as home:
                deps = ChannelDeps(http=http, home=Path(home))
                return _check(config, os.environ if environ is None else environ, deps)

    return asyncio.run(run())
