"""Alert in → first Slack message out while other groups are busy, against the raw floor under the same load.

The production topology of :mod:`bench.alert_to_slack` (dev server, ``tocsin worker``, ``tocsin
gateway``, raw worker and the sending benchmark process, each its own process), plus a fifth
process, :mod:`bench.load`: it sends ``--load-rate`` alerts per second (default 50) through the
same gateway into ``--load-groups`` other groups (default 50, ``bench="load"``), routed to another
channel — a second fake Slack, unpaced, hosted by the load process — whose groups post an update
every ``group_interval`` (5 s). Once the load flows, interleaved pairs are measured as in the idle
benchmark: a new group's alert webhook → its first page on the measured fake, against the raw
one-activity workflow's message. Both sides see the same load; the report says what load was
achieved.

    python -m bench.alert_under_load [--samples N] [--warmup N] [--load-rate R] [--load-groups G]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from bench.latency import CHAT, measure_pairs, report_latency, slack_channel
from bench.load import LOAD_CHANNEL, LOAD_TOKEN
from bench.procs import READY_TIMEOUT, ROOT, Procs, log_tail, production_stack
from tests.fakes import FakeSlack
from tests.procs import free_port

SETTLE = 3.0
"""Seconds the load runs before the first sample (first pages of the load groups, steady state)."""
LOAD_GROUP_INTERVAL = "5s"


def bench_config(slack: FakeSlack, load_port: int) -> dict[str, Any]:
    """The measured route (root, ``#alerts`` on ``slack``) and the load route (``bench="load"``, ``#load``)."""
    load_channel = {
        "type": "slack",
        "token": LOAD_TOKEN,
        "channel": LOAD_CHANNEL,
        "api_url": f"http://127.0.0.1:{load_port}/api/",
        "rate_per_second": 1000,
        "burst": 1000,
    }
    return {
        "channels": {"chat": slack_channel(slack, CHAT), "load": load_channel},
        "receivers": [{"name": "chat", "channels": ["chat"]}, {"name": "load", "channels": ["load"]}],
        "route": {
            "receiver": "chat",
            "group_by": ["alertname", "service"],
            "group_wait": "0s",
            "routes": [
                {
                    "matchers": ['bench="load"'],
                    "receiver": "load",
                    "group_by": ["alertname", "group"],
                    "group_wait": "0s",
                    "group_interval": LOAD_GROUP_INTERVAL,
                }
            ],
        },
    }


async def _wait_flowing(procs: Procs) -> None:
    """Wait until the load process says its first webhook was accepted."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        procs.check("load")
        if "load: flowing" in log_tail(procs.log("load"), 200):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the load did not flow within {READY_TIMEOUT:g}s:\n{log_tail(procs.log('load'))}")


def _load_summary(procs: Procs) -> dict[str, Any]:
    """The load process's closing tally (see :mod:`bench.load`)."""
    for line in reversed(log_tail(procs.log("load"), 200).splitlines()):
        if line.startswith("load: {"):
            return dict(json.loads(line.removeprefix("load: ")))
    raise RuntimeError(f"the load process printed no tally:\n{log_tail(procs.log('load'))}")


async def main(samples: int, warmup: int, rate: float, groups: int) -> int:
    """Start the stack and the load, measure ``warmup + samples`` interleaved pairs, print the report."""
    with FakeSlack() as slack:
        load_port = free_port()
        async with production_stack(bench_config(slack, load_port), raw_slack=slack) as stack, stack.http() as http:
            load_args = ["--gateway", stack.gateway_url, "--slack-port", str(load_port)]
            load_args += ["--rate", str(rate), "--groups", str(groups)]
            stack.procs.start("load", [sys.executable, "-m", "bench.load", *load_args], stack.env, ROOT)
            await _wait_flowing(stack.procs)
            await asyncio.sleep(SETTLE)
            baseline, tocsin = await measure_pairs(stack, http, slack, samples, warmup)
            stack.procs.stop("load")
            load = _load_summary(stack.procs)
    print(
        f"background load: {load['accepted']} alerts accepted in {load['seconds']} s "
        f"({load['accepted_per_second']}/s of {rate:g}/s asked) into {groups} groups, "
        f"{load['failed']} refused, {load['load_channel_messages']} messages on the load channel"
    )
    if load["failed"] or load["accepted_per_second"] < 0.9 * rate:
        print(f"warning: the load fell short of {rate:g}/s ({load['first_error'] or 'the gateway kept it waiting'})")
    report_latency(
        f"Alert in → Slack message out, {rate:g} alerts/s into {groups} other groups",
        samples,
        warmup,
        baseline,
        "Alertmanager webhook → incident → Slack",
        tocsin,
        target="1.0",
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--load-rate", type=float, default=50, help="background alerts per second (default 50)")
    parser.add_argument("--load-groups", type=int, default=50, help="groups the background alerts go to (default 50)")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.samples, args.warmup, args.load_rate, args.load_groups)))
