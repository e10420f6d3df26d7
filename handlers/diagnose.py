"""``/qcc diagnose``: parent message, one live progress message in the thread, then the report.

Runs in the background task registry after ``ack()``. The use case itself (incident, run,
steps, diagnosis, bundle, one proposal per runnable fix, audit rows) is
:meth:`bot.incidents.IncidentService.diagnose`, shared with the CLI; this module only posts.
The progress message is updated as steps start and finish (queued → running →
ok/failed/timeout with duration); updates are coalesced so at most one ``chat.update`` is in
flight and they are spaced by ``Runtime.progress_interval_s``. Everything is stored before
the report (whose Fix buttons carry the proposal ids) is posted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.errors import BotError, SlackError
from bot.incidents import Origin, OriginKind, RecordedDiagnosis
from bot.models import StepEvent, StepPhase
from handlers import blocks
from handlers.parsing import SlashRequest
from handlers.runtime import Runtime

log = logging.getLogger("qcc.slack")


class ProgressTracker:
    """The state of every runbook step for the progress message."""

    def __init__(self, steps: list[tuple[str, str]]) -> None:
        self.rows: dict[str, list] = {sid: [sid, title, "queued", None, None] for sid, title in steps}

    def record(self, event: StepEvent) -> None:
        row = self.rows.setdefault(event.step_id, [event.step_id, event.title, "queued", None, None])
        if event.result is None:
            row[2] = event.phase.value
        else:
            step = event.result
            row[2], row[3], row[4] = step.status.value, step.duration_s, step.error

    def view(self) -> list[tuple[str, str, str, float | None, str | None]]:
        return [tuple(r) for r in self.rows.values()]


class Coalescer:
    """Runs ``fn`` after pokes, never two at once; pokes during a run cause one more run."""

    def __init__(self, fn: Callable[[], Awaitable[None]], interval_s: float) -> None:
        self.fn = fn
        self.interval_s = interval_s
        self.dirty = False
        self.task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self.dirty = True
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while self.dirty:
            self.dirty = False
            try:
                await self.fn()
            except SlackError as exc:  # a missed progress update must not break the diagnosis
                log.warning("progress update failed: %s", exc)
            if self.dirty:
                await asyncio.sleep(self.interval_s)

    async def close(self) -> None:
        """Wait for an update in flight; the caller posts the final state itself."""
        self.dirty = False
        if self.task is not None:
            await self.task


async def run_diagnosis(rt: Runtime, req: SlashRequest, env: str) -> None:
    """The whole diagnose flow for ``env`` requested by ``req.user`` in ``req.channel``."""
    out = rt.out
    parent_ts = await out.post(req.channel, blocks.diagnose_started(env, req.user))
    try:
        recorded = await diagnose_in_thread(rt, env, req.channel, parent_ts, req.user,
                                            Origin(kind=OriginKind.SLACK, channel=req.channel, thread_ts=parent_ts))
    except BotError as exc:
        await _cosmetic("parent message", out.update(req.channel, parent_ts, blocks.diagnose_failed(env, str(exc))))
        raise
    diagnosis = recorded.diagnosis
    top = diagnosis.top_cause
    await _cosmetic("parent message", out.update(req.channel, parent_ts, blocks.diagnose_finished(
        env, req.user, top.title if top else None, top.confidence if top else None, diagnosis.duration_s)))


async def diagnose_in_thread(rt: Runtime, env: str, channel: str, thread_ts: str, actor: str,
                             origin: Origin) -> RecordedDiagnosis:
    """Diagnose ``env`` through :class:`bot.incidents.IncidentService` and post its live progress
    message and then its report (with one Fix button per proposal) in the thread ``thread_ts``.

    THE one Slack diagnose flow: ``/qcc diagnose``, the deploy/alert triggers and the watch use it.
    Returns what the service recorded. Raises what the diagnosis raises (the run is then marked
    failed or interrupted by the service) and :class:`SlackError` when the report cannot be posted.
    """
    out = rt.out
    tracker = ProgressTracker([(s.id, s.title) for s in rt.services.runbook.steps])
    progress_ts = await out.post(channel, blocks.progress(env, tracker.view()), thread_ts=thread_ts)

    async def push() -> None:
        await out.update(channel, progress_ts, blocks.progress(env, tracker.view()))

    updates = Coalescer(push, rt.progress_interval_s)

    async def on_progress(event: StepEvent) -> None:
        tracker.record(event)
        updates.poke()

    try:
        recorded = await rt.incidents.diagnose(env, actor=actor, origin=origin, on_progress=on_progress)
    finally:
        await updates.close()
    diagnosis = recorded.diagnosis
    for step in diagnosis.steps:
        if step.id in tracker.rows:  # parts of a multi-part step are shown by their step's row
            tracker.record(StepEvent(step_id=step.id, title=step.title, phase=StepPhase.FINISHED, result=step))
    await _cosmetic("progress message", out.update(channel, progress_ts,
                                                   blocks.progress(env, tracker.view(), done=True)))
    try:
        await out.post(channel, blocks.report(diagnosis, recorded.fixes, run_id=recorded.run_id), thread_ts=thread_ts)
    except SlackError as exc:
        raise SlackError(f"the report of diagnosis {recorded.run_id} ({env}) could not be posted: {exc}",
                         host=exc.host, detail=exc.detail) from exc
    return recorded


async def _cosmetic(what: str, call: Awaitable[None]) -> None:
    """A Slack update that must not stop the flow (the report is what matters): logged if it fails."""
    try:
        await call
    except SlackError as exc:
        log.warning("%s not updated: %s", what, exc)
