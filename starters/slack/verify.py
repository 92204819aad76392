"""Slack's request signatures, checked over the raw body before anything else is read.

Every request on ``/webhooks/slack/*`` carries ``X-Slack-Request-Timestamp`` and
``X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:<timestamp>:<raw body>")>``.
:func:`check_signature` checks both with :class:`slack_sdk.signature.SignatureVerifier`
(constant-time comparison, five-minute window) and says why a request fails: ``missing``
headers, a ``malformed`` timestamp, a ``stale`` one, or a ``bad-signature``. Each refusal is
logged and counted (``tocsin_slack_rejected_total{reason}``).

:class:`SlackSettings` is what the Slack door needs from the environment: ``SLACK_SIGNING_SECRET``
(without it the routes answer 403 and accept nothing), ``SLACK_BOT_TOKEN`` (for ``views.open``)
and ``SLACK_API_URL`` (the Web API's base, overridable for tests as a Slack channel's ``api_url``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import Counter
from slack_sdk.signature import Clock, SignatureVerifier

__all__ = [
    "SlackSettings",
    "check_signature",
    "WINDOW_SECONDS",
    "REJECTED",
    "Deduper",
]

log = logging.getLogger("tocsin.slack")

WINDOW_SECONDS = 300
"""How far a request's timestamp may be from the gateway's clock (Slack's documented five minutes)."""

REJECTED = Counter("tocsin_slack_rejected_total", "Slack requests refused at the door", ["reason"])

DEFAULT_API_URL = "https://slack.com/api/"


@dataclass(frozen=True)
class SlackSettings:
    """The Slack door's settings, read from the environment on each request (a restart is not needed)."""

    signing_secret: str = ""
    bot_token: str = ""
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SlackSettings:
        """``SLACK_SIGNING_SECRET``, ``SLACK_BOT_TOKEN``, ``SLACK_API_URL`` (default ``https://slack.com/api/``)."""
        env = os.environ if environ is None else environ
        api_url = env.get("SLACK_API_URL", "").strip() or DEFAULT_API_URL
        return cls(
            signing_secret=env.get("SLACK_SIGNING_SECRET", "").strip(),
            bot_token=env.get("SLACK_BOT_TOKEN", "").strip(),
            api_url=api_url if api_url.endswith("/") else api_url + "/",
        )


class _FixedClock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


def check_signature(
    secret: str, body: bytes, headers: Mapping[str, str], now: Callable[[], float] | None = None
) -> str | None:
    """None when the request is Slack's, else why not: ``missing``, ``malformed``, ``stale`` or ``bad-signature``.

    ``headers`` may use any case; ``now`` (seconds since the epoch) is for tests with a frozen clock.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp, signature = lower.get("x-slack-request-timestamp"), lower.get("x-slack-signature")
    if not timestamp or not signature:
        return "missing"
    try:
        stamp = int(timestamp.strip())
    except ValueError:
        return "malformed"
    clock = _FixedClock(now) if now is not None else Clock()
    if abs(clock.now() - stamp) > WINDOW_SECONDS:
        return "stale"
    try:
        valid = SignatureVerifier(secret, clock=clock).is_valid(body=body, timestamp=timestamp, signature=signature)
    except (UnicodeDecodeError, ValueError):
        valid = False
    return None if valid else "bad-signature"


class Deduper:
    """A bounded cache of recently seen keys, each remembered for ``ttl`` seconds.

    :meth:`first` answers True once per key within its lifetime: Slack's retries (``X-Slack-Retry-Num``)
    and double clicks act once. At most ``size`` keys are kept (the oldest go first).
    """

    def __init__(self, ttl: float = 600.0, size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.size, self._clock = ttl, size, clock
        self._seen: OrderedDict[tuple[str, ...], float] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, *keys: tuple[str, ...]) -> bool:
        """True when none of ``keys`` was seen within its lifetime; then all of them are remembered."""
        now = self._clock()
        with self._lock:
            while self._seen and next(iter(self._seen.values())) <= now:
                self._seen.popitem(last=False)
            if any(self._seen.get(key, 0.0) > now for key in keys):
                return False
            for key in keys:
                self._seen[key] = now + self.ttl
                self._seen.move_to_end(key)
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)
            return True
