"""Spawned work waits for the acks of the requests in flight (handlers.tasks.AcksFirst)."""

from __future__ import annotations

import asyncio

from handlers.tasks import AcksFirst, TaskRegistry


async def _started_flag(reg: TaskRegistry) -> asyncio.Event:
    started = asyncio.Event()

    async def work() -> None:
        started.set()

    reg.spawn(work(), name="work")
    return started


async def test_work_starts_after_the_requests_in_flight_are_answered() -> None:
    gate = AcksFirst(quiet_s=0.01, max_wait_s=30)
    reg = TaskRegistry(gate)
    with gate.answering():
        started = await _started_flag(reg)
        with gate.answering():  # a second request of the burst arrives
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.1)
        assert not started.is_set()  # one request is still being answered
    await asyncio.wait_for(started.wait(), 5)
    await reg.drain()


async def test_work_starts_anyway_after_max_wait() -> None:
    """A request that never ends (a stuck listener) delays the work by max_wait_s, no more."""
    gate = AcksFirst(quiet_s=0.01, max_wait_s=0.2)
    reg = TaskRegistry(gate)
    with gate.answering():
        started = await _started_flag(reg)
        await asyncio.wait_for(started.wait(), 5)
    await reg.drain()


async def test_without_a_gate_work_starts_at_once() -> None:
    reg = TaskRegistry()
    started = await _started_flag(reg)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert started.is_set()
    await reg.drain()
