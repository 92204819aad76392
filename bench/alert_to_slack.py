"""Alert in (Alertmanager webhook on the gateway) → Slack message out, idle, against a raw one-activity workflow.

The production topology (:mod:`bench.procs`): the Temporal dev server, a real ``tocsin worker``, a
real ``tocsin gateway`` (bearer token) and the raw baseline's worker each run in their own process;
the benchmark process sends (HTTP POSTs to the gateway, starts of the raw workflow) and hosts the
fake Slack that records when each message arrives. Each alert is a new group, so each sample starts
a new incident (``group_wait: 0s``); samples alternate with the raw baseline (:mod:`bench.latency`).
The same path under background load is :mod:`bench.alert_under_load`.

    python -m bench.alert_to_slack [--samples N] [--warmup N]
"""

from __future__ import annotations

from bench.common import run_cli
from bench.latency import CHAT, measure_pairs, report_latency, slack_channel
from bench.procs import production_stack
from tests.fakes import FakeSlack


async def main(samples: int, warmup: int) -> int:
    """Measure ``warmup + samples`` interleaved pairs on an otherwise idle stack and print the report."""
    with FakeSlack() as slack:
        config = {
            "channels": {"chat": slack_channel(slack, CHAT)},
            "receivers": [{"name": "chat", "channels": ["chat"]}],
            "route": {"receiver": "chat", "group_by": ["alertname", "service"], "group_wait": "0s"},
        }
        async with production_stack(config, raw_slack=slack) as stack, stack.http() as http:
            baseline, tocsin = await measure_pairs(stack, http, slack, samples, warmup)
    report_latency(
        "Alert in → Slack message out, idle",
        samples,
        warmup,
        baseline,
        "Alertmanager webhook → incident → Slack",
        tocsin,
        target="1.5",
    )
    return 0


if __name__ == "__main__":
    run_cli(main, __doc__ or "")
