"""The DORA keys and CI/CD figures, from Tocsin's own audit journal records (pure).

A :class:`Ledger` folds journal records (``{seq, time, action, object, detail}``) in ``seq`` order:
``build.reported`` (when each commit was first seen, build outcomes and durations),
``deployment.requested`` / ``deployment.stage`` / ``deployment.approved`` / ``deployment.finished``
(each deployment's life; a ``<id>/rollback`` run's ``deployment.finished`` marks ``<id>`` rolled
back) and the incidents' ``incident.state`` / ``incident.acknowledged`` / ``incident.resolved``.
:func:`dora_keys`, :func:`build_figures` and :func:`incident_figures` then compute, per service and
environment, over a window ending ``now``, with the definitions of the DORA reports
(*Accelerate: State of DevOps*):

* **Deployment frequency** — how often a change reaches the environment: deployments that went live
  (``deployment.finished`` outcome ``deployed``, including ones rolled back later) finishing within
  the window, divided by the window's length in days (``per_day``), and the count.
* **Lead time for changes** — from a commit being first seen to it running in the environment: for
  each deployment that went live, its ``deployment.finished`` time minus the time of the first
  ``build.reported`` of its commit (any repository, any status; when no build of the commit was
  reported, or the deployment carries no commit, the deployment's request time). Over the last
  ``last_n`` (20) such changes in the window: the median, and the 90th percentile (nearest rank) —
  the **time-to-production estimate**.
* **Change failure rate** — the share of changes that went out and caused a failure in the
  environment: failed / (went live + rolled back during the rollout), finishing in the window. A change
  failed when it was rolled back during its rollout (outcome ``rolled_back``), rolled back after it
  went live (a later ``rolled_back`` of the same run, or of its ``<id>/rollback`` run), or when an
  incident of severity ``error`` or ``critical`` is blamed on it: an incident is blamed on the last
  deployment of its service (in its environment, when the incident's records carry ``env``) that
  went live before the incident was triggered, within :data:`ATTRIBUTION` (24 h). Rejected and
  expired deployments never went out and do not count.
* **Time to restore service** — how long a failure caused by a change lasted: for a change rolled
  back during its rollout, from its rollout's start (the ``canary`` stage, else its request) to the
  rollback finishing; for a change rolled back after going live, from going live to the rollback
  finishing; for an attributed incident, from the incident's trigger to the first of its resolution
  and the next deployment going live. Median over the failures restored within the window; still
  unrestored failures are counted in ``unrestored``.

Besides: **build success rate** (``success`` / (``success`` + ``failure`` + ``timed_out``); a
failure marked flaky counts as neither, nor does ``cancelled``; ``started`` is not an outcome; the
events of ``tocsin drill``, CI workflow ``tocsin-drill``, are left out) and
**MTTA / MTTR** (mean and median time from an incident's trigger to its first acknowledgement, and
to its resolution, by a person or by Alertmanager), for incidents triggered in the window.

Memory is bounded: at most :data:`MAX_PER_KEY` deployments per service/environment, and
:data:`MAX_ITEMS` incidents, commits and builds (oldest dropped first).
"""

from __future__ import annotations

import math
import statistics
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from workflows.pipeline.models import DRILL_WORKFLOW

__all__ = [
    "ATTRIBUTION",
    "MAX_ITEMS",
    "MAX_PER_KEY",
    "BuildFigures",
    "Deployment",
    "DoraKeys",
    "IncidentFigures",
    "Incident",
    "Ledger",
    "build_figures",
    "dora_keys",
    "incident_figures",
    "parse_time",
    "percentile",
    "repo_matches",
]

ATTRIBUTION = timedelta(hours=24)
"""How long after going live an incident on the service is blamed on a deployment."""
MAX_PER_KEY = 1000
MAX_ITEMS = 50_000
FAILED_SEVERITIES = frozenset({"error", "critical"})
FINAL_BUILD = frozenset({"success", "failure", "timed_out", "cancelled"})
ROLLBACK_SUFFIX = "/rollback"


def parse_time(value: str | datetime) -> datetime:
    """A journal time (ISO 8601, ``Z`` allowed) as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of the values; None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def repo_matches(repo: str, service: str) -> bool:
    """A repository belongs to ``service`` when it is it, or ends with ``/<service>``."""
    return repo == service or repo.endswith("/" + service)


@dataclass
class Deployment:
    """One deployment's life, as the journal told it."""

    id: str
    service: str
    env: str
    version: str = ""
    commit: str | None = None
    requested_at: datetime | None = None
    rollout_at: datetime | None = None
    finished_at: datetime | None = None
    live_at: datetime | None = None
    outcome: str | None = None
    rolled_back_at: datetime | None = None


@dataclass
class Incident:
    """One incident's trigger, first acknowledgement and resolution."""

    id: str
    service: str
    severity: str
    triggered_at: datetime
    env: str = ""
    acked_at: datetime | None = None
    resolved_at: datetime | None = None
    status: str = "triggered"
    level: int = 0


@dataclass(frozen=True)
class Build:
    """One finished build event."""

    time: datetime
    repo: str
    branch: str
    status: str
    flaky: bool
    duration: float | None


def _cap(table: OrderedDict[str, Any], limit: int) -> None:
    while len(table) > limit:
        table.popitem(last=False)


@dataclass
class Ledger:
    """What the journal says about deployments, incidents and builds, folded record by record."""

    deployments: OrderedDict[str, Deployment] = field(default_factory=OrderedDict)
    incidents: OrderedDict[str, Incident] = field(default_factory=OrderedDict)
    first_seen: OrderedDict[str, datetime] = field(default_factory=OrderedDict)
    builds: list[Build] = field(default_factory=list)
    last_seq: int = 0

    def add(self, record: Mapping[str, Any]) -> None:
        """Fold one journal record in (records of other actions are ignored)."""
        self.last_seq = max(self.last_seq, int(record.get("seq") or 0))
        action = str(record.get("action") or "")
        detail: Mapping[str, Any] = record.get("detail") or {}
        when = parse_time(record["time"])
        obj = str(record.get("object") or "")
        if action == "build.reported":
            self._build(when, detail)
        elif action.startswith("deployment.") and obj.startswith("deploy/"):
            self._deployment(action, obj, when, detail)
        elif action.startswith("incident.") and obj:
            self._incident(action, obj, when, detail)

    def _build(self, when: datetime, detail: Mapping[str, Any]) -> None:
        if detail.get("workflow") == DRILL_WORKFLOW:
            return  # a drill's synthetic failure is no build
        commit = str(detail.get("commit") or "")
        if commit and commit not in self.first_seen:
            self.first_seen[commit] = when
            _cap(self.first_seen, MAX_ITEMS)
        status = str(detail.get("status") or "")
        if status in FINAL_BUILD:
            duration = detail.get("duration_seconds")
            self.builds.append(
                Build(
                    when,
                    str(detail.get("repo") or ""),
                    str(detail.get("branch") or ""),
                    status,
                    bool(detail.get("flaky")),
                    float(duration) if isinstance(duration, (int, float)) else None,
                )
            )
            if len(self.builds) > MAX_ITEMS:
                del self.builds[: len(self.builds) - MAX_ITEMS]

    def _deployment(self, action: str, obj: str, when: datetime, detail: Mapping[str, Any]) -> None:
        rollback_run = obj.endswith(ROLLBACK_SUFFIX)
        if rollback_run:
            target = self.deployments.get(obj.removesuffix(ROLLBACK_SUFFIX))
            if target is not None and action == "deployment.finished" and detail.get("outcome") == "rolled_back":
                target.rolled_back_at = target.rolled_back_at or when
            return
        dep = self.deployments.get(obj)
        if dep is None:
            dep = Deployment(obj, str(detail.get("service") or ""), str(detail.get("env") or ""))
            self.deployments[obj] = dep
            self._cap_deployments(dep.service, dep.env)
        dep.version = str(detail.get("version") or dep.version)
        if action == "deployment.requested":
            dep.requested_at = dep.requested_at or when
            dep.commit = detail.get("commit") or dep.commit
        elif action == "deployment.stage" and detail.get("stage") == "canary":
            dep.rollout_at = dep.rollout_at or when
        elif action == "deployment.finished":
            outcome = str(detail.get("outcome") or "")
            if dep.outcome == "deployed" and outcome == "rolled_back":
                dep.rolled_back_at = dep.rolled_back_at or when  # rolled back after it went live
                return
            dep.outcome, dep.finished_at = outcome, when
            if outcome == "deployed":
                dep.live_at = when

    def _cap_deployments(self, service: str, env: str) -> None:
        mine = [k for k, d in self.deployments.items() if d.service == service and d.env == env]
        for key in mine[: max(0, len(mine) - MAX_PER_KEY)]:
            del self.deployments[key]

    def _incident(self, action: str, obj: str, when: datetime, detail: Mapping[str, Any]) -> None:
        inc = self.incidents.get(obj)
        if inc is None:
            if action != "incident.state" or detail.get("event") != "triggered":
                return
            inc = Incident(obj, str(detail.get("service") or ""), str(detail.get("severity") or ""), when)
            inc.env = str(detail.get("env") or "")
            self.incidents[obj] = inc
            _cap(self.incidents, MAX_ITEMS)
        inc.severity = str(detail.get("severity") or inc.severity)
        inc.status = str(detail.get("status") or inc.status)
        if isinstance(detail.get("level"), int):
            inc.level = detail["level"]
        event = detail.get("event") if action == "incident.state" else action
        if event == "incident.acknowledged":
            inc.acked_at = inc.acked_at or when
        elif event in ("incident.resolved", "resolved"):
            inc.resolved_at = inc.resolved_at or when
            inc.status = "resolved"
        elif event == "closed":
            inc.status = "resolved" if inc.resolved_at else "closed"

    def prune(self, before: datetime) -> None:
        """Forget what ended before ``before`` (deployments finished, incidents resolved, builds)."""
        for key in [k for k, d in self.deployments.items() if d.finished_at and d.finished_at < before]:
            del self.deployments[key]
        for key in [k for k, i in self.incidents.items() if i.resolved_at and i.resolved_at < before]:
            del self.incidents[key]
        self.builds = [b for b in self.builds if b.time >= before]


@dataclass(frozen=True)
class DoraKeys:
    """The four keys of one service in one environment (seconds for times; None: nothing to measure)."""

    service: str
    env: str
    window_days: float
    deployments: int
    deployment_frequency_per_day: float
    lead_time_median_seconds: float | None
    lead_time_p90_seconds: float | None
    lead_time_changes: int
    changes: int
    failed_changes: int
    change_failure_rate: float | None
    time_to_restore_median_seconds: float | None
    restored: int
    unrestored: int


def _blame(ledger: Ledger) -> dict[str, list[Incident]]:
    """Serious incidents by the id of the deployment they are blamed on (see the module's docstring)."""
    live: dict[str, list[Deployment]] = {}
    for dep in ledger.deployments.values():
        if dep.live_at is not None:
            live.setdefault(dep.service, []).append(dep)
    blamed: dict[str, list[Incident]] = {}
    for inc in ledger.incidents.values():
        if inc.severity not in FAILED_SEVERITIES:
            continue
        suspects = [
            d
            for d in live.get(inc.service, [])
            if (not inc.env or d.env == inc.env)
            and d.live_at
            and d.live_at <= inc.triggered_at < d.live_at + ATTRIBUTION
        ]
        if suspects:
            culprit = max(suspects, key=lambda d: d.live_at or inc.triggered_at)
            blamed.setdefault(culprit.id, []).append(inc)
    return blamed


def _failure(dep: Deployment, next_live: datetime | None, blamed: list[Incident]) -> tuple[datetime, datetime | None]:
    """(start, end or None) of the failure ``dep`` caused; raises LookupError when it caused none."""
    if dep.outcome == "rolled_back":
        start = dep.rollout_at or dep.requested_at or dep.finished_at
        assert start is not None
        return start, dep.finished_at
    assert dep.live_at is not None
    if dep.rolled_back_at is not None:
        return dep.live_at, dep.rolled_back_at
    if not blamed:
        raise LookupError(dep.id)
    first = min(blamed, key=lambda i: i.triggered_at)
    ends = [t for t in (first.resolved_at, next_live) if t is not None]
    return first.triggered_at, min(ends) if ends else None


def dora_keys(
    ledger: Ledger,
    now: datetime,
    window: timedelta,
    *,
    service: str | None = None,
    env: str | None = None,
    last_n: int = 20,
) -> list[DoraKeys]:
    """The DORA keys per (service, environment) with deployments, sorted; filtered by ``service``/``env``."""
    since = now - window
    groups: dict[tuple[str, str], list[Deployment]] = {}
    for dep in ledger.deployments.values():
        if (service is None or dep.service == service) and (env is None or dep.env == env):
            groups.setdefault((dep.service, dep.env), []).append(dep)
    blamed = _blame(ledger)
    return [
        _keys(ledger, svc, where, deps, blamed, since, now, last_n) for (svc, where), deps in sorted(groups.items())
    ]


def _keys(
    ledger: Ledger,
    svc: str,
    where: str,
    deps: list[Deployment],
    blamed: dict[str, list[Incident]],
    since: datetime,
    now: datetime,
    last_n: int,
) -> DoraKeys:
    days = max((now - since).total_seconds() / 86400, 1e-9)
    done = sorted(
        (d for d in deps if d.finished_at and since <= d.finished_at <= now),
        key=lambda d: d.finished_at or now,
    )
    live = [d for d in done if d.live_at]
    leads = []
    for dep in live[-last_n:]:
        start = ledger.first_seen.get(dep.commit or "") or dep.requested_at or dep.live_at
        assert dep.live_at is not None and start is not None
        leads.append(max(0.0, (dep.live_at - start).total_seconds()))
    changes = [d for d in done if d.outcome in ("deployed", "rolled_back")]
    failed, restores, unrestored = 0, [], 0
    went_live = sorted(d.live_at for d in deps if d.live_at)
    for dep in changes:
        after = dep.live_at or dep.finished_at
        next_live = next((t for t in went_live if after is not None and t > after), None)
        try:
            start, end = _failure(dep, next_live, blamed.get(dep.id, []))
        except LookupError:
            continue
        failed += 1
        if end is None:
            unrestored += 1
        else:
            restores.append(max(0.0, (end - start).total_seconds()))
    return DoraKeys(
        service=svc,
        env=where,
        window_days=round(days, 6),
        deployments=len(live),
        deployment_frequency_per_day=len(live) / days,
        lead_time_median_seconds=_median(leads),
        lead_time_p90_seconds=percentile(leads, 90),
        lead_time_changes=len(leads),
        changes=len(changes),
        failed_changes=failed,
        change_failure_rate=(failed / len(changes)) if changes else None,
        time_to_restore_median_seconds=_median(restores),
        restored=len(restores),
        unrestored=unrestored,
    )


@dataclass(frozen=True)
class BuildFigures:
    """Build outcomes in the window (of one service's repositories, or all)."""

    builds: int
    successes: int
    failures: int
    flaky: int
    success_rate: float | None
    duration_avg_seconds: float | None


def build_figures(ledger: Ledger, now: datetime, window: timedelta, service: str | None = None) -> BuildFigures:
    """Build success rate and average duration over the window (see the module's docstring)."""
    since = now - window
    builds = [b for b in ledger.builds if since <= b.time <= now and (service is None or repo_matches(b.repo, service))]
    flaky = [b for b in builds if b.flaky and b.status != "success"]
    ok = sum(1 for b in builds if b.status == "success")
    bad = sum(1 for b in builds if b.status in ("failure", "timed_out") and not b.flaky)
    durations = [b.duration for b in builds if b.duration is not None]
    return BuildFigures(
        builds=len(builds),
        successes=ok,
        failures=bad,
        flaky=len(flaky),
        success_rate=(ok / (ok + bad)) if ok + bad else None,
        duration_avg_seconds=_mean(durations),
    )


@dataclass(frozen=True)
class IncidentFigures:
    """MTTA / MTTR of the incidents triggered in the window, and how many are open now."""

    incidents: int
    open: int
    mtta_seconds: float | None
    mtta_median_seconds: float | None
    mttr_seconds: float | None
    mttr_median_seconds: float | None


def incident_figures(ledger: Ledger, now: datetime, window: timedelta, service: str | None = None) -> IncidentFigures:
    """MTTA and MTTR (mean, median) over the window's incidents (of a service, or all)."""
    since = now - window
    mine = [
        i
        for i in ledger.incidents.values()
        if since <= i.triggered_at <= now and (service is None or i.service == service)
    ]
    tta = [(i.acked_at - i.triggered_at).total_seconds() for i in mine if i.acked_at]
    ttr = [(i.resolved_at - i.triggered_at).total_seconds() for i in mine if i.resolved_at]
    return IncidentFigures(
        incidents=len(mine),
        open=sum(1 for i in mine if i.resolved_at is None and i.status != "closed"),
        mtta_seconds=_mean(tta),
        mtta_median_seconds=_median(tta),
        mttr_seconds=_mean(ttr),
        mttr_median_seconds=_median(ttr),
    )
