"""The benchmarks still run (two samples each; no timing is asserted: numbers come from `make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["bench.ci_to_slack", "bench.alert_to_slack"])
def test_benchmark_runs_and_reports_a_ratio(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--samples", "2", "--warmup", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert any(
        line.startswith("raw Temporal: 1 workflow, 1 activity") and "p50" in line and "p99" in line for line in lines
    )
    assert lines[-1].startswith("p50 ratio vs raw:")
