"""The worker's token bucket by priority (issue 10, item 4): first pages before updates, critical first.

``Channel.pace(priority, now=...)`` on a Slack channel (1 msg/s, bursts of 5): pages may take the
whole burst, updates leave two tokens to pages and wait behind a deferred page (one interval
longer), and a page waits behind a deferred critical page, so that deferred sends come back in
priority order whatever order their retries fire in.
"""

from __future__ import annotations

from typing import Any

import pytest

from activities.channels import ChannelDeps, ChannelError
from activities.channels.slack import SlackChannel


def slack(deps: ChannelDeps, **settings: Any) -> SlackChannel:
    return SlackChannel("alerts", {"token": "xoxb-x", "channel": "#alerts", **settings}, deps)


def deferred(channel: SlackChannel, priority: str, now: float) -> float:
    with pytest.raises(ChannelError) as err:
        channel.pace(priority, now=now)
    assert err.value.retryable and err.value.kind == "Paced"
    assert err.value.retry_after is not None
    return err.value.retry_after


async def test_pages_take_the_whole_burst_updates_leave_two_tokens_to_pages(deps: ChannelDeps) -> None:
    channel = slack(deps)
    for _ in range(3):
        channel.pace("update", now=0.0)
    wait = deferred(channel, "update", 0.0)
    assert wait == pytest.approx(2.0), "an update waits until three tokens are there again, and one interval more"
    channel.pace("page", now=0.0)
    channel.pace("critical", now=0.0)  # the reserve is the pages'
    assert deferred(channel, "page", 0.0) == pytest.approx(1.0)


async def test_an_update_waits_behind_a_deferred_page(deps: ChannelDeps) -> None:
    channel = slack(deps)
    for _ in range(5):
        channel.pace("page", now=0.0)
    page_wait = deferred(channel, "page", 0.0)
    assert page_wait == pytest.approx(1.0)
    # Half a second later a token is almost there, and plenty by the time the update would retry,
    # but the deferred page comes back first: the update is deferred past it.
    update_wait = deferred(channel, "update", 0.5)
    assert 0.5 + update_wait > page_wait + 1.0
    channel.pace("page", now=page_wait)  # the page's retry finds its token
    with pytest.raises(ChannelError):
        channel.pace("update", now=page_wait + 0.1)


async def test_a_page_waits_behind_a_deferred_critical_page(deps: ChannelDeps) -> None:
    channel = slack(deps, burst=1)
    channel.pace("page", now=10.0)
    critical_wait = deferred(channel, "critical", 10.0)
    page_wait = deferred(channel, "page", 10.2)
    assert 10.2 + page_wait >= 10.0 + critical_wait + 1.0, "the critical page goes first"
    channel.pace("critical", now=10.0 + critical_wait)


async def test_without_priority_a_send_is_a_page_as_before(deps: ChannelDeps) -> None:
    channel = slack(deps, rate_per_second=2, burst=2)
    channel.pace(now=0.0)
    channel.pace(now=0.0)
    with pytest.raises(ChannelError) as err:
        channel.pace(now=0.0)
    assert err.value.retry_after == pytest.approx(0.5)
    assert slack(deps, rate_per_second=0).pace_rate() is None, "rate 0: unpaced"
