"""A deployment's chat: one status message edited in place, thread replies, separate posts.

Handlers and stages queue messages (:meth:`Chat.say`) without waiting; one
loop in the workflow (:meth:`Chat.run`) delivers them in order, so a slow
channel never holds the deployment up, and a status edit that a newer one
supersedes is skipped.
"""

from __future__ import annotations

from typing import Literal

from temporalio import workflow

from workflows.config import Config
from workflows.delivery import deliver
from workflows.models import Message

__all__ = ["Chat", "ChatKind"]

ChatKind = Literal["status", "reply", "post"]
"""``status`` posts once then edits in place, ``reply`` threads under it, ``post`` is a
separate message (reminders, the rollback alert)."""


class Chat:
    """The queue of a deployment's chat messages and the loop that delivers them."""

    def __init__(self) -> None:
        self._queue: list[tuple[ChatKind, Message]] = []
        self._closed = False
        self._refs: dict[str, str] = {}
        """Channel → id of the status message, once posted."""
        self._seq = 0

    def say(self, kind: ChatKind, message: Message) -> None:
        """Queue ``message``; it is delivered by :meth:`run`."""
        self._queue.append((kind, message))

    def close(self) -> None:
        """No more messages: :meth:`run` returns once the queue is empty."""
        self._closed = True

    def reopen(self) -> None:
        """Take messages again after :meth:`close` (a rollback asked for as the deployment finished)."""
        self._closed = False

    async def run(self, config: Config, receiver: str) -> None:
        """Deliver queued messages to ``receiver`` in order until closed and drained.

        Args:
            config: the config snapshot (channels and receivers).
            receiver: where the deployment's messages go.
        """
        while True:
            await workflow.wait_condition(lambda: bool(self._queue) or self._closed)
            if not self._queue:
                return
            kind, message = self._queue.pop(0)
            if kind == "status" and self._refs and any(k == "status" for k, _ in self._queue):
                continue  # a newer status supersedes this edit
            self._seq += 1
            step = f"chat-{self._seq}-{kind}"
            if kind == "status" and not self._refs:
                records = await deliver(config, receiver, message, step)
                self._refs = {r.channel: r.message_id for r in records if r.message_id}
            elif kind == "status":
                await deliver(config, receiver, message, step, refs=self._refs)
            elif kind == "reply" and self._refs:
                await deliver(config, receiver, message, step, refs=self._refs, thread=True)
            else:
                await deliver(config, receiver, message, step)
