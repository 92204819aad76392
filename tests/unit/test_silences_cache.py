"""The worker's cache of the silences store (``IncidentActivities._silences``), on a fake client and clock.

A read within half of ``SILENCES_TTL`` answers from the cache; past half, it still answers from
the cache at once and refreshes it in the background (one query at a time), so a first page
never waits for the store while incidents keep coming; past the whole TTL a read waits for a
fresh list. Concurrent reads share one query.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

import activities.incidents as incidents_module
from activities.incidents import IncidentActivities
from workflows.silences import SilenceRecord, SilencesState

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def silence(sid: str) -> SilenceRecord:
    return SilenceRecord(
        id=sid,
        matchers=['service="db"'],
        starts_at=NOW - timedelta(minutes=1),
        ends_at=NOW + timedelta(hours=1),
        created_by="alice",
        comment="maintenance",
    )


class FakeStore:
    """The silences workflow's query: answers ``listing``; holds each answer until ``go`` is set."""

    def __init__(self) -> None:
        self.listing: list[SilenceRecord] = []
        self.queries = 0
        self.go = asyncio.Event()
        self.go.set()
        self.missing = False

    def get_workflow_handle(self, wid: str) -> FakeStore:
        return self

    async def query(self, name: str, **kwargs: Any) -> SilencesState:
        self.queries += 1
        await self.go.wait()
        if self.missing:
            raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")
        return SilencesState(silences=list(self.listing))


class Clock:
    """Stands in for the ``time`` module the activities read (the event loop keeps the real one)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(incidents_module, "time", c)
    return c


def acts(store: FakeStore) -> IncidentActivities:
    async def snapshot() -> Any:
        raise AssertionError("not used")

    return IncidentActivities(store, store=None, snapshot=snapshot)  # type: ignore[arg-type]


async def ids(a: IncidentActivities) -> list[str]:
    return [s["id"] for s in await a._silences(NOW)]


async def test_a_fresh_list_is_reused_without_a_query(clock: Clock) -> None:
    store = FakeStore()
    store.listing = [silence("s1")]
    a = acts(store)
    assert await ids(a) == ["s1"]
    store.listing = [silence("s1"), silence("s2")]
    clock.now += IncidentActivities.SILENCES_TTL * 0.4
    assert await ids(a) == ["s1"]
    assert store.queries == 1


async def test_past_half_the_ttl_a_read_answers_at_once_and_refreshes_in_the_background(clock: Clock) -> None:
    store = FakeStore()
    store.listing = [silence("s1")]
    a = acts(store)
    await ids(a)
    store.listing = [silence("s1"), silence("s2")]
    store.go.clear()  # the store is slow now
    clock.now += IncidentActivities.SILENCES_TTL * 0.6
    assert await asyncio.wait_for(ids(a), timeout=1) == ["s1"], "answered from the cache, not held by the store"
    assert await asyncio.wait_for(ids(a), timeout=1) == ["s1"]
    await asyncio.sleep(0)
    assert store.queries == 2, "one background refresh, not one per read"
    store.go.set()
    await asyncio.sleep(0.01)
    assert await ids(a) == ["s1", "s2"], "the refresh landed"
    assert store.queries == 2


async def test_past_the_ttl_a_read_waits_for_a_fresh_list(clock: Clock) -> None:
    store = FakeStore()
    a = acts(store)
    assert await ids(a) == []
    store.listing = [silence("s9")]
    clock.now += IncidentActivities.SILENCES_TTL * 1.1
    assert await ids(a) == ["s9"]
    assert store.queries == 2


async def test_concurrent_reads_share_one_query_and_a_missing_store_means_no_silences(clock: Clock) -> None:
    store = FakeStore()
    store.missing = True
    store.go.clear()
    a = acts(store)
    reads = [asyncio.create_task(ids(a)) for _ in range(5)]
    await asyncio.sleep(0.01)
    store.go.set()
    assert await asyncio.gather(*reads) == [[]] * 5
    assert store.queries == 1


async def test_a_cancelled_page_does_not_cancel_the_shared_read_and_aclose_stops_it(clock: Clock) -> None:
    store = FakeStore()
    store.listing = [silence("s1")]
    store.go.clear()
    a = acts(store)
    first = asyncio.create_task(ids(a))
    second = asyncio.create_task(ids(a))
    await asyncio.sleep(0.01)
    first.cancel()
    store.go.set()
    assert await second == ["s1"]
    store.go.clear()
    clock.now += IncidentActivities.SILENCES_TTL * 0.6
    await ids(a)  # starts a background refresh, held by the store
    await asyncio.sleep(0)
    await a.aclose()
    assert a._silences_read is not None and a._silences_read.cancelled()
