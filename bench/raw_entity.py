"""The raw ingest floor's workflow: a trivial entity, in a module of its own.

The workflow sandbox re-imports a workflow's module for every run; this one imports nothing but
``temporalio.workflow``, as a well-written raw worker's would.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

__all__ = ["RawEntityWorkflow", "ENTITY_SIGNAL"]

ENTITY_SIGNAL = "add"


@workflow.defn(name="RawEntityWorkflow")
class RawEntityWorkflow:
    """One entity per key: counts what it is sent, and stays open."""

    def __init__(self) -> None:
        """Nothing received yet."""
        self.received = 0

    @workflow.signal(name=ENTITY_SIGNAL)
    def add(self, item: dict[str, Any]) -> None:
        """One more item."""
        self.received += 1

    @workflow.run
    async def run(self) -> int:
        """Wait for ever (the benchmark's dev server is thrown away after the run)."""
        await workflow.wait_condition(lambda: self.received < 0)
        return self.received
