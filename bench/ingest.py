"""Ingest throughput: single-alert Alertmanager webhooks accepted per second by the gateway, against raw Temporal.

The production topology (:mod:`bench.procs`: dev server, ``tocsin worker``, ``tocsin gateway`` and
the raw worker, each its own process). A round sends ``--webhooks`` single-alert webhooks
(payload version 4) over ``--groups`` groups at ``--concurrency`` (that many lanes, each with its own
keep-alive connection: :mod:`bench.wire`, or ``httpx`` with ``--client httpx``) and measures from the
first request to the last ``202 Accepted``. The raw round does the same count at the same concurrency from the same
benchmark process, with the same Temporal server: signal-with-start of a trivial entity workflow
(:class:`bench.raw_entity.RawEntityWorkflow`), one per group. Rounds alternate (raw first in even
rounds, Tocsin first in odd ones), each on fresh groups; after a Tocsin round the benchmark waits
for the incidents' first pages to reach the fake Slack, and after every round for a second, so
one round's work drains before the next.

It prints both rates (median of rounds), the per-call latency p50/p90/p99, the ratio Tocsin/raw
(target ≥ 0.9), and the CPU seconds each process used per round (:mod:`bench.cpu`): on two cores
the rate is set by what all of them burn, the sender's included.

Profile: ``TOCSIN_BENCH_PROFILE=DIR`` attaches ``py-spy`` (``pip install py-spy``) to the gateway
and to the worker for the whole run (idle time is left out), keeps the folded stacks in
``DIR/gateway.folded`` and ``DIR/worker.folded`` and prints where each one's time went
(:mod:`bench.pyspy`). Rates measured with the profilers attached are not the benchmark's numbers.
``TOCSIN_BENCH_PROFILE_GIL=1`` samples only the thread holding the GIL (``py-spy --gil``): the shares are
then of Python CPU time; without it, a thread waiting for the GIL counts as busy where it waits.

    python -m bench.ingest [--webhooks 400] [--groups 50] [--concurrency 20] [--rounds 5] [--warmup 1] [--client wire|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import percentile
from bench.cpu import CpuMeter, dev_server_pid
from bench.latency import CHAT, alert_body, slack_channel
from bench.procs import KEEPALIVE, RAW_QUEUE, TOKEN, Stack, production_stack
from bench.pyspy import WORKER_PIECES, summarize
from bench.raw_entity import ENTITY_SIGNAL
from bench.wire import Wire
from tests.fakes import FakeSlack

DRAIN_PAUSE = 1.0
"""Seconds of quiet after each round."""


@dataclass(frozen=True)
class Shape:
    """What one round sends."""

    webhooks: int
    groups: int
    concurrency: int


@dataclass
class Side:
    """One side's measurements: seconds per round, and every call's latency in ms."""

    seconds: list[float] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)

    def rates(self, webhooks: int) -> list[float]:
        """Accepted per second, per round."""
        return [webhooks / s for s in self.seconds]


async def _burst(shape: Shape, call: Callable[[int, int], Awaitable[None]], side: Side, keep: bool) -> None:
    """``shape.webhooks`` calls ``call(k, lane)`` over ``shape.concurrency`` lanes; record the round when ``keep``."""
    todo = iter(range(shape.webhooks))
    latencies: list[float] = []

    async def lane(i: int) -> None:
        for k in todo:
            t0 = time.perf_counter()
            await call(k, i)
            latencies.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(lane(i) for i in range(shape.concurrency)))
    if keep:
        side.seconds.append(time.perf_counter() - t0)
        side.calls.extend(latencies)


def _alert_labels(tag: str, k: int, groups: int) -> dict[str, str]:
    """Alert ``k`` of a round: a new ``instance`` in group (``service``) ``k mod groups``."""
    return {"alertname": "BenchIngest", "service": f"{tag}-{k % groups}", "severity": "warning", "instance": f"i{k}"}


Send = Callable[[int, dict[str, Any]], Awaitable[tuple[int, bytes]]]
"""POST one webhook on a lane; the gateway's status and body."""

WEBHOOK = "/webhooks/alertmanager"


@asynccontextmanager
async def _sender(stack: Stack, kind: str, lanes: int) -> AsyncIterator[Send]:
    """The Tocsin side's sender: ``wire`` (:mod:`bench.wire`, the default) or ``httpx``."""
    if kind == "httpx":
        async with stack.http(lanes) as http:

            async def post(lane: int, body: dict[str, Any]) -> tuple[int, bytes]:
                resp = await http.post(WEBHOOK, json=body)
                return resp.status_code, resp.content

            yield post
        return
    wire = Wire(stack.gateway_url, {"Authorization": f"Bearer {TOKEN}"}, lanes, idle=KEEPALIVE)
    try:
        yield lambda lane, body: wire.post_json(lane, WEBHOOK, body)
    finally:
        await wire.aclose()


async def _tocsin_round(send: Send, shape: Shape, tag: str, side: Side, keep: bool) -> None:
    """One round of webhooks to the gateway, each answered 202."""

    async def call(k: int, lane: int) -> None:
        labels = _alert_labels(tag, k, shape.groups)
        status, body = await send(lane, alert_body(labels, labels["service"]))
        if status != 202:
            raise RuntimeError(f"gateway answered {status}: {body[:300]!r}")

    await _burst(shape, call, side, keep)


async def _raw_round(stack: Stack, shape: Shape, tag: str, side: Side, keep: bool) -> None:
    """One round of raw signal-with-start calls, one entity per group."""

    async def call(k: int, lane: int) -> None:
        alert: dict[str, Any] = alert_body(_alert_labels(tag, k, shape.groups), tag)["alerts"][0]
        await stack.client.start_workflow(
            "RawEntityWorkflow",
            id=f"raw-entity/{tag}-{k % shape.groups}",
            task_queue=RAW_QUEUE,
            start_signal=ENTITY_SIGNAL,
            start_signal_args=[alert],
        )

    await _burst(shape, call, side, keep)


async def _rounds(
    stack: Stack, slack: FakeSlack, shape: Shape, rounds: int, warmup: int, cpu: CpuMeter, client: str
) -> tuple[Side, Side]:
    """``warmup + rounds`` alternating rounds of each side; returns (raw, Tocsin)."""
    raw, tocsin = Side(), Side()
    run = uuid.uuid4().hex[:6]
    pages = len(slack.messages)
    async with _sender(stack, client, shape.concurrency) as send:
        for r in range(warmup + rounds):
            keep = r >= warmup
            for side in ("raw", "tocsin") if r % 2 == 0 else ("tocsin", "raw"):
                tag = f"{side}-{run}-{r}"
                cpu.begin()
                if side == "raw":
                    await _raw_round(stack, shape, tag, raw, keep)
                else:
                    await _tocsin_round(send, shape, tag, tocsin, keep)
                    pages += shape.groups
                    await slack.await_messages(pages, timeout=300)  # every new incident paged
                await asyncio.sleep(DRAIN_PAUSE)
                if keep:
                    cpu.end(side)
    return raw, tocsin


def _report(shape: Shape, rounds: int, warmup: int, raw: Side, tocsin: Side, client: str) -> None:
    """Both rates, per-call latencies, and the rate ratio (last line)."""
    names = ("raw Temporal: signal-with-start, trivial entity", "tocsin gateway: webhook → 202 Accepted")
    width = max(len(n) for n in names) + 2
    print(
        f"Ingest: {shape.webhooks} single-alert webhooks over {shape.groups} groups at concurrency "
        f"{shape.concurrency} ({rounds} rounds each, {warmup} warm-up, interleaved)"
    )
    print("topology: Temporal dev server, tocsin worker, tocsin gateway, raw worker, client: separate processes")
    print(f"webhook sender: {client} (raw side: the Temporal client)")
    for name, side in zip(names, (raw, tocsin), strict=True):
        rates = side.rates(shape.webhooks)
        print(
            f"{name:<{width}} {statistics.median(rates):6.1f}/s   per call p50 {statistics.median(side.calls):6.1f} ms"
            f"   p90 {percentile(side.calls, 90):6.1f} ms   p99 {percentile(side.calls, 99):6.1f} ms"
            f"   (rounds: {', '.join(f'{x:.0f}' for x in rates)}/s)"
        )
    paired = [t / r for t, r in zip(tocsin.rates(shape.webhooks), raw.rates(shape.webhooks), strict=True)]
    ratio = statistics.median(tocsin.rates(shape.webhooks)) / statistics.median(raw.rates(shape.webhooks))
    print(f"rate ratio tocsin/raw: {ratio:.2f}x   (per round: {', '.join(f'{x:.2f}' for x in paired)}; target ≥ 0.9)")


async def main(shape: Shape, rounds: int, warmup: int, client: str = "wire") -> int:
    """Start the stack (and the profiler when asked), run the rounds, print the report."""
    profile = os.environ.get("TOCSIN_BENCH_PROFILE")
    with FakeSlack() as slack:
        config = {
            "channels": {"chat": slack_channel(slack, CHAT)},
            "receivers": [{"name": "chat", "channels": ["chat"]}],
            # Only first pages: updates of the groups would spill into the next round.
            "route": {"receiver": "chat", "group_by": ["alertname", "service"], "group_wait": "0s"},
        }
        async with production_stack(config, raw_slack=slack) as stack:
            folded = await _start_profilers(stack, Path(profile)) if profile else {}
            running = stack.procs.running
            pids = {name: running[name].pid for name in ("worker", "gateway", "raw-worker")}
            cpu = CpuMeter({"server": dev_server_pid() or 0, **pids, "client": os.getpid()})
            raw, tocsin = await _rounds(stack, slack, shape, rounds, warmup, cpu, client)
            for name in folded:
                stack.procs.stop(f"py-spy-{name}", signal.SIGINT, timeout=60)
    if "gateway" in folded:
        print(summarize(folded["gateway"]))
    if "worker" in folded:
        print(summarize(folded["worker"], pieces=WORKER_PIECES, what="worker"))
    _report(shape, rounds, warmup, raw, tocsin, client)
    print(f"CPU seconds per round (the round, its pages and the {DRAIN_PAUSE:g} s pause after it; median):")
    print(cpu.table(("tocsin", "raw")))
    return 0


async def _start_profilers(stack: Stack, out: Path) -> dict[str, Path]:
    """Attach py-spy to the gateway and the worker; returns where each one's folded stacks will be."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("TOCSIN_BENCH_PROFILE needs py-spy: pip install py-spy")
    out.mkdir(parents=True, exist_ok=True)
    folded = {}
    for name in ("gateway", "worker"):
        folded[name] = out / f"{name}.folded"
        pid = stack.procs.running[name].pid
        args = [spy, "record", "--pid", str(pid), "--rate", "200", "--nonblocking", "--format", "raw"]
        if os.environ.get("TOCSIN_BENCH_PROFILE_GIL"):
            args.append("--gil")
        stack.procs.start(f"py-spy-{name}", [*args, "--output", str(folded[name])], dict(os.environ), stack.home)
    await asyncio.sleep(1.0)  # attached before the first round
    for name in folded:
        stack.procs.check(f"py-spy-{name}")
    return folded


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=400, help="webhooks per round (default 400)")
    parser.add_argument("--groups", type=int, default=50, help="groups they fall into (default 50)")
    parser.add_argument("--concurrency", type=int, default=20, help="requests in flight (default 20)")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per side (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up rounds per side (default 1)")
    parser.add_argument(
        "--client",
        choices=("wire", "httpx"),
        default="wire",
        help="the webhook sender: bench.wire's lean HTTP/1.1 (default) or httpx",
    )
    args = parser.parse_args()
    shape = Shape(args.webhooks, args.groups, args.concurrency)
    sys.exit(asyncio.run(main(shape, args.rounds, args.warmup, args.client)))
