"""What the worker spends creating a workflow run in its sandbox, for an incident against the raw entity.

Every new incident (and every run after a continue-as-new, or after the worker's cache let one go)
costs its worker a fresh sandbox: the flow modules are imported anew (from code compiled once,
:mod:`workers.codecache`) and ``workflow.defn`` is applied again to the workflow class. Under ingest
load that is a quarter of the worker's busy time (``TOCSIN_BENCH_PROFILE`` with :mod:`bench.ingest`).
This measures it alone, on the worker's own runner (:func:`workers.registry.workflow_runner`):
``prepare_workflow`` of ``IncidentWorkflow`` against the raw baseline's one-module entity
(:class:`bench.raw_entity.RawEntityWorkflow`), interleaved, and with the time of each part of the
incident's flow modules when ``--modules`` is given. No Temporal server is involved.

    python -m bench.new_run [--samples 300] [--warmup 20] [--modules]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from types import ModuleType

from temporalio import workflow

from bench.common import percentile
from bench.raw_entity import RawEntityWorkflow
from workers import codecache
from workers.registry import workflow_runner
from workflows.incident.workflow import IncidentWorkflow


def _timed_modules() -> dict[str, float]:
    """Time each flow module's own body (its imports of other flow modules left out) from now on."""
    spent: dict[str, float] = {}
    nested: list[float] = []
    run = codecache.CachedSourceLoader.exec_module

    def exec_module(self: codecache.CachedSourceLoader, module: ModuleType) -> None:
        t0 = time.perf_counter()
        nested.append(0.0)
        try:
            run(self, module)
        finally:
            took, inner = time.perf_counter() - t0, nested.pop()
            spent[module.__name__] = spent.get(module.__name__, 0.0) + took - inner
            if nested:
                nested[-1] += took

    codecache.CachedSourceLoader.exec_module = exec_module  # type: ignore[method-assign,assignment]
    return spent


async def main(samples: int, warmup: int, modules: bool) -> int:
    """Interleaved new runs of both workflows; p50/p99 of each and the p50 ratio."""
    runner = workflow_runner()
    defns = {
        "raw entity (bench/raw_entity.py)": workflow._Definition.must_from_class(RawEntityWorkflow),
        "IncidentWorkflow": workflow._Definition.must_from_class(IncidentWorkflow),
    }
    spent = _timed_modules() if modules else {}
    took: dict[str, list[float]] = {name: [] for name in defns}
    for i in range(warmup + samples):
        if i == warmup:
            spent.clear()
        for name, defn in defns.items():
            t0 = time.perf_counter()
            runner.prepare_workflow(defn)  # a new run's sandbox, as the worker creates one
            if i >= warmup:
                took[name].append((time.perf_counter() - t0) * 1000)
    print(f"New workflow run in the worker's sandbox ({samples} samples each, {warmup} warm-up, interleaved)")
    for name, values in took.items():
        print(f"{name:<36} p50 {statistics.median(values):6.2f} ms   p99 {percentile(values, 99):6.2f} ms")
    if spent:
        print("IncidentWorkflow's flow modules, own body per run (ms):")
        for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
            print(f"  {seconds / samples * 1000:6.3f}  {name}")
    raw, incident = (statistics.median(v) for v in took.values())
    print(f"p50 ratio IncidentWorkflow/raw entity: {incident / raw:.1f}x")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--modules", action="store_true", help="time each flow module's body too")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.samples, args.warmup, args.modules)))
