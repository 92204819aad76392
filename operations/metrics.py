"""``tocsin metrics``: the DORA keys, build success rate and MTTA/MTTR, from the audit journal.

Everything is computed from Tocsin's own records (``build.reported``, ``deployment.*``,
``incident.*``) by :mod:`workflows.policy.dora`, whose docstring defines each figure and how it is
derived. The journal is read from :data:`LOOKBACK` before the window's start, so that a commit first
seen, or a deployment requested, before the window still counts for what finished inside it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from operations.errors import BadInput
from operations.journal import Journal
from workflows.policy.dora import Ledger, build_figures, dora_keys, incident_figures
from workflows.policy.durations import DurationError, format_duration, parse_duration

__all__ = ["DEFAULT_WINDOW", "LOOKBACK", "DEFAULT_LAST_N", "parse_window", "collect_metrics", "metrics_lines"]

DEFAULT_WINDOW = "30d"
LOOKBACK = timedelta(days=30)
DEFAULT_LAST_N = 20
MAX_WINDOW = timedelta(days=366)


def parse_window(text: str, field: str = "--window") -> timedelta:
    """A window such as ``30d`` or ``12h``; :class:`BadInput` naming ``field`` otherwise."""
    try:
        window = parse_duration(text)
    except DurationError as exc:
        raise BadInput(field, str(exc)) from None
    if window <= timedelta(0) or window > MAX_WINDOW:
        raise BadInput(field, f"must be more than 0 and at most 366d, got {text!r}")
    return window


async def collect_metrics(
    journal: Journal,
    *,
    service: str | None = None,
    env: str | None = None,
    window: str = DEFAULT_WINDOW,
    last_n: int = DEFAULT_LAST_N,
    now: datetime | None = None,
    window_field: str = "--window",
) -> dict[str, Any]:
    """Everything ``tocsin metrics`` shows, as one dict (``--json`` prints it).

    Raises:
        BadInput: ``window`` is not a duration (named ``window_field``), or ``last_n`` is below 1.
    """
    span = parse_window(window, window_field)
    if last_n < 1:
        raise BadInput("--last", f"must be at least 1, got {last_n}")
    now = now or datetime.now(UTC)
    since = now - span
    ledger = Ledger()
    async for record in journal.records(since=since - LOOKBACK, until=now + timedelta(seconds=1)):
        if record.action.startswith(("build.", "deployment.", "incident.")):
            ledger.add({"seq": record.seq, "time": record.time, "action": record.action,
                        "object": record.object, "detail": record.detail})  # fmt: skip
    keys = dora_keys(ledger, now, span, service=service, env=env, last_n=last_n)
    return {
        "window": window,
        "window_seconds": span.total_seconds(),
        "since": since.isoformat(),
        "until": now.isoformat(),
        "service": service,
        "env": env,
        "last_n": last_n,
        "dora": [asdict(k) for k in keys],
        "builds": asdict(build_figures(ledger, now, span, service)),
        "incidents": asdict(incident_figures(ledger, now, span, service)),
    }


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return "0s"
    return format_duration(timedelta(seconds=round(seconds)))


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.1f}%"


def metrics_lines(report: dict[str, Any]) -> list[str]:
    """``tocsin metrics`` as text: one block per service/environment, then builds and incidents."""
    lines = [f"Window: last {report['window']} (until {report['until'][:19]}Z)"]
    if not report["dora"]:
        lines.append("DORA keys: no deployments in the journal" + (" for this filter" if report["service"] else ""))
    for k in report["dora"]:
        lines += [
            f"{k['service']} in {k['env']}:",
            f"  deployment frequency   {k['deployment_frequency_per_day']:.2f}/day ({k['deployments']} deployments)",
            f"  lead time for changes  median {_dur(k['lead_time_median_seconds'])}, "
            f"p90 {_dur(k['lead_time_p90_seconds'])} (last {k['lead_time_changes']} changes: time to production)",
            f"  change failure rate    {_pct(k['change_failure_rate'])} ({k['failed_changes']}/{k['changes']} changes)",
            f"  time to restore        median {_dur(k['time_to_restore_median_seconds'])} "
            f"({k['restored']} restored, {k['unrestored']} not yet)",
        ]
    b, i = report["builds"], report["incidents"]
    lines += [
        f"Builds: success rate {_pct(b['success_rate'])} ({b['successes']} passed, {b['failures']} failed, "
        f"{b['flaky']} flaky; {b['builds']} finished), average duration {_dur(b['duration_avg_seconds'])}",
        f"Incidents: {i['incidents']} ({i['open']} open); MTTA {_dur(i['mtta_seconds'])} "
        f"(median {_dur(i['mtta_median_seconds'])}); MTTR {_dur(i['mttr_seconds'])} "
        f"(median {_dur(i['mttr_median_seconds'])})",
    ]
    return lines
