"""Prometheus metrics of the activities (served by the gateway and the worker)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Histogram

__all__ = ["NOTIFICATIONS", "NOTIFY_LATENCY", "PACING_DELAY", "DEAD_LETTERS", "start_channel_series"]

NOTIFICATIONS = Counter(
    "tocsin_notifications_total", "Notification sends by channel and outcome", ["channel", "outcome"]
)
NOTIFY_LATENCY = Histogram(
    "tocsin_notification_latency_seconds",
    "Time a channel API took to accept a notification",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PACING_DELAY = Histogram(
    "tocsin_notification_pacing_delay_seconds",
    "How long pacing held a delivered notification back (0 when it was not held)",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
DEAD_LETTERS = Counter(
    "tocsin_dead_letters_total",
    "Notifications a channel could not deliver before its receiver's give_up_after",
    ["receiver", "channel"],
)


def start_channel_series(channels: Iterable[str]) -> None:
    """Create each channel's latency and pacing series at zero (a worker starting).

    A series that first appears with its first observations already counted shows no increase to
    ``rate()``, so the dashboard's latency panels would stay empty until a channel's second burst
    of sends (Prometheus: "avoid missing metrics").
    """
    for channel in channels:
        NOTIFY_LATENCY.labels(channel)
        PACING_DELAY.labels(channel)
