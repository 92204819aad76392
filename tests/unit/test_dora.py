"""DORA keys, build success rate and MTTA/MTTR from journal records, with exact numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from workflows.policy.dora import Ledger, build_figures, dora_keys, incident_figures, percentile

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


class Records:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, minutes: float, action: str, obj: str, **detail: Any) -> None:
        self.items.append(
            {"seq": len(self.items) + 1, "time": at(minutes), "action": action, "object": obj, "detail": detail}
        )

    def build(self, minutes: float, commit: str, status: str, repo: str = "acme/pay", **extra: Any) -> None:
        self.add(minutes, "build.reported", f"pipeline/{repo}/main", repo=repo, branch="main", commit=commit,
                 status=status, **extra)  # fmt: skip

    def deploy(
        self,
        wid: str,
        requested: float,
        finished: float,
        outcome: str,
        commit: str | None = None,
        canary: float | None = None,
    ) -> None:
        _, service, env, version = wid.split("/")[:4]
        base = {"service": service, "env": env, "version": version}
        self.add(requested, "deployment.requested", wid, commit=commit, **base)
        if canary is not None:
            self.add(canary, "deployment.stage", wid, stage="canary", **base)
        self.add(finished, "deployment.finished", wid, outcome=outcome, **base)

    def incident(self, iid: str, triggered: float, acked: float | None, resolved: float | None, **labels: Any) -> None:
        base = {"service": labels.get("service", "pay"), "severity": labels.get("severity", "critical")}
        self.add(triggered, "incident.state", iid, event="triggered", status="triggered", level=0, **base)
        if acked is not None:
            self.add(acked, "incident.acknowledged", iid, status="acknowledged", **base)
        if resolved is not None:
            self.add(resolved, "incident.resolved", iid, status="resolved", **base)

    def ledger(self) -> Ledger:
        ledger = Ledger()
        for record in sorted(self.items, key=lambda r: r["time"]):
            ledger.add(record)
        return ledger


def scenario() -> Records:
    """Four production deployments of pay over a day, and one of staging."""
    r = Records()
    r.build(0, "c1", "started")
    r.build(10, "c1", "success", duration_seconds=600)
    r.build(20, "c2", "failure", duration_seconds=300)
    r.build(30, "c2", "success", duration_seconds=400)
    r.build(40, "c3", "failure", flaky=True)
    r.build(50, "c3", "timed_out")
    r.build(55, "c9", "cancelled")
    r.build(56, "c8", "success", repo="acme/other")
    r.build(57, "c7", "failure", workflow="tocsin-drill")  # a drill: no build
    # 1: c1 goes live at 70 (lead 70 min from the first build at 0); an incident at 100 is blamed on it
    r.deploy("deploy/pay/prod/1", 60, 70, "deployed", commit="c1")
    r.incident("incident/a", 100, 105, 130)
    # 2: c2 rolled back during its canary: restore 200 (canary) → 215 (rolled back)
    r.deploy("deploy/pay/prod/2", 180, 215, "rolled_back", commit="c2", canary=200)
    # 3: c3 goes live at 300 (lead 300-40 = 260), later rolled back by a /rollback run at 330
    r.deploy("deploy/pay/prod/3", 290, 300, "deployed", commit="c3")
    r.add(325, "rollback.requested", "deploy/pay/prod/3/rollback", service="pay", env="prod")
    r.add(330, "deployment.finished", "deploy/pay/prod/3/rollback", outcome="rolled_back", service="pay", env="prod")
    # 4: no commit: lead from its request (400 → 410 = 10 min); nothing goes wrong
    r.deploy("deploy/pay/prod/4", 400, 410, "deployed")
    # 5: rejected — never went out
    r.deploy("deploy/pay/prod/5", 500, 510, "rejected", commit="c9")
    # staging: an unseen commit, lead from request
    r.deploy("deploy/pay/staging/1", 50, 55, "deployed", commit="zz")
    # a warning incident is not blamed on anything
    r.incident("incident/b", 420, None, 440, severity="warning")
    return r


NOW = T0 + timedelta(days=1)
WINDOW = timedelta(days=1)


def test_dora_keys_per_service_and_env() -> None:
    keys = {(k.service, k.env): k for k in dora_keys(scenario().ledger(), NOW, WINDOW)}
    assert set(keys) == {("pay", "prod"), ("pay", "staging")}
    prod = keys[("pay", "prod")]
    assert prod.deployments == 3  # 1, 3, 4 went live (3 was rolled back later, it still went out)
    assert prod.deployment_frequency_per_day == 3.0
    # lead times: 1 → 70 min, 3 → 260 min, 4 → 10 min
    assert prod.lead_time_changes == 3
    assert prod.lead_time_median_seconds == 70 * 60
    assert prod.lead_time_p90_seconds == 260 * 60
    # changes: 1, 2, 3, 4 (5 was rejected); failed: 1 (incident), 2 (rolled back), 3 (rolled back later)
    assert (prod.changes, prod.failed_changes) == (4, 3)
    assert prod.change_failure_rate == 0.75
    # restores: incident 100 → 130 (30 min), canary 200 → 215 (15), live 300 → rollback 330 (30)
    assert prod.time_to_restore_median_seconds == 30 * 60
    assert (prod.restored, prod.unrestored) == (3, 0)
    staging = keys[("pay", "staging")]
    assert staging.lead_time_median_seconds == 5 * 60
    assert staging.change_failure_rate == 0.0


def test_window_and_filters() -> None:
    ledger = scenario().ledger()
    # a window of the first 290 minutes: deployments 1 and 2 only
    span = timedelta(minutes=290)
    early = dora_keys(ledger, T0 + span, span, service="pay", env="prod")
    assert len(early) == 1
    assert early[0].deployments == 1
    assert early[0].deployment_frequency_per_day == 1 / (290 / 1440)
    assert (early[0].changes, early[0].failed_changes) == (2, 2)
    assert dora_keys(ledger, NOW, WINDOW, service="nope") == []
    last_two = dora_keys(ledger, NOW, WINDOW, env="prod", last_n=2)[0]
    assert last_two.lead_time_changes == 2
    assert last_two.lead_time_median_seconds == (260 + 10) / 2 * 60


def test_incident_blamed_only_before_the_next_deployment_goes_live() -> None:
    r = Records()
    r.deploy("deploy/api/prod/1", 0, 10, "deployed")
    r.deploy("deploy/api/prod/2", 20, 30, "deployed")
    r.incident("incident/x", 40, 41, 50, service="api")  # after 2 went live: blamed on 2, not 1
    keys = dora_keys(r.ledger(), NOW, WINDOW)[0]
    assert (keys.changes, keys.failed_changes) == (2, 1)
    assert keys.time_to_restore_median_seconds == 10 * 60


def test_unresolved_failure_is_unrestored_until_the_next_deployment() -> None:
    r = Records()
    r.deploy("deploy/api/prod/1", 0, 10, "deployed")
    r.incident("incident/x", 15, None, None, service="api")
    keys = dora_keys(r.ledger(), NOW, WINDOW)[0]
    assert (keys.failed_changes, keys.unrestored, keys.time_to_restore_median_seconds) == (1, 1, None)
    r.deploy("deploy/api/prod/2", 20, 45, "deployed")  # the fix goes live at 45: restored after 30 min
    keys = dora_keys(r.ledger(), NOW, WINDOW)[0]
    assert (keys.failed_changes, keys.unrestored, keys.time_to_restore_median_seconds) == (1, 0, 30 * 60)


def test_late_rollback_of_the_same_run_marks_the_change_failed() -> None:
    r = Records()
    r.deploy("deploy/api/prod/1", 0, 10, "deployed")
    r.add(25, "deployment.finished", "deploy/api/prod/1", outcome="rolled_back", service="api", env="prod")
    keys = dora_keys(r.ledger(), NOW, WINDOW)[0]
    assert (keys.deployments, keys.failed_changes, keys.time_to_restore_median_seconds) == (1, 1, 15 * 60)


def test_build_figures() -> None:
    ledger = scenario().ledger()
    figures = build_figures(ledger, NOW, WINDOW)
    # finished: success ×3 (one of another repo), failure ×2 (one flaky), timed_out, cancelled
    assert figures.builds == 7
    assert (figures.successes, figures.failures, figures.flaky) == (3, 2, 1)
    assert figures.success_rate == 3 / 5
    assert figures.duration_avg_seconds == (600 + 300 + 400) / 3
    mine = build_figures(ledger, NOW, WINDOW, service="pay")
    assert (mine.successes, mine.success_rate) == (2, 2 / 4)


def test_incident_figures() -> None:
    figures = incident_figures(scenario().ledger(), NOW, WINDOW)
    assert figures.incidents == 2
    assert figures.open == 0
    assert figures.mtta_seconds == 5 * 60
    assert figures.mttr_seconds == (30 + 20) / 2 * 60
    assert figures.mttr_median_seconds == 25 * 60


def test_percentile_nearest_rank_and_bounds() -> None:
    assert percentile([], 90) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile(list(map(float, range(1, 11))), 90) == 9.0
    assert percentile(list(map(float, range(1, 11))), 50) == 5.0


def test_prune_forgets_what_ended_before() -> None:
    ledger = scenario().ledger()
    ledger.prune(T0 + timedelta(minutes=305))
    assert sorted(ledger.deployments) == ["deploy/pay/prod/4", "deploy/pay/prod/5"]
    assert list(ledger.incidents) == ["incident/b"]
    assert ledger.builds == []


def test_an_incident_with_an_env_is_blamed_on_that_environment_only() -> None:
    r = Records()
    r.deploy("deploy/api/prod/1", 0, 10, "deployed")
    r.deploy("deploy/api/staging/2", 12, 14, "deployed")
    r.incident("incident/x", 20, 21, 30, service="api")  # no env: the last change of api to go live (staging)
    r.add(40, "incident.state", "incident/y", event="triggered", status="triggered", service="api",
          severity="error", env="prod")  # fmt: skip
    r.add(55, "incident.resolved", "incident/y", status="resolved", service="api", severity="error", env="prod")
    keys = {k.env: k for k in dora_keys(r.ledger(), NOW, WINDOW)}
    assert (keys["staging"].failed_changes, keys["staging"].time_to_restore_median_seconds) == (1, 10 * 60)
    assert (keys["prod"].failed_changes, keys["prod"].time_to_restore_median_seconds) == (1, 15 * 60)


def test_an_incident_more_than_a_day_after_going_live_is_not_blamed() -> None:
    r = Records()
    r.deploy("deploy/api/prod/1", 0, 10, "deployed")
    r.incident("incident/x", 10 + 24 * 60, 10 + 24 * 60 + 1, 10 + 24 * 60 + 5, service="api")
    keys = dora_keys(r.ledger(), T0 + timedelta(days=2), timedelta(days=2))[0]
    assert (keys.changes, keys.failed_changes, keys.change_failure_rate) == (1, 0, 0.0)
