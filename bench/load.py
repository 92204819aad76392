"""Background load for :mod:`bench.alert_under_load`, in its own process.

It hosts the fake Slack the background groups are routed to (on ``--slack-port``, unpaced) and
sends Alertmanager webhooks to the gateway at ``--rate`` alerts per second, paced by the clock
(alert ``k`` is due at ``start + k / rate``; at most ``--concurrency`` requests in flight). Alert
``k`` is a new alert (its own ``instance``) in group ``k mod --groups`` of ``alertname=BenchLoad``
with label ``bench=load``. It prints ``load: flowing`` after the first accepted webhook and, at
SIGTERM/SIGINT, one JSON line ``load: {...}`` with what it sent, what the gateway accepted, the
achieved rate and how many messages its fake Slack received.

    python -m bench.load --gateway URL --slack-port PORT [--rate 50] [--groups 50] [--run ID]
    (the gateway token comes from TOCSIN_GATEWAY_TOKEN)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from dataclasses import dataclass

import httpx

from bench.latency import alert_body
from bench.procs import KEEPALIVE
from tests.fakes import FakeSlack

__all__ = ["LOAD_CHANNEL", "LOAD_TOKEN", "Tally", "main"]

LOAD_CHANNEL = "#load"
LOAD_TOKEN = "xoxb-bench-load"


@dataclass
class Tally:
    """What one load run did."""

    sent: int = 0
    accepted: int = 0
    failed: int = 0
    first_error: str = ""


async def _send(http: httpx.AsyncClient, k: int, groups: int, run: str, tally: Tally, flowing: asyncio.Event) -> None:
    """Send background alert ``k`` and count how the gateway answered."""
    labels = {"alertname": "BenchLoad", "bench": "load", "group": f"{run}-{k % groups}", "instance": f"i{k}"}
    tally.sent += 1
    try:
        resp = await http.post("/webhooks/alertmanager", json=alert_body(labels, labels["group"]))
    except httpx.HTTPError as exc:
        tally.failed += 1
        tally.first_error = tally.first_error or repr(exc)
        return
    if resp.status_code == 202:
        tally.accepted += 1
        if not flowing.is_set():
            flowing.set()
            print("load: flowing", flush=True)
    else:
        tally.failed += 1
        tally.first_error = tally.first_error or f"{resp.status_code} {resp.text[:200]}"


async def main(gateway: str, rate: float, groups: int, concurrency: int, run: str, slack: FakeSlack) -> None:
    """Send until SIGTERM/SIGINT, then print the tally."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tally, flowing = Tally(), asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()
    headers = {"Authorization": f"Bearer {os.environ.get('TOCSIN_GATEWAY_TOKEN', '')}"}
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=KEEPALIVE
    )
    async with httpx.AsyncClient(base_url=gateway, headers=headers, limits=limits, timeout=60) as http:
        start = time.perf_counter()
        k = 0
        while not stop.is_set():
            if len(tasks) >= concurrency:  # behind: wait for a slot, then catch up with the schedule
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.create_task(_send(http, k, groups, run, tally, flowing))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, start + k / rate - time.perf_counter()))
            except TimeoutError:
                pass
        elapsed = time.perf_counter() - start
        for task in list(tasks):
            task.cancel()
    report = {
        "sent": tally.sent,
        "accepted": tally.accepted,
        "failed": tally.failed,
        "seconds": round(elapsed, 2),
        "accepted_per_second": round(tally.accepted / elapsed, 1) if elapsed else 0.0,
        "load_channel_messages": len(slack.messages),
        "first_error": tally.first_error,
    }
    print(f"load: {json.dumps(report)}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--slack-port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--run", default="bg")
    args = parser.parse_args()
    with FakeSlack(token=LOAD_TOKEN, port=args.slack_port) as fake:
        asyncio.run(main(args.gateway, args.rate, args.groups, args.concurrency, args.run, fake))
