"""What every operation is given: a Temporal client, the config, the task queue."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from operations.errors import BadInput, Unavailable
from workflows.config import Config
from workflows.identity import Actor

__all__ = ["Context", "temporal_errors", "require_actor"]


@dataclass(frozen=True)
class Context:
    """The world an operation acts on."""

    client: Client
    config: Config
    task_queue: str


_UNAVAILABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}


@contextlib.contextmanager
def temporal_errors() -> Iterator[None]:
    """Temporal not answering becomes :class:`Unavailable` (other RPC errors pass through)."""
    try:
        yield
    except RPCError as exc:
        if exc.status in _UNAVAILABLE:
            raise Unavailable(f"Temporal unavailable: {exc.message}") from None
        raise
    except RuntimeError as exc:  # a lazy client that cannot connect
        text = str(exc)
        if "connect" in text.lower() or "transport" in text.lower():
            raise Unavailable(f"Temporal unavailable: {text.splitlines()[0][:200]}") from None
        raise


def require_actor(actor: Actor, field: str = "--by") -> Actor:
    """Every human action has an identity: an empty name is bad input naming ``field``."""
    if not actor.name.strip():
        raise BadInput(field, "must not be empty: every action has an identity")
    return actor
