"""The README's five-minute tour works when pasted: its commands, as written, against a real dev server."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.helpers import address_of, cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TOUR = README[README.index("## A five-minute tour") : README.index("## How it works")]


def _commands() -> list[list[str]]:
    """Every ``tocsin …`` command of the tour, joined over backslash line breaks, comments dropped."""
    text = TOUR.replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.split(" # ")[0].strip().strip("`")
        match = re.search(r"(?:\.venv/bin/)?tocsin (build|notify) .*", line)
        if match:
            found.append(shlex.split(match.group(0).split("` ")[0])[1:])
    return found


def test_the_tour_names_a_build_and_a_notify() -> None:
    kinds = [c[0] for c in _commands()]
    assert "build" in kinds and "notify" in kinds, kinds


async def test_tour_commands_run_as_pasted(dev_env: WorkflowEnvironment) -> None:
    for args in _commands():
        done = cli(*args, address=address_of(dev_env.client), cwd=ROOT)
        assert done.returncode == 0, (args, done.stderr)
        assert done.stdout.strip(), args
