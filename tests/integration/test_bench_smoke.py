"""The benchmarks still run (tiny counts; no timing is asserted: numbers come from `make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TWO_SAMPLES = ["--samples", "2", "--warmup", "0"]


def run_benchmark(module: str, args: list[str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("bench.ci_to_slack", TWO_SAMPLES),
        ("bench.alert_to_slack", TWO_SAMPLES),
        ("bench.alert_under_load", [*TWO_SAMPLES, "--load-rate", "5", "--load-groups", "3"]),
    ],
)
def test_latency_benchmark_runs_and_reports_a_ratio(module: str, args: list[str]) -> None:
    lines = run_benchmark(module, args)
    assert any(
        line.startswith("raw Temporal: 1 workflow, 1 activity") and "p50" in line and "p99" in line for line in lines
    )
    assert lines[-1].startswith("p50 ratio vs raw:")


def test_ingest_benchmark_runs_and_reports_a_ratio() -> None:
    args = ["--webhooks", "20", "--groups", "4", "--concurrency", "4", "--rounds", "1", "--warmup", "0"]
    lines = run_benchmark("bench.ingest", args)
    assert any(line.startswith("raw Temporal: signal-with-start") and "/s" in line for line in lines)
    assert any(line.startswith("tocsin gateway: webhook → 202") and "/s" in line for line in lines)
    assert lines[-4].startswith("rate ratio tocsin/raw:")
    assert lines[-3].startswith("CPU seconds per round")
    for side, line in zip(("tocsin", "raw"), lines[-2:], strict=True):
        assert line.split()[0] == side and "server" in line and "worker" in line and line.endswith(" s"), line


def test_new_run_benchmark_reports_both_workflows_and_the_flow_modules() -> None:
    lines = run_benchmark("bench.new_run", ["--samples", "3", "--warmup", "1", "--modules"])
    assert any(line.startswith("raw entity") and "p50" in line for line in lines)
    assert any(line.startswith("IncidentWorkflow ") and "p50" in line for line in lines)
    assert any(line.strip().endswith("workflows.incident.workflow") for line in lines), lines
    assert lines[-1].startswith("p50 ratio IncidentWorkflow/raw entity:")
