"""Prometheus metrics from the audit journal: one collector, the same figures in the worker and the gateway.

:class:`JournalMetrics` reads the journal incrementally (records after the last ``seq`` it saw, every
:data:`REFRESH_SECONDS`) and folds each record into counters, histograms and current-state gauges; a
restarted process recounts from the journal before it exposes anything, so its counters never go
back and both processes agree (dashboards and rules take ``max without (instance, job)``). A
counter's or histogram's series is exposed at 0 from the first record that announces it (a build
``started`` exposes every status of its branch; a deployment request every outcome, its lead time
and approval wait), so ``increase()`` counts the first event too.

=================================================  =========  =====================================================
metric                                             type       from
=================================================  =========  =====================================================
``tocsin_builds_total{repo,branch,status}``        counter    ``build.reported`` (every status, ``started`` too;
                                                              not ``tocsin drill``'s)
``tocsin_build_duration_seconds{repo}``            histogram  its ``duration_seconds`` (when given)
``tocsin_build_queue_seconds{repo}``               histogram  its ``queued_seconds`` (``--queued-seconds``)
``tocsin_flaky_builds_total{repo}``                counter    builds marked flaky
``tocsin_pipelines_failing{repo}``                 gauge      CI workflows whose last finished build failed
                                                              (branches with no event for 30 days left out)
``tocsin_pipelines_flaky{repo}``                   gauge      CI workflows whose last finished build was flaky
``tocsin_flaky_tests{repo}``                       gauge      tests known flaky or quarantined, summed over the branches'
                                                             last reports (``build.reported`` ``flaky_tests``)
``tocsin_pipeline_running_seconds{repo,branch,     gauge      since the last ``started`` of a workflow with no
workflow}``                                                   outcome yet (dropped after 7 days)
``tocsin_deployments_total{service,env,outcome}``  counter    ``deployment.finished`` (deployed, rolled_back,
                                                              rejected, expired)
``tocsin_rollbacks_total{service,env}``            counter    rollbacks done (during the rollout, later, or by a
                                                              ``<id>/rollback`` run)
``tocsin_deployment_lead_time_seconds{service,     histogram  first build of the commit → live
env}``
``tocsin_deployment_approval_wait_seconds{env,     histogram  request → each approval or rejection
decision}``
``tocsin_deployment_queue_size{service,env}``      gauge      requested, not finished yet (for at most 7 days)
``tocsin_incidents_total{service,severity}``       counter    incidents triggered
``tocsin_incidents_open{severity}``                gauge      triggered, not resolved or closed
``tocsin_incident_escalation_backlog{severity}``   gauge      open, unacknowledged, escalated to level 2 or more
``tocsin_deliveries_total{receiver,channel,        counter    ``notification.delivered`` / ``dead_lettered``
outcome}``
``tocsin_dora_*{service,env}``                     gauge      the DORA keys over the last 30 days
                                                              (:mod:`workflows.policy.dora`)
``tocsin_incident_mean_time_to_acknowledge_        gauge      MTTA and MTTR of the last 30 days' incidents
seconds{service}``, ``…_resolve_seconds``
``tocsin_journal_last_seq``                        gauge      the last journal record read
=================================================  =========  =====================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from operations.journal import Journal
from operations.journal.store import TABLE
from workflows.pipeline.models import DRILL_WORKFLOW
from workflows.policy.dora import Ledger, dora_keys, incident_figures, parse_time

__all__ = ["JournalMetrics", "COLLECTOR", "journal_metrics", "REFRESH_SECONDS", "DORA_WINDOW"]

log = logging.getLogger("tocsin.metrics")

REFRESH_SECONDS = 2.0
DORA_WINDOW = timedelta(days=30)
PAGE = 2000
STALE_RUN = timedelta(days=7)
LONG = (30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200, 14400)
LEAD = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400)
FAILED = frozenset({"failure", "timed_out"})
FINAL = frozenset({"success", "failure", "timed_out", "cancelled"})
OUTCOMES = ("deployed", "rolled_back", "rejected", "expired")


class _Hist:
    """A labelled histogram kept by hand (cumulative buckets on export)."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]):
        self.name, self.doc, self.labels, self.buckets = name, doc, labels, buckets
        self.series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, key: tuple[str, ...], value: float) -> None:
        counts, total = self.series.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))
        index = next((i for i, bound in enumerate(self.buckets) if value <= bound), len(self.buckets))
        counts[index] += 1
        total[0] += value

    def ensure(self, key: tuple[str, ...]) -> None:
        """Expose the series (empty) before its first observation, so ``increase()`` sees that one too."""
        self.series.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.doc, labels=list(self.labels))
        for key, (counts, total) in sorted(self.series.items()):
            running, cumulative = 0, []
            for bound, count in zip([*map(floatToGoString, self.buckets), "+Inf"], counts, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            family.add_metric(list(key), cumulative, total[0])
        return family


class _Counts:
    def __init__(self, name: str, doc: str, labels: tuple[str, ...]):
        self.name, self.doc, self.labels = name, doc, labels
        self.values: dict[tuple[str, ...], float] = {}

    def ensure(self, *keys: tuple[str, ...]) -> None:
        """Expose the series at 0 before its first count, so ``increase()`` sees that one too."""
        for key in keys:
            self.values.setdefault(key, 0.0)

    def inc(self, key: tuple[str, ...], by: float = 1.0) -> None:
        self.values[key] = self.values.get(key, 0.0) + by

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.doc, labels=list(self.labels))
        for key, value in sorted(self.values.items()):
            family.add_metric(list(key), value)
        return family


def _s(value: Any) -> str:
    return "" if value is None else str(value)


class JournalMetrics(Collector):
    """The journal's figures as Prometheus metrics (see the module's docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        """Held while folding and while exporting (the worker's /metrics is served from another thread)."""
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new journal); nothing is exposed until :meth:`fold` has caught up."""
        self.ready = False
        self.ledger = Ledger()
        self.builds = _Counts(
            "tocsin_builds", "CI events reported, by repository, branch and status", ("repo", "branch", "status")
        )
        self.flaky_builds = _Counts("tocsin_flaky_builds", "Builds marked flaky", ("repo",))
        self.flaky_tests: dict[tuple[str, str], tuple[int, datetime]] = {}
        self.deployments = _Counts(
            "tocsin_deployments", "Deployments finished, by outcome", ("service", "env", "outcome")
        )
        self.rollbacks = _Counts("tocsin_rollbacks", "Rollbacks done", ("service", "env"))
        self.incidents = _Counts("tocsin_incidents", "Incidents triggered", ("service", "severity"))
        self.deliveries = _Counts(
            "tocsin_deliveries", "Notification deliveries journaled, by outcome", ("receiver", "channel", "outcome")
        )  # fmt: skip
        self.duration = _Hist("tocsin_build_duration_seconds", "Build duration reported by CI", ("repo",), LONG)
        self.queued = _Hist("tocsin_build_queue_seconds", "Time a CI run waited for a runner", ("repo",), LONG)
        self.lead = _Hist(
            "tocsin_deployment_lead_time_seconds", "Lead time for changes: first build of the commit to live",
            ("service", "env"), LEAD,
        )  # fmt: skip
        self.approval = _Hist(
            "tocsin_deployment_approval_wait_seconds", "Deployment request to an approval decision",
            ("env", "decision"), LONG,
        )  # fmt: skip
        self.tracks: dict[tuple[str, str, str], tuple[str, bool, datetime]] = {}
        self.pending: dict[str, tuple[str, str]] = {}
        self.severities: set[str] = set()
        """Severities and service/environments seen: their gauges read 0 rather than vanish."""
        self.places: set[tuple[str, str]] = set()
        self.dora_cache: tuple[float, list[Metric]] = (0.0, [])

    # ------------------------------------------------------------------ folding

    def fold(self, record: Mapping[str, Any]) -> None:
        """Count one journal record ``{seq, time, action, object, detail}``."""
        action, detail = str(record["action"]), record.get("detail") or {}
        when = parse_time(record["time"])
        if action == "build.reported":
            self._build(when, detail)
        elif action.startswith("deployment."):
            self._deployment(action, str(record.get("object") or ""), when, detail)
        elif action == "incident.state" and detail.get("event") == "triggered":
            self.incidents.inc((_s(detail.get("service")), _s(detail.get("severity"))))
            self.severities.add(_s(detail.get("severity")))
        elif action in ("notification.delivered", "notification.dead_lettered"):
            outcome = "dead_lettered" if action.endswith("dead_lettered") else _s(detail.get("outcome"))
            self.deliveries.inc((_s(detail.get("receiver")), _s(detail.get("channel")), outcome))
        self.ledger.add(record)

    def _build(self, when: datetime, detail: Mapping[str, Any]) -> None:
        if detail.get("workflow") == DRILL_WORKFLOW:
            return  # a drill's synthetic failure is no build
        repo, branch, status = _s(detail.get("repo")), _s(detail.get("branch")), _s(detail.get("status"))
        self.builds.ensure(*((repo, branch, st) for st in ("started", *sorted(FINAL))))
        self.builds.inc((repo, branch, status))
        self.flaky_builds.ensure((repo,))
        self.duration.ensure((repo,))
        self.queued.ensure((repo,))
        track = (repo, branch, _s(detail.get("workflow")) or "ci")
        flaky = bool(detail.get("flaky"))
        if status == "started":
            self.tracks[track] = ("started", False, when)
        elif status in FINAL:
            self.tracks[track] = (status, flaky, when)
        if flaky:
            self.flaky_builds.inc((repo,))
        known = detail.get("flaky_tests")
        if isinstance(known, int) and known >= 0:
            self.flaky_tests[(repo, branch)] = (known, when)
        for hist, key in ((self.duration, "duration_seconds"), (self.queued, "queued_seconds")):
            value = detail.get(key)
            if isinstance(value, (int, float)) and value >= 0:
                hist.observe((repo,), float(value))

    def _deployment(self, action: str, obj: str, when: datetime, detail: Mapping[str, Any]) -> None:
        service, env = _s(detail.get("service")), _s(detail.get("env"))
        rollback_run = obj.endswith("/rollback")
        before = self.ledger.deployments.get(obj)
        if action == "deployment.requested" and not rollback_run:
            self.pending[obj] = (service, env)
            self.places.add((service, env))
            self.deployments.ensure(*((service, env, outcome) for outcome in OUTCOMES))
            self.rollbacks.ensure((service, env))
            self.lead.ensure((service, env))
            self.approval.ensure((env, "approved"))
            self.approval.ensure((env, "rejected"))
        elif action in ("deployment.approved", "deployment.rejected") and before and before.requested_at:
            decision = action.removeprefix("deployment.")
            self.approval.observe((env, decision), max(0.0, (when - before.requested_at).total_seconds()))
        elif action == "deployment.finished":
            outcome = _s(detail.get("outcome"))
            self.pending.pop(obj, None)
            late = before is not None and before.outcome == "deployed" and outcome == "rolled_back"
            if outcome == "rolled_back":
                self.rollbacks.inc((service, env))
            if rollback_run or late:
                return
            self.deployments.inc((service, env, outcome))
            if outcome == "deployed":
                first = self.ledger.first_seen.get(_s(before.commit if before else None))
                start = first or (before.requested_at if before else None) or when
                self.lead.observe((service, env), max(0.0, (when - start).total_seconds()))

    # ------------------------------------------------------------------ export

    def describe(self) -> list[Metric]:
        """Nothing up front: the families depend on the journal."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every family, once the journal has been read up to its end at least once."""
        with self.lock:
            families = list(self._families()) if self.ready else []
        yield from families

    def _families(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        for counts in (
            self.builds,
            self.flaky_builds,
            self.deployments,
            self.rollbacks,
            self.incidents,
            self.deliveries,
        ):
            yield counts.family()
        for hist in (self.duration, self.queued, self.lead, self.approval):
            yield hist.family()
        yield from self._pipelines(now)
        yield from self._open(now)
        yield from self._dora(now)
        last = GaugeMetricFamily("tocsin_journal_last_seq", "The last audit journal record read")
        last.add_metric([], float(self.ledger.last_seq))
        yield last

    def _pipelines(self, now: datetime) -> Iterator[Metric]:
        failing = GaugeMetricFamily("tocsin_pipelines_failing", "CI workflows whose last build failed", labels=["repo"])
        flaky = GaugeMetricFamily("tocsin_pipelines_flaky", "CI workflows whose last build was flaky", labels=["repo"])
        running = GaugeMetricFamily(
            "tocsin_pipeline_running_seconds", "How long a CI run has been going (started, no outcome yet)",
            labels=["repo", "branch", "workflow"],
        )  # fmt: skip
        per_repo: dict[str, list[int]] = {}
        for (repo, branch, name), (status, is_flaky, when) in sorted(self.tracks.items()):
            tally = per_repo.setdefault(repo, [0, 0])
            if now - when > DORA_WINDOW:
                continue  # a branch quiet for 30 days (deleted, abandoned) is no longer counted
            tally[0] += status in FAILED and not is_flaky
            tally[1] += is_flaky
            if status == "started" and now - when < STALE_RUN:
                running.add_metric([repo, branch, name], max(0.0, (now - when).total_seconds()))
        for repo, (bad, unsure) in per_repo.items():
            failing.add_metric([repo], float(bad))
            flaky.add_metric([repo], float(unsure))
        tests = GaugeMetricFamily(
            "tocsin_flaky_tests", "Tests known flaky or quarantined (the branches' last reports)", labels=["repo"]
        )
        known: dict[str, int] = {}
        for (repo, _branch), (count, when) in sorted(self.flaky_tests.items()):
            if now - when <= DORA_WINDOW:
                known[repo] = known.get(repo, 0) + count
        for repo, count in known.items():
            tests.add_metric([repo], float(count))
        yield from (failing, flaky, running, tests)

    def _open(self, now: datetime) -> Iterator[Metric]:
        opened = GaugeMetricFamily("tocsin_incidents_open", "Incidents not resolved, by severity", labels=["severity"])
        backlog = GaugeMetricFamily(
            "tocsin_incident_escalation_backlog", "Open unacknowledged incidents escalated to level 2 or more",
            labels=["severity"],
        )  # fmt: skip
        counts = dict.fromkeys(self.severities, 0)
        escalated = dict.fromkeys(self.severities, 0)
        for inc in self.ledger.incidents.values():
            if inc.resolved_at is not None or inc.status in ("resolved", "closed"):
                continue
            counts[inc.severity] = counts.get(inc.severity, 0) + 1
            if inc.acked_at is None and inc.level >= 2:
                escalated[inc.severity] = escalated.get(inc.severity, 0) + 1
        for severity, value in sorted(counts.items()):
            opened.add_metric([severity], float(value))
        for severity, value in sorted(escalated.items()):
            backlog.add_metric([severity], float(value))
        queue = GaugeMetricFamily(
            "tocsin_deployment_queue_size", "Deployments requested and not finished", labels=["service", "env"]
        )
        waiting = dict.fromkeys(self.places, 0)
        for obj, key in self.pending.items():
            asked = self.ledger.deployments.get(obj)
            if asked is not None and asked.requested_at is not None and now - asked.requested_at < STALE_RUN:
                waiting[key] = waiting.get(key, 0) + 1
        for key, value in sorted(waiting.items()):
            queue.add_metric(list(key), float(value))
        yield from (opened, backlog, queue)

    def _dora(self, now: datetime) -> list[Metric]:
        cached_at, families = self.dora_cache
        if time.monotonic() - cached_at < 15 and families:
            return families
        freq = GaugeMetricFamily(
            "tocsin_dora_deployment_frequency_per_day",
            "Deployments gone live per day (30 days)",
            labels=["service", "env"],
        )
        lead = GaugeMetricFamily(
            "tocsin_dora_lead_time_seconds", "Lead time for changes of the last 20 changes (30 days)",
            labels=["service", "env", "quantile"],
        )  # fmt: skip
        cfr = GaugeMetricFamily(
            "tocsin_dora_change_failure_ratio", "Changes that failed / changes (30 days)", labels=["service", "env"]
        )
        ttr = GaugeMetricFamily(
            "tocsin_dora_time_to_restore_seconds", "Median time to restore after a failed change (30 days)",
            labels=["service", "env"],
        )  # fmt: skip
        for k in dora_keys(self.ledger, now, DORA_WINDOW):
            where = [k.service, k.env]
            freq.add_metric(where, k.deployment_frequency_per_day)
            for q, value in (("0.5", k.lead_time_median_seconds), ("0.9", k.lead_time_p90_seconds)):
                if value is not None:
                    lead.add_metric([*where, q], value)
            if k.change_failure_rate is not None:
                cfr.add_metric(where, k.change_failure_rate)
            if k.time_to_restore_median_seconds is not None:
                ttr.add_metric(where, k.time_to_restore_median_seconds)
        mtta = GaugeMetricFamily(
            "tocsin_incident_mean_time_to_acknowledge_seconds", "MTTA of the incidents of the last 30 days",
            labels=["service"],
        )  # fmt: skip
        mttr = GaugeMetricFamily(
            "tocsin_incident_mean_time_to_resolve_seconds", "MTTR of the incidents of the last 30 days",
            labels=["service"],
        )  # fmt: skip
        for service in sorted({i.service for i in self.ledger.incidents.values()}):
            figures = incident_figures(self.ledger, now, DORA_WINDOW, service)
            if figures.mtta_seconds is not None:
                mtta.add_metric([service], figures.mtta_seconds)
            if figures.mttr_seconds is not None:
                mttr.add_metric([service], figures.mttr_seconds)
        families = [freq, lead, cfr, ttr, mtta, mttr]
        self.dora_cache = (time.monotonic(), families)
        return families

    # ------------------------------------------------------------------ reading

    async def catch_up(self, journal: Journal) -> int:
        """Fold every record after the last one read; returns how many were read."""
        read = 0
        while True:
            query = (
                sa.select(TABLE.c.seq, TABLE.c.time, TABLE.c.action, TABLE.c.object, TABLE.c.detail)
                .where(TABLE.c.seq > self.ledger.last_seq)
                .order_by(TABLE.c.seq)
                .limit(PAGE)
            )
            async with journal.engine.connect() as conn:
                rows = (await conn.execute(query)).all()
            with self.lock:
                for row in rows:
                    self.fold({"seq": row.seq, "time": row.time, "action": row.action, "object": row.object,
                               "detail": json.loads(row.detail)})  # fmt: skip
            read += len(rows)
            if len(rows) < PAGE:
                break
        with self.lock:
            if read:
                self.ledger.prune(datetime.now(UTC) - 2 * DORA_WINDOW)
                self.dora_cache = (0.0, [])
            self.ready = True
        return read


COLLECTOR = JournalMetrics()
_owner: list[Journal] = []
_registered: list[bool] = []


async def _refresh(journal: Journal, every: float) -> None:
    while True:
        try:
            await COLLECTOR.catch_up(journal)
        except Exception as exc:  # the journal down: metrics go stale, alerts keep flowing
            log.warning(
                "journal metrics: cannot read the journal: %s", str(exc).splitlines()[0][:200] if str(exc) else exc
            )
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def journal_metrics(journal: Journal | None, every: float = REFRESH_SECONDS) -> AsyncIterator[None]:
    """Expose the journal's metrics in this process's default registry for the block.

    One process reads one journal: a second block (``tocsin dev`` runs the worker and the gateway in
    one process) while one is active adds nothing. Without a journal, nothing is exposed.
    """
    if journal is None or _owner:
        yield
        return
    if not _registered:
        REGISTRY.register(COLLECTOR)
        _registered.append(True)
    COLLECTOR.reset()
    _owner.append(journal)
    task = asyncio.create_task(_refresh(journal, every))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        _owner.clear()
        COLLECTOR.ready = False
