"""What the alert latency benchmarks share: one alert's webhook → its first Slack message, beside the raw floor.

A Tocsin sample is an Alertmanager webhook (payload version 4, one alert, a group of its own) POSTed
to the ``tocsin gateway`` process, until the fake Slack (in the benchmark process) records the
incident's first ``chat.postMessage``. A raw sample is a start of the one-activity raw workflow
(:mod:`bench.raw`, run by :mod:`bench.raw_worker` in its own process) making the same Slack call,
until the fake records it. Samples alternate (raw first on even samples, Tocsin first on odd ones)
so drift in the machine's load affects both alike.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from typing import Any

import httpx

from activities.channels.render import slack_blocks, slack_fallback_text
from bench.common import percentile
from bench.procs import RAW_QUEUE, Stack
from tests.fakes import FakeSlack
from workflows.policy.incidents import incident_message

__all__ = ["CHAT", "slack_channel", "alert_body", "raw_payload", "measure_pairs", "report_latency"]

CHAT = "#alerts"
"""The measured channel."""
RAW_NAME = "raw Temporal: 1 workflow, 1 activity"


def slack_channel(slack: FakeSlack, channel: str) -> dict[str, Any]:
    """A Slack channel on a fake, unpaced: measure delivery latency, not Slack's 1 msg/s pacing."""
    return {
        "type": "slack",
        "token": slack.token,
        "channel": channel,
        "api_url": slack.url,
        "rate_per_second": 1000,
        "burst": 1000,
    }


def alert_body(labels: dict[str, str], group_key: str) -> dict[str, Any]:
    """An Alertmanager webhook (payload version 4) carrying one firing alert."""
    return {
        "version": "4",
        "status": "firing",
        "receiver": "tocsin",
        "groupKey": group_key,
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": "5xx above 5%"},
                "startsAt": "2026-11-22T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }


def raw_payload() -> dict[str, Any]:
    """The raw workflow's ``chat.postMessage`` arguments: the same message an incident's first page sends."""
    sample = incident_message(
        incident="incident/x",
        status="notified",
        severity="critical",
        group_labels={"alertname": "HighErrorRate", "service": "payments"},
        alerts=[{"status": "firing", "labels": {"alertname": "HighErrorRate"}, "annotations": {"summary": "5xx"}}],
        level=1,
    )
    return {"channel": CHAT, "text": slack_fallback_text(sample), "blocks": slack_blocks(sample)}


async def _arrival(slack: FakeSlack, count: int) -> dict[str, Any]:
    """The ``count``-th message the fake accepted (waiting for it up to 30 s)."""
    return (await slack.await_messages(count, timeout=30))[count - 1]


async def _raw_sample(stack: Stack, slack: FakeSlack, payload: dict[str, Any], count: int) -> float:
    """Start the raw workflow; seconds until its message arrives."""
    t0 = time.perf_counter()
    await stack.client.start_workflow("RawSlackWorkflow", payload, id=f"raw/{uuid.uuid4()}", task_queue=RAW_QUEUE)
    return float((await _arrival(slack, count))["received"]) - t0


async def _tocsin_sample(http: httpx.AsyncClient, slack: FakeSlack, service: str, count: int) -> float:
    """POST one new group's alert to the gateway; seconds until its incident's first page arrives."""
    body = alert_body({"alertname": "HighErrorRate", "service": service, "severity": "critical"}, service)
    t0 = time.perf_counter()
    resp = await http.post("/webhooks/alertmanager", json=body)
    if resp.status_code != 202:
        raise RuntimeError(f"gateway answered {resp.status_code}: {resp.text[:300]}")
    message = await _arrival(slack, count)
    if service not in json.dumps(message):
        raise RuntimeError(f"message {count} is not {service}'s first page: {json.dumps(message)[:300]}")
    return float(message["received"]) - t0


async def measure_pairs(
    stack: Stack, http: httpx.AsyncClient, slack: FakeSlack, samples: int, warmup: int
) -> tuple[list[float], list[float]]:
    """``warmup + samples`` interleaved pairs; returns (raw, Tocsin) latencies in ms, warm-up left out.

    ``slack`` must receive nothing but these samples' messages while this runs.
    """
    payload = raw_payload()
    run = uuid.uuid4().hex[:6]
    count = len(slack.messages)
    raw: list[float] = []
    tocsin: list[float] = []
    for i in range(warmup + samples):
        results: dict[str, float] = {}
        for side in ("raw", "tocsin") if i % 2 == 0 else ("tocsin", "raw"):
            count += 1
            if side == "raw":
                results[side] = await _raw_sample(stack, slack, payload, count)
            else:
                results[side] = await _tocsin_sample(http, slack, f"svc-{run}-{i}", count)
        if i >= warmup:
            raw.append(results["raw"] * 1000)
            tocsin.append(results["tocsin"] * 1000)
    return raw, tocsin


def report_latency(
    title: str, samples: int, warmup: int, baseline: list[float], name: str, measured: list[float], target: str
) -> None:
    """p50/p90/p99 of the raw floor and of the measured path, then the p50 and p90 ratios (last line)."""
    width = max(len(RAW_NAME), len(name)) + 2

    def row(label: str, values: list[float]) -> str:
        return (
            f"{label:<{width}} p50 {statistics.median(values):7.1f} ms   p90 {percentile(values, 90):7.1f} ms"
            f"   p99 {percentile(values, 99):7.1f} ms"
        )

    print(f"{title} ({samples} samples each, {warmup} warm-up, interleaved)")
    print("topology: Temporal dev server, tocsin worker, tocsin gateway, raw worker, client: separate processes")
    print(row(RAW_NAME, baseline))
    print(row(name, measured))
    p50 = statistics.median(measured) / statistics.median(baseline)
    p90 = percentile(measured, 90) / percentile(baseline, 90)
    print(f"p50 ratio vs raw: {p50:.2f}x   p90 ratio vs raw: {p90:.2f}x   (target ≤ {target})")
