"""The state store: atomic approval transitions, audit rows, expiry, restarts, replicas."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from datetime import timedelta

import pytest

from bot.errors import ApprovalAlreadyHandled, ApprovalError, ApprovalExpired
from bot.state.models import ApprovalStatus, RunKind, RunStatus
from bot.state.store import StateStore
from tests.state.conftest import pending_approval

A = ApprovalStatus


async def _race(stores: list[StateStore], approval_id: str, n: int = 50) -> list[object]:
    async def one(i: int) -> object:
        try:
            return await stores[i % len(stores)].transition(approval_id, A.PENDING, A.APPROVED, actor=f"U{i}")
        except ApprovalAlreadyHandled as exc:
            return exc

    return await asyncio.gather(*[one(i) for i in range(n)])


async def test_transition_is_atomic_under_concurrency(store):
    """50 concurrent pending->approved attempts: exactly one wins, the others learn who did."""
    approval_id = await pending_approval(store)
    results = await _race([store], approval_id)
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1
    who = winners[0].decided_by
    assert all(r.handled_by == who for r in results if isinstance(r, ApprovalAlreadyHandled))
    events = [e.event for e in await store.list_audit(200)]
    assert events.count("approval_approved") == 1


async def test_every_transition_writes_one_audit_row(store):
    """pending -> approved -> running -> succeeded: one audit row each, with actor and result."""
    approval_id = await pending_approval(store)
    await store.transition(approval_id, A.PENDING, A.APPROVED, actor="UAPP")
    await store.transition(approval_id, A.APPROVED, A.RUNNING, actor="UAPP")
    final = await store.transition(approval_id, A.RUNNING, A.SUCCEEDED, actor="UAPP", result="column added")
    assert final.status == A.SUCCEEDED and final.decided_by == "UAPP" and final.result == "column added"
    rows = [(e.event, e.actor, e.result) for e in reversed(await store.list_audit(10))
            if e.subject == approval_id]
    assert rows == [("approval_requested", "UREQ", "pending"), ("approval_approved", "UAPP", "approved"),
                    ("approval_running", "UAPP", "running"), ("approval_succeeded", "UAPP", "succeeded")]


async def test_disallowed_transition_raises(store):
    """Skipping a state (pending -> running) is refused before touching the row."""
    approval_id = await pending_approval(store)
    with pytest.raises(ApprovalError):
        await store.transition(approval_id, A.PENDING, A.RUNNING, actor="U")
    assert (await store.get_approval(approval_id)).status == A.PENDING


async def test_expired_approval_cannot_be_approved(store):
    """After expires_at the approval moves to `expired` and approving raises ApprovalExpired."""
    approval_id = await pending_approval(store, expiry_s=60)
    real = store.clock
    store.clock = lambda: real() + timedelta(seconds=61)
    with pytest.raises(ApprovalExpired):
        await store.transition(approval_id, A.PENDING, A.APPROVED, actor="UAPP")
    assert (await store.get_approval(approval_id)).status == A.EXPIRED
    with pytest.raises(ApprovalExpired):
        await store.transition(approval_id, A.PENDING, A.APPROVED, actor="UAPP")


async def test_one_open_approval_per_proposal(store):
    """A second request for the same fix while one is open is refused; after it closes, allowed."""
    approval_id = await pending_approval(store)
    proposal_id = (await store.get_approval(approval_id)).proposal_id
    with pytest.raises(ApprovalAlreadyHandled) as err:
        await store.request_approval(proposal_id, "UOTHER", expiry_s=900, channel="C1", thread_ts="1.1")
    assert err.value.handled_by == "UREQ"
    await store.transition(approval_id, A.PENDING, A.REJECTED, actor="UAPP")
    again = await store.request_approval(proposal_id, "UOTHER", expiry_s=900, channel="C1", thread_ts="1.1")
    assert again.status == A.PENDING


async def test_recovery_marks_own_and_dead_runs_only(tmp_path):
    """On start-up an instance marks its own leftover runs and runs whose owner stopped heart-beating
    as interrupted; a live replica's run (fresh heartbeat) is left alone."""
    url = f"sqlite+aiosqlite:///{tmp_path}/s.db"
    a, b = StateStore(url, owner="bot-a", lease_s=60), StateStore(url, owner="bot-b", lease_s=60)
    await a.open()
    await b.open()
    try:
        mine = await a.start_run(RunKind.FIX, "test", actor="U", channel="C", thread_ts="1.1")
        theirs = await b.start_run(RunKind.DIAGNOSIS, "test", actor="U", channel="C", thread_ts="2.2")
        items = await a.recover_interrupted()
        assert [i.run_id for i in items] == [mine.id]
        assert (await a.get_run(theirs.id)).status == RunStatus.RUNNING
        real = a.clock
        a.clock = lambda: real() + timedelta(seconds=120)  # b stopped heart-beating
        items = await a.recover_interrupted()
        assert [i.run_id for i in items] == [theirs.id]
        assert await a.recover_interrupted() == []
    finally:
        await a.aclose()
        await b.aclose()


async def test_finished_run_is_not_overwritten_by_recovery(store):
    """finish_run only moves a run that is still running; an interrupted run stays interrupted."""
    run = await store.start_run(RunKind.DIAGNOSIS, "test", actor="U")
    await store.recover_interrupted()
    assert await store.finish_run(run.id, RunStatus.SUCCEEDED, actor="U") is False
    assert (await store.get_run(run.id)).status == RunStatus.INTERRUPTED


@pytest.mark.mariadb
async def test_replicas_sharing_mariadb_move_an_approval_once(mariadb_url):
    """Two bot replicas (separate engines and pools) on one MariaDB: 50 concurrent approve
    attempts split between them produce exactly one winner."""
    stores = [StateStore(mariadb_url, owner="bot-a"), StateStore(mariadb_url, owner="bot-b")]
    for s in stores:
        await s.open()
    try:
        approval_id = await pending_approval(stores[0])
        results = await _race(stores, approval_id)
        assert len([r for r in results if not isinstance(r, Exception)]) == 1
        events = [e.event for e in await stores[1].list_audit(200)]
        assert events.count("approval_approved") == 1
    finally:
        for s in stores:
            await s.aclose()


@pytest.mark.mariadb
async def test_processes_sharing_mariadb_move_an_approval_once(mariadb_url):
    """Four OS processes racing 10 attempts each on the same approval: exactly one succeeds."""
    store = StateStore(mariadb_url, owner="bot-a")
    await store.open()
    try:
        approval_id = await pending_approval(store)
        script = textwrap.dedent(f"""
            import asyncio, sys
            from bot.errors import ApprovalAlreadyHandled
            from bot.state.models import ApprovalStatus as A
            from bot.state.store import StateStore
            async def main():
                s = StateStore({mariadb_url!r}, owner="proc-" + sys.argv[1])
                await s.open()
                async def one(i):
                    try:
                        await s.transition({approval_id!r}, A.PENDING, A.APPROVED,
                                           actor=f"U{{sys.argv[1]}}x{{i}}")
                        return 1
                    except ApprovalAlreadyHandled:
                        return 0
                wins = sum(await asyncio.gather(*[one(i) for i in range(10)]))
                await s.aclose()
                print(wins)
            asyncio.run(main())
        """)
        procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(n),
                                                      stdout=asyncio.subprocess.PIPE, cwd=".")
                 for n in range(4)]
        outs = [await p.communicate() for p in procs]
        assert all(p.returncode == 0 for p in procs)
        assert sum(int(o[0].decode().strip()) for o in outs) == 1
        assert (await store.get_approval(approval_id)).status == A.APPROVED
    finally:
        await store.aclose()


class _Recorder:
    """A StoreObserver that remembers what it was told."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []
        self.decisions: list[str] = []

    def run_finished(self, kind: str, status: str, duration_s: float) -> None:
        assert duration_s >= 0
        self.runs.append((kind, status))

    def approval_decided(self, decision: str, latency_s: float) -> None:
        assert latency_s >= 0
        self.decisions.append(decision)


async def test_upkeep_heartbeats_own_runs_and_takes_over_only_expired_leases(tmp_path):
    """The periodic upkeep never touches this instance's own running runs (their heartbeat is
    refreshed), and marks another owner's run interrupted only once its lease expired."""
    url = f"sqlite+aiosqlite:///{tmp_path}/s.db"
    a, b = StateStore(url, owner="bot-a", lease_s=30), StateStore(url, owner="bot-b", lease_s=30)
    await a.open()
    await b.open()
    try:
        mine = await a.start_run(RunKind.FIX, "test", actor="U", channel="C", thread_ts="1.1")
        theirs = await b.start_run(RunKind.DIAGNOSIS, "test", actor="U", channel="C", thread_ts="2.2")
        assert await a.upkeep() == []
        real = a.clock
        a.clock = lambda: real() + timedelta(seconds=31)  # b's lease expired; a keeps heart-beating
        items = await a.upkeep()
        assert [i.run_id for i in items] == [theirs.id]
        assert (await a.get_run(mine.id)).status == RunStatus.RUNNING
        assert await a.upkeep() == []
    finally:
        await a.aclose()
        await b.aclose()


async def test_observer_hears_each_finished_run_and_decision_once(tmp_path):
    """The observer is told once per finished run (including recovery's `interrupted`) and once
    per approval decision; interrupted_since lists this owner's runs a shutdown interrupted."""
    seen = _Recorder()
    store = StateStore(f"sqlite+aiosqlite:///{tmp_path}/s.db", owner="bot-a", observer=seen)
    await store.open()
    try:
        since = store.clock()
        run = await store.start_run(RunKind.DIAGNOSIS, "test", actor="U", channel="C", thread_ts="1.1")
        assert await store.finish_run(run.id, RunStatus.SUCCEEDED, actor="U")
        assert not await store.finish_run(run.id, RunStatus.FAILED, actor="U")
        cancelled = await store.start_run(RunKind.DIAGNOSIS, "test", actor="U", channel="C", thread_ts="2.2")
        await store.finish_run(cancelled.id, RunStatus.INTERRUPTED, actor="U")
        left = await store.start_run(RunKind.DIAGNOSIS, "test", actor="U")
        await store.recover_interrupted()
        assert seen.runs == [("diagnosis", "succeeded"), ("diagnosis", "interrupted"),
                             ("diagnosis", "interrupted")]
        assert {i.run_id for i in await store.interrupted_since(since)} == {cancelled.id, left.id}
        approval_id = await pending_approval(store)
        await store.transition(approval_id, A.PENDING, A.APPROVED, actor="UAPP")
        with pytest.raises(ApprovalAlreadyHandled):
            await store.transition(approval_id, A.PENDING, A.APPROVED, actor="UAPP")
        await store.transition(approval_id, A.APPROVED, A.RUNNING, actor="UAPP")
        assert seen.decisions == ["approved"]
    finally:
        await store.aclose()


async def test_check_answers_none_while_the_database_answers(tmp_path):
    """check() is None while the database answers (the unreachable case is proven against
    MariaDB behind a cut TCP forwarder in tests/reliability/test_lifecycle.py)."""
    store = StateStore(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    await store.open()
    try:
        assert await store.check() is None
    finally:
        await store.aclose()
