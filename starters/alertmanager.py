"""Alertmanager's webhook body (payload version 4), parsed at the door into Tocsin alerts.

Size limits are applied by ``dispatch_alerts`` (see ``operations.alerts``), whichever door the
alerts came through; this module only parses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from operations.alerts import fingerprint
from workflows.incident import Alert

__all__ = ["AMAlert", "AMWebhook"]


class AMAlert(BaseModel):
    """One alert of an Alertmanager webhook (payload version 4)."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class AMWebhook(BaseModel):
    """Alertmanager's webhook body (``version: "4"``)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str = ""
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AMAlert] = Field(min_length=1)

    def to_alerts(self) -> list[Alert]:
        """Tocsin alerts (Alertmanager's zero time ``0001-01-01`` means "no end").

        Values are kept as sent: ``operations.alerts.dispatch_alerts`` cuts them to its documented
        limits (4 KiB label values, 16 KiB annotation values…) with a visible marker. An alert
        without a fingerprint gets one here, from its full labels, so two alerts that differ only
        past the cut stay two alerts.
        """
        out = []
        for a in self.alerts:
            ends = a.endsAt if a.endsAt and a.endsAt.year > 1 else None
            out.append(
                Alert(
                    fingerprint=a.fingerprint or fingerprint(a.labels),
                    status=a.status,
                    labels=a.labels,
                    annotations=a.annotations,
                    starts_at=a.startsAt,
                    ends_at=ends,
                    generator_url=a.generatorURL,
                )
            )
        return out
