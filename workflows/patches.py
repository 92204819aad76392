"""``workflow.patched`` for helpers shared by flows, with the run's answer when it already knows it.

A flow whose newest patch implies the older ones (a run started with it follows all of them)
puts those older ids in ``assumed_patches`` on its instance. Shared helpers ask :func:`patched`
instead of ``workflow.patched``: in such a run they get True without a marker, and the history
of every run started before keeps replaying as it was recorded. Each ``workflow.patched`` call
in a new run records a marker and upserts ``TemporalChangeVersion`` (a visibility write); a
flow on its fourth patch saves the server three of each per run.
"""

from __future__ import annotations

from temporalio import workflow

__all__ = ["patched", "assumed"]


def patched(patch_id: str) -> bool:
    """``workflow.patched(patch_id)``, or True when the running flow assumes that patch."""
    return assumed(patch_id) or workflow.patched(patch_id)


def assumed(patch_id: str) -> bool:
    """Whether the running flow assumes ``patch_id``; never asks (no marker): for behaviour only some flows opt into."""
    return patch_id in getattr(workflow.instance(), "assumed_patches", frozenset())
