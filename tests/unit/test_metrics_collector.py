"""The journal's Prometheus metrics: counted from a real SQLite journal, incrementally, and recounted after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from operations.journal import open_journal
from operations.metrics_collector import JournalMetrics
from workflows.audit import JournalEntry

NOW = datetime.now(UTC).replace(microsecond=0)


def entry(n: int, minutes_ago: float, action: str, obj: str, **detail: Any) -> JournalEntry:
    return JournalEntry(
        key=f"k/{n}", time=NOW - timedelta(minutes=minutes_ago), action=action, object=obj, detail=detail
    )


def samples(collector: JournalMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


SCENARIO = [
    ("build.reported", "pipeline/acme/pay/main", {"repo": "acme/pay", "branch": "main", "commit": "c1", "status": "started", "workflow": "ci"}, 120),
    ("build.reported", "pipeline/acme/pay/main", {"repo": "acme/pay", "branch": "main", "commit": "c1", "status": "success", "workflow": "ci", "duration_seconds": 420, "queued_seconds": 15, "flaky_tests": 2}, 110),
    ("build.reported", "pipeline/acme/pay/dev", {"repo": "acme/pay", "branch": "dev", "commit": "c2", "status": "failure", "workflow": "ci", "duration_seconds": 100, "flaky_tests": 1}, 100),
    ("build.reported", "pipeline/acme/pay/dev", {"repo": "acme/pay", "branch": "dev", "commit": "c3", "status": "started", "workflow": "lint"}, 40),
    ("build.reported", "pipeline/acme/pay/dev", {"repo": "acme/pay", "branch": "dev", "commit": "c4", "status": "failure", "workflow": "tocsin-drill"}, 39),
    ("deployment.requested", "deploy/pay/prod/1", {"service": "pay", "env": "prod", "version": "1", "commit": "c1"}, 100),
    ("deployment.approved", "deploy/pay/prod/1", {"service": "pay", "env": "prod", "version": "1"}, 95),
    ("deployment.finished", "deploy/pay/prod/1", {"service": "pay", "env": "prod", "version": "1", "outcome": "deployed"}, 90),
    ("deployment.requested", "deploy/pay/prod/2", {"service": "pay", "env": "prod", "version": "2"}, 60),
    ("deployment.stage", "deploy/pay/prod/2", {"service": "pay", "env": "prod", "version": "2", "stage": "canary"}, 55),
    ("deployment.finished", "deploy/pay/prod/2", {"service": "pay", "env": "prod", "version": "2", "outcome": "rolled_back"}, 50),
    ("deployment.requested", "deploy/pay/prod/3", {"service": "pay", "env": "prod", "version": "3"}, 5),
    ("incident.state", "incident/a", {"event": "triggered", "status": "triggered", "level": 0, "service": "pay", "severity": "critical"}, 30),
    ("incident.state", "incident/a", {"event": "notified", "status": "notified", "level": 2, "service": "pay", "severity": "critical"}, 25),
    ("notification.delivered", "incident/a", {"receiver": "oncall", "channel": "slack", "outcome": "delivered"}, 25),
    ("notification.dead_lettered", "incident/a", {"receiver": "oncall", "channel": "hook", "outcome": "failed"}, 24),
]  # fmt: skip


async def test_counts_from_the_journal_incrementally_and_again_after_a_restart(tmp_path: Path) -> None:
    global NOW
    NOW = datetime.now(UTC).replace(microsecond=0)  # the collector reads the clock: times are relative to the test's
    journal = await open_journal(None, tmp_path)
    try:
        first, rest = SCENARIO[:8], SCENARIO[8:]
        await journal.append([entry(i, ago, a, o, **d) for i, (a, o, d, ago) in enumerate(first)])
        collector = JournalMetrics()
        assert samples(collector) == {}  # nothing before the journal has been read
        assert await collector.catch_up(journal) == 8
        got = samples(collector)
        assert got[key("tocsin_builds_total", repo="acme/pay", branch="main", status="success")] == 1
        assert got[key("tocsin_deployments_total", service="pay", env="prod", outcome="deployed")] == 1
        # lead time: first build of c1 (120 min ago) to live (90 min ago) = 30 min
        assert got[key("tocsin_deployment_lead_time_seconds_sum", service="pay", env="prod")] == 1800
        assert got[key("tocsin_deployment_approval_wait_seconds_sum", env="prod", decision="approved")] == 300
        assert got[key("tocsin_build_queue_seconds_sum", repo="acme/pay")] == 15
        assert got[key("tocsin_build_duration_seconds_bucket", repo="acme/pay", le="300.0")] == 1
        assert got[key("tocsin_build_duration_seconds_bucket", repo="acme/pay", le="600.0")] == 2
        await journal.append([entry(100 + i, ago, a, o, **d) for i, (a, o, d, ago) in enumerate(rest)])
        assert await collector.catch_up(journal) == 8
        assert await collector.catch_up(journal) == 0
        got = samples(collector)
        assert got[key("tocsin_rollbacks_total", service="pay", env="prod")] == 1
        assert got[key("tocsin_deployments_total", service="pay", env="prod", outcome="rolled_back")] == 1
        assert got[key("tocsin_deployment_queue_size", service="pay", env="prod")] == 1
        assert got[key("tocsin_pipelines_failing", repo="acme/pay")] == 1  # not the drill's
        assert got[key("tocsin_flaky_tests", repo="acme/pay")] == 3  # main's 2 + dev's 1
        assert got[key("tocsin_builds_total", repo="acme/pay", branch="dev", status="failure")] == 1
        running = got[key("tocsin_pipeline_running_seconds", repo="acme/pay", branch="dev", workflow="lint")]
        assert 40 * 60 <= running < 45 * 60
        assert key("tocsin_pipeline_running_seconds", repo="acme/pay", branch="main", workflow="ci") not in got
        assert got[key("tocsin_incidents_total", service="pay", severity="critical")] == 1
        assert got[key("tocsin_incidents_open", severity="critical")] == 1
        assert got[key("tocsin_incident_escalation_backlog", severity="critical")] == 1
        assert got[key("tocsin_deliveries_total", receiver="oncall", channel="hook", outcome="dead_lettered")] == 1
        assert got[key("tocsin_dora_deployment_frequency_per_day", service="pay", env="prod")] == 1 / 30
        assert (
            got[key("tocsin_dora_change_failure_ratio", service="pay", env="prod")] == 1.0
        )  # 2: rolled back; 1: incident
        assert got[key("tocsin_dora_lead_time_seconds", service="pay", env="prod", quantile="0.5")] == 1800
        assert got[key("tocsin_journal_last_seq")] == 16
        # a restarted process recounts the same figures from the journal
        again = JournalMetrics()
        assert await again.catch_up(journal) == 16
        fresh = samples(again)
        for name in ("tocsin_builds_total", "tocsin_deployments_total", "tocsin_rollbacks_total"):
            assert {k: v for k, v in fresh.items() if k[0] == name} == {k: v for k, v in got.items() if k[0] == name}
    finally:
        await journal.close()
