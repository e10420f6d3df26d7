"""The state of triggers and watches (SQLite; the same SQLAlchemy Core runs on MariaDB):
one INSERT decides replays and the open incident, one running watch per environment,
resume and takeover after a restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.state.models import WatchStatus
from bot.state.store import StateStore
from bot.state.triggerstore import WatchAlreadyRunning


@pytest.fixture
async def store(tmp_path):
    s = StateStore(f"sqlite+aiosqlite:///{tmp_path}/s.db", owner="bot-a", lease_s=60)
    await s.open()
    yield s
    await s.aclose()


async def test_delivery_is_recorded_once_even_concurrently(store):
    """Ten concurrent records of one delivery id: exactly one wins; other ids are independent."""
    results = await asyncio.gather(*(store.record_delivery("github", "d-1", "test") for _ in range(10)))
    assert results.count(True) == 1
    assert await store.record_delivery("github", "d-2", "test")
    assert await store.record_delivery("alertmanager", "d-1", "test"), "ids are per source"
    assert await store.count_deliveries() == 3


async def test_old_deliveries_are_forgotten(store):
    """A delivery older than the retention is pruned (and may then come again)."""
    now = datetime.now(UTC)
    store.clock = lambda: now - timedelta(days=20)
    assert await store.record_delivery("github", "old", None)
    store.clock = lambda: now
    assert await store.record_delivery("github", "new", None, retention_days=14)
    assert await store.count_deliveries() == 1


async def test_one_open_incident_per_environment(store):
    """The second claim loses; closing frees the environment (audited), closing again is None."""
    a = await store.create_incident("test", "CINC", "1.1", "github:x")
    b = await store.create_incident("test", "CINC", "2.2", "alertmanager")
    assert await store.claim_open_incident("test", a.id, "CINC", "1.1", "github:x")
    assert not await store.claim_open_incident("test", b.id, "CINC", "2.2", "alertmanager")
    assert (await store.open_incident("test")).incident_id == a.id
    assert (await store.close_open_incident("test", actor="alertmanager", reason="resolved")).incident_id == a.id
    assert await store.close_open_incident("test", actor="x", reason="again") is None
    assert await store.claim_open_incident("test", b.id, "CINC", "2.2", "alertmanager")
    assert "incident_closed" in [e.event for e in await store.list_audit(20)]


async def test_one_running_watch_per_environment(store):
    """A second watch of an environment is refused while one runs; others are independent;
    after it ends a new one may start."""
    w = await store.start_watch("test", started_by="U1", minutes=10, interval_s=20, channel="C", thread_ts=None,
                                origin="x")
    with pytest.raises(WatchAlreadyRunning) as err:
        await store.start_watch("test", started_by="U2", minutes=5, interval_s=20, channel="C", thread_ts=None,
                                origin="y")
    assert err.value.watch.id == w.id
    await store.start_watch("prod", started_by="U2", minutes=5, interval_s=20, channel="C", thread_ts=None,
                            origin="y")
    assert await store.finish_watch(w.id, WatchStatus.STOPPED, actor="U1")
    assert not await store.finish_watch(w.id, WatchStatus.HEALTHY), "finished once"
    assert not await store.save_watch_progress(w.id, 3, "{}"), "a stopped watch takes no progress"
    again = await store.start_watch("test", started_by="U1", minutes=10, interval_s=20, channel="C",
                                    thread_ts=None, origin="x")
    assert again.id != w.id


async def test_resume_own_and_take_over_dead_owners(store, tmp_path):
    """At start-up an instance resumes its own running watches at once, and another replica's
    only after that replica's heartbeat is older than the lease (then it owns them)."""
    other = StateStore(store.url, owner="bot-b", lease_s=60)
    await other.open()
    try:
        mine = await store.start_watch("test", started_by="U", minutes=10, interval_s=20, channel="C",
                                       thread_ts=None, origin="x")
        theirs = await other.start_watch("prod", started_by="U", minutes=10, interval_s=20, channel="C",
                                         thread_ts=None, origin="x")
        assert [w.id for w in await store.resumable_watches()] == [mine.id]
        later = datetime.now(UTC) + timedelta(seconds=120)
        store.clock = lambda: later
        taken = await store.resumable_watches()
        assert {w.id for w in taken} == {mine.id, theirs.id}
        assert (await store.get_watch(theirs.id)).owner == "bot-a"
        assert not await other.save_watch_progress(theirs.id, 1, "{}"), "the old owner lost it"
    finally:
        await other.aclose()
