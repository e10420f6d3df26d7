"""The post-deploy watch in Slack: start, stop, resume, and say how it ended.

:class:`Watcher` owns one loop task per running watch (:func:`bot.watch.run_watch`), outside
the request task registry: shutdown cancels the loops at once and leaves their rows
``running``, so the next start of this instance (:meth:`Watcher.resume`) picks them up where
they were (the progress is stored after every poll). A degraded environment opens the
environment's incident in the watch's thread (when none is open) and runs a diagnosis there;
a clean window posts one line with its figures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bot.errors import BotError, SlackError
from bot.state.models import WatchStatus
from bot.state.triggerstore import WatchAlreadyRunning, WatchRecord
from bot.watch import Probe, ServiceProbe, WatchOutcome, WatchProgress, WatchVerdict, run_watch, summary_line
from handlers import blocks
from handlers.runtime import Runtime
from handlers.triggers import start_incident_diagnosis

log = logging.getLogger("qcc.watch")

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


class Watcher:
    """Post-deploy watches of one bot instance. ``clock``/``sleep``/``probe`` are injectable
    (tests run a ten-minute window in milliseconds)."""

    def __init__(self, rt: Runtime, *, clock: Clock | None = None, sleep: Sleep | None = None,
                 probe: Probe | None = None) -> None:
        self.rt = rt
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.sleep: Sleep = sleep or asyncio.sleep
        self.probe: Probe = probe or ServiceProbe(rt.services.diagnosis, self.clock)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # -- control -----------------------------------------------------------------------
    async def start(self, env: str, *, actor: str, channel: str, thread_ts: str | None = None,
                    minutes: float | None = None, origin: str = "started by hand",
                    quiet_if_running: bool = False) -> WatchRecord | None:
        """Start watching ``env`` and announce it (in ``thread_ts``, else as a new message).

        Raises :class:`WatchAlreadyRunning` when one runs (None instead with ``quiet_if_running``).
        """
        cfg = self.rt.settings.watch
        minutes = minutes or cfg.window_min
        try:
            watch = await self.rt.state.start_watch(env, started_by=actor, minutes=minutes,
                                                    interval_s=cfg.interval_s, channel=channel,
                                                    thread_ts=thread_ts, origin=origin)
        except WatchAlreadyRunning:
            if quiet_if_running:
                return None
            raise
        ts = await self.rt.out.post(channel, blocks.watch_started(env, minutes, cfg.interval_s, origin),
                                    thread_ts=thread_ts)
        if thread_ts is None:
            await self.rt.state.set_watch_thread(watch.id, channel, ts)
            watch = watch.model_copy(update={"thread_ts": ts})
        self._spawn(watch, WatchProgress())
        return watch

    async def stop(self, env: str, actor: str) -> WatchRecord | None:
        """Stop ``env``'s watch (any replica's: its next poll sees it); None when none runs."""
        watch = await self.rt.state.active_watch(env)
        if watch is None or not await self.rt.state.finish_watch(watch.id, WatchStatus.STOPPED, actor=actor,
                                                                 result=f"stopped by {actor}"):
            return None
        task = self._tasks.pop(env, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        minutes = round((self.clock() - watch.started_at).total_seconds() / 60, 1)
        if watch.channel:
            await self._say(watch, blocks.watch_stopped(env, actor, max(0.0, minutes)))
        return watch

    async def resume(self) -> int:
        """Resume this instance's running watches (and dead replicas'); returns how many."""
        watches = await self.rt.state.resumable_watches()
        for watch in watches:
            progress = (WatchProgress.model_validate_json(watch.progress_json) if watch.progress_json
                        else WatchProgress())
            if watch.channel:
                await self._say(watch, blocks.watch_resumed(watch.environment,
                                                            f"{watch.ends_at:%Y-%m-%d %H:%M} UTC"))
            self._spawn(watch, progress)
        return len(watches)

    async def close(self) -> None:
        """Cancel every loop (rows stay ``running``: resumed at the next start)."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait until no watch loop runs here (tests)."""
        async with asyncio.timeout(timeout_s):
            while self._tasks:
                await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    # -- the loop ----------------------------------------------------------------------
    def _spawn(self, watch: WatchRecord, progress: WatchProgress) -> None:
        task = asyncio.create_task(self._loop(watch, progress), name=f"watch-{watch.environment}")
        self._tasks[watch.environment] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._tasks.get(watch.environment) is t:
                del self._tasks[watch.environment]

        task.add_done_callback(done)

    async def _loop(self, watch: WatchRecord, progress: WatchProgress) -> None:
        state = self.rt.state

        async def save(p: WatchProgress) -> bool:
            return await state.save_watch_progress(watch.id, p.polls, p.model_dump_json())

        try:
            outcome = await run_watch(watch.environment, ends_at=watch.ends_at, started_at=watch.started_at,
                                      interval_s=watch.interval_s, limits=self.rt.settings.watch,
                                      probe=self.probe, save=save, clock=self.clock, sleep=self.sleep,
                                      progress=progress)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # this loop runs unattended: the reason goes to its thread and the log
            log.exception("watch of %s failed", watch.environment)
            reason = str(exc) if isinstance(exc, BotError) else type(exc).__name__
            if await state.finish_watch(watch.id, WatchStatus.FAILED, result=reason):
                await self._say(watch, blocks.watch_failed(watch.environment, reason))
            return
        await self._finish(watch, outcome)

    async def _finish(self, watch: WatchRecord, outcome: WatchOutcome) -> None:
        state, env = self.rt.state, watch.environment
        if outcome.verdict == WatchVerdict.STOPPED:
            return
        if outcome.verdict == WatchVerdict.HEALTHY:
            line = summary_line(outcome.minutes, outcome.progress)
            if await state.finish_watch(watch.id, WatchStatus.HEALTHY, result=line):
                await self._say(watch, blocks.watch_healthy(env, line))
            return
        reasons = outcome.progress.reasons
        if not await state.finish_watch(watch.id, WatchStatus.DEGRADED, result="; ".join(reasons)):
            return
        await self._say(watch, blocks.watch_degraded(env, outcome.minutes, reasons))
        if not watch.channel or not watch.thread_ts:
            return
        channel, thread = watch.channel, watch.thread_ts
        incident_id: str | None = None
        current = await state.open_incident(env)
        if current is None:
            incident = await state.create_incident(env, channel, thread, "watch")
            if await state.claim_open_incident(env, incident.id, channel, thread, "watch"):
                incident_id = incident.id
        else:
            incident_id = current.incident_id
        await start_incident_diagnosis(self.rt, env, channel, thread, "watch", incident_id=incident_id)

    async def _say(self, watch: WatchRecord, msg: blocks.Message) -> None:
        if not watch.channel:
            return
        try:
            await self.rt.out.post(watch.channel, msg, thread_ts=watch.thread_ts)
        except SlackError as exc:
            log.warning("watch message for %s not posted: %s", watch.environment, exc)
