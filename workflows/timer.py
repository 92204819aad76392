"""One way for a workflow to race a timer against a condition.

Every flow waits the same way: "until this is true, or until that much time
has passed". :func:`wait_until` says so in one call instead of a
``try`` / ``wait_condition(timeout=…)`` / ``except TimeoutError`` block in each
flow. It issues exactly the commands ``workflow.wait_condition`` issues (one
timer when a timeout is given), so it is replay-compatible with the code it
replaces.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

__all__ = ["wait_until"]


async def wait_until(condition: Callable[[], bool], timeout: timedelta | float | None = None) -> bool:
    """Wait for ``condition`` or ``timeout``, whichever comes first.

    Args:
        condition: re-evaluated after every workflow activation; must not block.
        timeout: how long to wait (a ``timedelta`` or seconds); ``None`` waits
            for the condition alone.

    Returns:
        True when the condition held, False when the time ran out first.
    """
    if timeout is None:
        await workflow.wait_condition(condition)
        return True
    try:
        await workflow.wait_condition(condition, timeout=timeout)
    except TimeoutError:
        return False
    return True
