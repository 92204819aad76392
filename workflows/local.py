"""One try of an activity from the workflow task itself, for flows that would rather not wait a round trip.

A local activity runs in the worker that decided it and is recorded as a marker, not scheduled on
the server. Tocsin uses it for one bounded try before the durable activity (an incident's page on
an unpaced channel, ``workflows.delivery``; an incident's journal batch, ``workflows.journal``):
what the try does not do, the durable activity does, with its retries.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import CancelledError as TemporalCancelledError
from temporalio.exceptions import FailureError

__all__ = ["try_locally"]

ONE_TRY = RetryPolicy(maximum_attempts=1)


async def try_locally(activity: Any, arg: Any, timeout: timedelta) -> Any:
    """``activity(arg)`` once as a local activity, for at most ``timeout``: its result, or the
    :class:`FailureError` it ended with (a local activity's failure is raised as its cause, or a
    timeout). A cancellation of the flow propagates."""
    try:
        return await workflow.execute_local_activity(
            activity, arg, start_to_close_timeout=timeout, retry_policy=ONE_TRY
        )
    except FailureError as exc:
        if isinstance(exc, TemporalCancelledError):
            raise
        return exc
