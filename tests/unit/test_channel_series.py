"""A worker starts each configured channel's latency and pacing series at zero (activities/metrics.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

from prometheus_client import REGISTRY

from activities.delivery import DeliveryActivities
from operations.config import ConfigStore


def _count(metric: str, channel: str) -> float | None:
    return REGISTRY.get_sample_value(f"{metric}_count", {"channel": channel})


async def test_configured_channels_have_series_before_their_first_send(tmp_path: Path, write_config) -> None:  # type: ignore[no-untyped-def]
    channel = f"chat-{uuid.uuid4().hex[:6]}"
    path = write_config(
        {
            "channels": {channel: {"type": "console"}},
            "receivers": [{"name": "r", "channels": [channel]}],
            "route": {"receiver": "r"},
        }
    )
    assert _count("tocsin_notification_latency_seconds", channel) is None
    activities = DeliveryActivities(ConfigStore(path), home=tmp_path)
    try:
        # Present at zero from the first scrape, so rate() sees the first sends as an increase.
        assert _count("tocsin_notification_latency_seconds", channel) == 0.0
        assert _count("tocsin_notification_pacing_delay_seconds", channel) == 0.0
    finally:
        await activities.aclose()
