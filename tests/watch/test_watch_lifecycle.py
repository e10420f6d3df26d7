"""`/qcc watch [env] [minutes]`, `/qcc watch stop [env]`, one watch per environment, and a watch
that survives a bot restart (its row and progress are in the state database)."""

from __future__ import annotations

import asyncio
import contextlib

from bot.state.models import WatchStatus
from bot.watch import WatchSample
from tests.watch.conftest import FakeClock


def healthy_probe(clock: FakeClock):
    polls: list[str] = []

    async def probe(env: str) -> WatchSample:
        polls.append(env)
        return WatchSample(at=clock(), proxy_state="running", proxy_restarts=0, version_ok=True,
                           version_commit="0a8a22f", root_status=200, available_mb=900, workers=1)

    probe.polls = polls  # type: ignore[attr-defined]
    return probe


async def wait_for(predicate, timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await predicate():  # noqa: ASYNC110 - polls the database, nothing to wait on
            await asyncio.sleep(0.02)


async def test_slash_watch_start_twice_then_stop(start_trigger_bot, clock):
    """`/qcc watch test 5` starts a 5-minute watch (announced in the channel); a second one is
    refused while it runs; `/qcc watch stop test` stops it (row `stopped`, loop gone, said in
    the thread); stopping again says no watch is running."""
    clock.gate = asyncio.Event()  # the loop stays in its first sleep
    bot = await start_trigger_bot(watch_options={"clock": clock, "sleep": clock.sleep,
                                                 "probe": healthy_probe(clock)})
    assert (await bot.sim.slash("watch test 5")).status == 200
    await bot.rt.tasks.wait_idle(10)
    watch = await bot.rt.state.active_watch("test")
    assert watch is not None and watch.started_by == "UREQUESTER"
    assert round((watch.ends_at - watch.started_at).total_seconds()) == 300
    [announce] = [m for m in bot.fake.messages.values() if "Watching `test` for 5 min" in m.text]
    assert announce.thread_ts is None and announce.channel == "CINC"

    assert (await bot.sim.slash("watch test")).status == 200
    await bot.rt.tasks.wait_idle(10)
    assert "already running" in bot.fake.calls_to("chat.postEphemeral")[-1].params["text"]

    assert (await bot.sim.slash("watch stop test")).status == 200
    await bot.rt.tasks.wait_idle(10)
    assert (await bot.rt.state.get_watch(watch.id)).status == WatchStatus.STOPPED
    assert not bot.watcher._tasks
    assert any("stopped the watch of `test`" in m.text for m in bot.fake.thread(announce.ts))

    assert (await bot.sim.slash("watch stop test")).status == 200
    await bot.rt.tasks.wait_idle(10)
    assert "No watch of `test` is running" in bot.fake.calls_to("chat.postEphemeral")[-1].params["text"]


async def test_watch_survives_a_bot_restart(start_trigger_bot, tmp_path):
    """A watch running when the bot stops stays `running` in the database with its progress; the
    next start of the same instance resumes it (said in its thread), keeps its figures and
    finishes the window with the one summary line."""
    state_url = f"sqlite+aiosqlite:///{tmp_path}/restart.db"
    first_clock = FakeClock()
    first_clock.gate = asyncio.Event()
    first_probe = healthy_probe(first_clock)
    async with contextlib.AsyncExitStack() as stack:
        bot = await start_trigger_bot(state_url=state_url, exit_stack=stack,
                                      watch_options={"clock": first_clock, "sleep": first_clock.sleep,
                                                     "probe": first_probe})
        assert (await bot.sim.slash("watch test 3")).status == 200
        await bot.rt.tasks.wait_idle(10)
        watch = await bot.rt.state.active_watch("test")
        assert watch is not None

        async def polled() -> bool:
            return (await bot.rt.state.get_watch(watch.id)).polls == 1

        await wait_for(polled)
    # the first bot is gone; its watch is still running in the database
    second_clock = FakeClock()
    second_probe = healthy_probe(second_clock)
    bot2 = await start_trigger_bot(state_url=state_url, watch_options={
        "clock": second_clock, "sleep": second_clock.sleep, "probe": second_probe})
    await bot2.idle()
    done = await bot2.rt.state.get_watch(watch.id)
    assert done.status == WatchStatus.HEALTHY and done.polls >= 9, done
    assert len(first_probe.polls) == 1 and len(second_probe.polls) == done.polls - 1
    thread = bot2.fake.thread(watch.thread_ts)
    texts = [m.text for m in thread]
    assert any("resumed after a bot restart" in t for t in texts), texts
    assert texts[-1] == ("✅ `test` watched 3 min: stayed healthy (restarts 0, min available 900 MB, "
                         "max workers 1, /version 0a8a22f)")
