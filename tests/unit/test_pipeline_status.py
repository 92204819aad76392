"""A pipeline's ``TocsinStatus``: running until a run finishes, then passing or failing."""

from __future__ import annotations

from workflows.pipeline import Track
from workflows.policy.builds import pipeline_status


def test_only_started_events_is_running_not_passing() -> None:
    assert pipeline_status([Track(last_commit="abc1234")]) == "running"
    assert pipeline_status([]) == "running"


def test_a_finished_green_run_is_passing() -> None:
    assert pipeline_status([Track(last_status="success"), Track(last_commit="def5678")]) == "passing"


def test_any_red_track_is_failing() -> None:
    assert pipeline_status([Track(last_status="success"), Track(last_status="failure", consecutive_failures=2)]) == (
        "failing"
    )
