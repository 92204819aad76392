"""The seed's 30-second critical SLA holds for the shipped pair of configs.

A critical alert waits first in Alertmanager (its route's ``group_wait``, then
the webhook), then in Tocsin (its route's ``group_wait``) before the first page.
The worst case is the sum of both waits plus delivery; it must stay under 30 s.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from operations.config import load_config_file
from workflows.config import Route
from workflows.policy.routing import build_tree, match_routes

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SLA = timedelta(seconds=30)
DELIVERY_BUDGET = timedelta(seconds=5)
"""Webhook, signal-with-start and the first send: measured in milliseconds (bench/), budgeted generously."""

CRITICAL = [
    {"alertname": "HighErrorRate", "severity": "critical", "service": "payments", "env": "prod"},
    {"alertname": "DiskFull", "severity": "critical", "service": "ledger"},
]


def _alertmanager_wait(labels: dict[str, str]) -> timedelta:
    """Alertmanager's own tree: the slowest group_wait among the routes the alert reaches."""
    raw = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text())
    tree = build_tree(Route.model_validate(raw["route"]))
    return max(node.group_wait for node in match_routes(tree, labels))


def _tocsin_wait(labels: dict[str, str]) -> timedelta:
    """Tocsin's tree: the fastest paging route's group_wait (every matching route pages; the first counts)."""
    config = load_config_file(DEPLOY / "tocsin.yaml")
    nodes = match_routes(config.route_tree(), labels)
    assert nodes, labels
    return min(node.group_wait for node in nodes)


@pytest.mark.parametrize("labels", CRITICAL, ids=[c["alertname"] for c in CRITICAL])
def test_worst_case_first_page_of_a_critical_alert_is_under_30_seconds(labels: dict[str, str]) -> None:
    worst = _alertmanager_wait(labels) + _tocsin_wait(labels) + DELIVERY_BUDGET
    assert worst < SLA, f"worst-case first page after {worst.total_seconds():.0f}s"


def test_non_critical_alerts_keep_the_calmer_default() -> None:
    labels = {"alertname": "SlowQueries", "severity": "warning", "service": "ledger"}
    assert _alertmanager_wait(labels) == timedelta(seconds=30)
