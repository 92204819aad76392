"""Block Kit for the Slack door's answers: status, metrics, and the reason dialog of Reject."""

from __future__ import annotations

import json
from typing import Any

from operations.metrics import metrics_lines

__all__ = ["status_blocks", "metrics_blocks", "reject_view", "REJECT_CALLBACK", "REASON_BLOCK", "REASON_ACTION"]

REJECT_CALLBACK = "tocsin_reject_reason"
REASON_BLOCK = "reason"
REASON_ACTION = "reason_input"
MAX_LINES = 15
FAILING = ("failure", "failing", "failed")


def _text(text: str, limit: int = 3000) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text if len(text) <= limit else text[: limit - 1] + "…"}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def _section(title: str, lines: list[str], empty: str) -> dict[str, Any]:
    shown = lines[:MAX_LINES]
    if len(lines) > MAX_LINES:
        shown.append(f"…and {len(lines) - MAX_LINES} more")
    body = "\n".join(shown) if shown else f"_{empty}_"
    return {"type": "section", "text": _text(f"*{title}* ({len(lines)})\n{body}")}


def _incident_line(row: dict[str, Any]) -> str:
    acked = f", acknowledged by {row['acknowledged_by']}" if row.get("acknowledged_by") else ""
    severity = str(row.get("severity") or "?").upper()
    title = row.get("title") or row.get("service") or row["id"]
    return f"• *{severity}* {title} — `{row['id']}` ({row.get('status', '')}{acked})"


def status_blocks(status: dict[str, Any], service: str | None = None) -> list[dict[str, Any]]:
    """``/tocsin status``: open incidents, running deployments, failing pipelines (``collect_status``'s dict)."""
    failing = [p for p in status.get("pipelines", []) if p.get("status") in FAILING]
    return [
        _header("Tocsin status" + (f": {service}" if service else "")),
        _section("Open incidents", [_incident_line(r) for r in status.get("incidents", [])], "no open incidents"),
        _section(
            "Running deployments",
            [f"• `{d['id']}` ({d.get('status', '')})" for d in status.get("deployments", [])],
            "no deployment running",
        ),
        _section(
            "Failing pipelines",
            [f"• `{p['id']}` ({p.get('status', '')})" for p in failing],
            "no pipeline failing",
        ),
    ]


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _summary_field(name: str, summary: dict[str, Any]) -> dict[str, Any]:
    count = int(summary.get("count") or 0)
    if not count:
        return _text(f"*{name}*\nno data yet")
    avg, top = _duration(float(summary.get("avg") or 0)), _duration(float(summary.get("max") or 0))
    return _text(f"*{name}*\navg {avg}, max {top} over {count} incident(s)")


DORA_MISSING = (
    "DORA keys (deployment frequency, lead time, change failure rate, time to restore) are not available "
    "now: the audit journal could not be read. Shown: MTTA/MTTR of the incidents Temporal still lists."
)


def metrics_blocks(
    status: dict[str, Any], service: str | None = None, report: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """``/tocsin metrics``: MTTA/MTTR from ``collect_status`` and, from the audit journal's ``report``
    (:func:`operations.metrics.collect_metrics`), the DORA keys, build success rate and MTTA/MTTR."""
    blocks: list[dict[str, Any]] = [
        _header("Tocsin metrics" + (f": {service}" if service else "")),
        {
            "type": "section",
            "fields": [
                _summary_field("MTTA", status.get("mtta_seconds") or {}),
                _summary_field("MTTR", status.get("mttr_seconds") or {}),
                _text(f"*Open incidents*\n{len(status.get('incidents', []))}"),
                _text(f"*Running deployments*\n{len(status.get('deployments', []))}"),
            ],
        },
    ]
    if report is None:
        return [*blocks, {"type": "context", "elements": [_text(DORA_MISSING)]}]
    lines = "\n".join(metrics_lines(report))
    return [*blocks, {"type": "section", "text": _text(f"*DORA keys*\n```{lines[:2900]}```")}]


def reject_view(deployment: str, response_url: str, channel: str = "") -> dict[str, Any]:
    """The modal asking why a deployment is rejected; its submission carries the deployment id."""
    metadata = json.dumps({"deployment": deployment, "response_url": response_url, "channel": channel})
    return {
        "type": "modal",
        "callback_id": REJECT_CALLBACK,
        "private_metadata": metadata[:3000],
        "title": {"type": "plain_text", "text": "Reject deployment"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": _text(f"Reject `{deployment}`", 3000)},
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why?"},
                "element": {"type": "plain_text_input", "action_id": REASON_ACTION, "multiline": True},
            },
        ],
    }
