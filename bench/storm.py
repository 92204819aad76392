"""An alert storm on one paced Slack channel: when does each new incident get its first page?

5,000 alerts (``--alerts``) over 50 groups (``--groups``) arrive through the ``tocsin gateway`` at
100 alerts per second (``--rate``), as Alertmanager webhooks (one per group with new alerts, every
quarter second). The groups open one after another over the first ``--open-seconds`` (10 s); every
later alert lands in a random open group, so already-paged incidents keep changing and post
"alerts changed" updates (``group_interval: 10s``) while new incidents still wait for their first
page. Every fifth group is critical. All of them are routed to one Slack channel (a fake, hosted by
this process) with Slack's default pacing (1 msg/s): 50 first pages need about 50 s.

The production topology of :mod:`bench.procs` (dev server, ``tocsin worker``, ``tocsin gateway``
and this sending process, each its own process). The raw-Temporal floor runs beside it on the
same server, started at the same moments: one one-activity workflow per group (:mod:`bench.raw`)
on a task queue of its own rate-limited by Temporal at the same 1 msg/s, run by a paced raw worker
in its own process (this module with ``--raw-worker``).

Printed: when each group's first page arrived after its first alert (p50/p99/max, critical
groups apart) and when the last one did; how many updates (thread replies) were posted on the
channel while some group's first page was still waiting, and how many first pages waited so (the
issue: none should wait behind an update); tracebacks in the worker's log; then the floor's line
and the ratio (``bench.common.report``).

    python -m bench.storm [--alerts 5000] [--groups 50] [--rate 100] [--single-partition]

``--single-partition`` starts the dev server with one partition per task queue, as the README
advises for the paced send queues (Temporal splits a queue's rate across its partitions, 4 by
default): the storm then measures Temporal's exact rate and strict page-first order.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import bench.procs
from bench.common import percentile, report
from bench.latency import raw_payload
from bench.procs import ROOT, Stack, log_tail, production_stack
from bench.raw import RawSlack, RawSlackWorkflow
from tests.fakes import FakeSlack
from workflows.policy.incidents import incident_id
from workflows.search import ALL_KEYS

CHANNEL = "#storm"
RAW_PACED_QUEUE = "bench-raw-paced"
RATE = 1.0
"""Slack's default pace (messages per second per channel); the raw floor's queue gets the same."""
TICK = 0.25
"""Seconds between two rounds of webhooks."""
GROUP_INTERVAL = "10s"
DONE_TIMEOUT = 600.0


def storm_config(slack: FakeSlack) -> dict[str, Any]:
    """One Slack channel with its default pacing, every group routed to it."""
    return {
        "channels": {"storm": {"type": "slack", "token": slack.token, "channel": CHANNEL, "api_url": slack.url}},
        "receivers": [{"name": "oncall", "channels": ["storm"]}],
        "route": {
            "receiver": "oncall",
            "group_by": ["alertname", "group"],
            "group_wait": "0s",
            "group_interval": GROUP_INTERVAL,
        },
    }


@dataclass
class Storm:
    """Which alert goes to which group, when, and what happened."""

    alerts: int
    groups: int
    rate: float
    open_seconds: float
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    opened: dict[int, float] = field(default_factory=dict)
    """group → when its first webhook was sent (perf_counter)."""
    refused: int = 0

    def group_of(self, k: int, rng: random.Random) -> int:
        """Groups open one after another over ``open_seconds``; later alerts land in any open group."""
        opening = int(self.open_seconds * self.rate)
        per_group = max(1, opening // self.groups)
        if k < per_group * self.groups:
            return k // per_group
        return rng.randrange(self.groups)

    def labels(self, g: int) -> dict[str, str]:
        return {"alertname": "StormAlert", "group": f"{self.run}-{g:02d}"}

    def severity(self, g: int) -> str:
        return "critical" if g % 5 == 0 else "warning"

    def incident(self, g: int) -> str:
        return incident_id("route", self.labels(g))

    def rounds(self) -> Iterator[tuple[float, dict[int, list[int]]]]:
        """(when, group → alert numbers) for each round of webhooks, ``TICK`` apart."""
        rng = random.Random(7)
        due: dict[int, list[int]] = {}
        tick = 0
        for k in range(self.alerts):
            at = k / self.rate
            while at >= (tick + 1) * TICK:
                yield tick * TICK, due
                due, tick = {}, tick + 1
            due.setdefault(self.group_of(k, rng), []).append(k)
        yield tick * TICK, due

    def body(self, g: int, ks: list[int]) -> dict[str, Any]:
        """An Alertmanager webhook (payload version 4) with group ``g``'s new alerts."""
        labels = {**self.labels(g), "severity": self.severity(g)}
        return {
            "version": "4",
            "status": "firing",
            "receiver": "tocsin",
            "groupKey": labels["group"],
            "alerts": [
                {
                    "status": "firing",
                    "labels": {**labels, "instance": f"i{k}"},
                    "annotations": {"summary": f"storm alert {k}"},
                    "startsAt": "2026-11-22T00:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                }
                for k in ks
            ],
        }


async def _post(http: httpx.AsyncClient, storm: Storm, g: int, ks: list[int]) -> None:
    resp = await http.post("/webhooks/alertmanager", json=storm.body(g, ks))
    if resp.status_code != 202:
        storm.refused += 1


async def send_storm(stack: Stack, storm: Storm, raw: Client) -> float:
    """Send every round on time (as far as the gateway keeps up); start the raw floor's workflow as each group opens."""
    payload = raw_payload()
    started = time.perf_counter()
    async with stack.http(connections=8) as http:
        for at, due in storm.rounds():
            delay = started + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            jobs: list[Coroutine[Any, Any, Any]] = []
            for g, ks in due.items():
                if g not in storm.opened:
                    storm.opened[g] = time.perf_counter()
                    raw_body = {**payload, "text": f"raw {storm.run}-{g:02d}"}
                    jobs.append(
                        raw.start_workflow(
                            "RawSlackWorkflow", raw_body, id=f"raw/{uuid.uuid4()}", task_queue=RAW_PACED_QUEUE
                        )
                    )
                jobs.append(_post(http, storm, g, ks))
            await asyncio.gather(*jobs)
    return started


def _wid(message: dict[str, Any]) -> str:
    """The incident a message belongs to (edits replace the metadata's step, never its workflow id)."""
    meta = message.get("metadata") or {}
    return str((meta.get("event_payload") or {}).get("key", "")).rsplit("/", 2)[0]


async def wait_first_pages(slack: FakeSlack, raw_slack: FakeSlack, storm: Storm) -> dict[str, Any]:
    """Wait for every group's first page (its incident's one top-level message) and every raw message.

    Returns when each group's first page arrived, when each update (a thread reply) was posted,
    and when each raw message arrived (``perf_counter`` seconds).
    """
    firsts = {storm.incident(g): g for g in range(storm.groups)}
    deadline = time.monotonic() + DONE_TIMEOUT
    page_at: dict[int, float] = {}
    raws: list[dict[str, Any]] = []
    next_progress = time.monotonic() + 10
    while len(page_at) < storm.groups or len(raws) < storm.groups:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(page_at)} first pages and {len(raws)} raw messages in {DONE_TIMEOUT:g}s")
        await asyncio.sleep(0.5)
        messages = slack.messages
        page_at = {
            firsts[_wid(m)]: float(m["received"]) for m in messages if not m.get("thread_ts") and _wid(m) in firsts
        }
        raws = [m for m in raw_slack.messages if m["text"].startswith(f"raw {storm.run}-")]
        if time.monotonic() > next_progress:
            next_progress += 10
            print(f"  … {len(page_at)} first pages, {len(raws)} raw messages, {len(messages)} posts", file=sys.stderr)
    updates = sorted(float(m["received"]) for m in slack.messages if m.get("thread_ts"))
    raw_at = {int(m["text"].rsplit("-", 1)[1]): float(m["received"]) for m in raws}
    return {"page_at": page_at, "updates": updates, "raw_at": raw_at}


def summarize(storm: Storm, started: float, seen: dict[str, Any], worker_log: str) -> tuple[list[float], list[float]]:
    """Print the storm's numbers; returns (raw, Tocsin) first-page delays in ms, group by group."""
    page_at, updates, raw_at = seen["page_at"], seen["updates"], seen["raw_at"]
    delay = {g: (page_at[g] - storm.opened[g]) * 1000 for g in page_at}
    critical = [delay[g] for g in delay if storm.severity(g) == "critical"]
    others = [delay[g] for g in delay if storm.severity(g) != "critical"]
    last_page = max(page_at.values())
    waiting = {g: (storm.opened[g], page_at[g]) for g in page_at}
    overtaking = [u for u in updates if any(opened < u < paged for opened, paged in waiting.values())]
    behind = sum(1 for opened, paged in waiting.values() if any(opened < u < paged for u in updates))
    tracebacks = worker_log.count("Traceback (most recent call last)")

    def dist(values: list[float]) -> str:
        return (
            f"p50 {statistics.median(values) / 1000:6.1f} s   p99 {percentile(values, 99) / 1000:6.1f} s"
            f"   max {max(values) / 1000:6.1f} s"
        )

    print(
        f"storm: {storm.alerts} alerts over {storm.groups} groups at {storm.rate:g}/s, one Slack channel at {RATE:g} msg/s"
    )
    print(f"  webhooks refused: {storm.refused}")
    print(f"  first page after the group's first alert, all groups:  {dist(list(delay.values()))}")
    print(f"                                     critical groups:  {dist(critical)}")
    print(f"                                        other groups:  {dist(others)}")
    print(f"  last first page {last_page - started:6.1f} s after the storm began")
    print(f"  update posts (thread replies): {len(updates)}, {len(overtaking)} of them while a first page was waiting")
    print(f"  first pages that waited while an update was posted: {behind} of {len(page_at)}")
    print(f"  tracebacks in the worker's log: {tracebacks}")
    paced = re.findall(r"sends paced by Temporal at [^\n]*", worker_log)
    print(f"  worker: {paced[0] if paced else 'no send queue (paced by the worker bucket)'}")
    raw = [(raw_at[g] - storm.opened[g]) * 1000 for g in sorted(raw_at)]
    return raw, [delay[g] for g in sorted(delay)]


def _single_partition() -> None:
    """Start the benchmark's dev server with one partition per task queue (the README's advice for send queues)."""

    async def start(home: Path) -> WorkflowEnvironment:
        extra = ["--dynamic-config-value", "matching.numTaskqueueReadPartitions=1"]
        extra += ["--dynamic-config-value", "matching.numTaskqueueWritePartitions=1"]
        return await WorkflowEnvironment.start_local(
            data_converter=pydantic_data_converter,
            dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
            dev_server_database_filename=str(home / "temporal.db"),
            search_attributes=ALL_KEYS,
            dev_server_log_level="error",
            dev_server_extra_args=extra,
        )

    bench.procs.start_dev_server = start


async def _wait_raw_worker(stack: Stack) -> None:
    deadline = time.monotonic() + bench.procs.READY_TIMEOUT
    while "raw-paced: polling" not in log_tail(stack.procs.log("raw-paced"), 50):
        stack.procs.check("raw-paced")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the paced raw worker did not start:\n{log_tail(stack.procs.log('raw-paced'))}")
        await asyncio.sleep(0.1)


async def main(alerts: int, groups: int, rate: float, open_seconds: float) -> int:
    """Run the storm on the production stack and print the report."""
    storm = Storm(alerts, groups, rate, open_seconds)
    with FakeSlack() as slack, FakeSlack() as raw_slack:
        async with production_stack(storm_config(slack), raw_slack=raw_slack) as stack:
            address = stack.client.service_client.config.target_host
            args = ["--raw-worker", "--address", address, "--slack-url", raw_slack.url]
            env = {**stack.env, "RAW_SLACK_TOKEN": raw_slack.token}
            stack.procs.start("raw-paced", [sys.executable, "-m", "bench.storm", *args], env, ROOT)
            await _wait_raw_worker(stack)
            started = await send_storm(stack, storm, stack.client)
            seen = await wait_first_pages(slack, raw_slack, storm)
            worker_log = stack.procs.log("worker").read_text(encoding="utf-8", errors="replace")
    raw, tocsin = summarize(storm, started, seen, worker_log)
    report(
        f"First page of each new group in the storm, paced at {RATE:g} msg/s",
        len(tocsin),
        0,
        raw,
        {"storm → incident → first Slack page": tocsin},
    )
    return 0


async def raw_worker(address: str, slack_url: str) -> None:
    """The raw floor's worker: one-activity workflows whose activities Temporal paces at ``RATE`` on their queue."""
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    raw = RawSlack(AsyncWebClient(token=os.environ.get("RAW_SLACK_TOKEN", ""), base_url=slack_url, retry_handlers=[]))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with Worker(
        client,
        task_queue=RAW_PACED_QUEUE,
        workflows=[RawSlackWorkflow],
        activities=[raw.post],
        max_task_queue_activities_per_second=RATE,
        disable_eager_activity_execution=True,  # an eager activity would skip the queue's rate limit
        graceful_shutdown_timeout=timedelta(seconds=2),
    ):
        print("raw-paced: polling", flush=True)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--rate", type=float, default=100, help="alerts per second (default 100)")
    parser.add_argument("--open-seconds", type=float, default=10, help="the groups open over this long (default 10)")
    parser.add_argument("--single-partition", action="store_true", help="one partition per task queue")
    parser.add_argument("--raw-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--slack-url", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.raw_worker:
        asyncio.run(raw_worker(opts.address, opts.slack_url))
        sys.exit(0)
    if opts.single_partition:
        _single_partition()
    sys.exit(asyncio.run(main(opts.alerts, opts.groups, opts.rate, opts.open_seconds)))
