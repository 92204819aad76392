"""What a new user reads first: ``--version`` and ``--help`` that look like the README."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest

from tests.helpers import cli

COMMANDS = [
    [*c.split()]
    for c in (
        "build",
        "notify",
        "dev",
        "worker",
        "gateway",
        "config check",
        "routes test",
        "alert",
        "ack",
        "resolve",
        "escalate",
        "snooze",
        "silence add",
        "silence list",
        "silence expire",
        "status",
        "deploy",
        "deploy pause",
        "approve",
        "reject",
        "rollback",
        "audit export",
        "audit verify",
    )
]


def test_version() -> None:
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"tocsin {version('tocsin')}"


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_help_metavars_read_like_the_readme(command: list[str]) -> None:
    done = cli(*command, "--help")
    assert done.returncode == 0, done.stderr
    options = [line for line in done.stdout.splitlines() if line.strip().startswith("-")]
    assert options, done.stdout
    odd = [line for line in options if re.search(r"<[a-z][a-z\[\], ]*>", line)]
    assert odd == [], odd
