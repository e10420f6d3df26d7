"""What a verified deploy/alert event does in Slack: one open incident per environment.

* A failed deploy or a firing alert with no open incident posts a parent message in the
  environment's ``slack.incident_channel``, opens the incident (``qcc_open_incidents``) and
  runs a diagnosis into its thread (:func:`start_incident_diagnosis`).
* The same kind of event while the incident is open is added to its thread (no new incident,
  no second diagnosis).
* A resolved alert or a green deploy says so in the open incident's thread and closes the
  incident; a green deploy then starts the post-deploy watch (:mod:`handlers.watching`).

Events of one environment are handled one at a time (a lock per environment; across
replicas the primary key of ``qcc_open_incidents`` keeps one open incident).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bot.errors import BotError
from bot.incidents import Origin, OriginKind
from bot.triggers import TriggerEvent, TriggerKind
from handlers import blocks
from handlers.diagnose import diagnose_in_thread
from handlers.errors import Target, reporter
from handlers.runtime import Runtime

if TYPE_CHECKING:
    from handlers.watching import Watcher

log = logging.getLogger("qcc.triggers")


async def start_incident_diagnosis(rt: Runtime, env: str, channel: str, thread_ts: str, actor: str, *,
                                   incident_id: str | None = None) -> str:
    """Run a diagnosis of ``env`` for an event (``actor`` ``trigger:…`` or ``watch``) and post its
    progress and report in the thread ``thread_ts`` of incident ``incident_id``; returns the run id.

    The same flow as ``/qcc diagnose`` (:func:`handlers.diagnose.diagnose_in_thread`).
    """
    origin = Origin(kind=OriginKind.TRIGGER, channel=channel, thread_ts=thread_ts, incident_id=incident_id)
    recorded = await diagnose_in_thread(rt, env, channel, thread_ts, actor, origin)
    return recorded.run_id


def incident_channel(rt: Runtime, env: str) -> str | None:
    """The environment's ``slack.incident_channel`` (None: automatic incidents are not posted)."""
    return rt.settings.environment(env).slack.incident_channel


class IncidentTriggers:
    """Turns :class:`TriggerEvent` values into incidents, thread notes and watches."""

    def __init__(self, rt: Runtime, watcher: Watcher | None = None) -> None:
        self.rt = rt
        self.watcher = watcher
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, env: str) -> asyncio.Lock:
        return self._locks.setdefault(env, asyncio.Lock())

    async def handle(self, event: TriggerEvent) -> str:
        """Act on one event; returns what was done: ``opened``, ``added``, ``closed``, ``watching``
        or ``ignored`` (a resolution with no open incident and no watch to start)."""
        async with self._lock(event.environment):
            if event.kind.opens:
                return await self._open_or_add(event)
            return await self._resolve(event)

    async def _open_or_add(self, event: TriggerEvent) -> str:
        rt, env = self.rt, event.environment
        current = await rt.state.open_incident(env)
        if current is not None:
            await rt.out.post(current.channel, blocks.trigger_note(event), thread_ts=current.thread_ts)
            await rt.state.audit(event.actor, "trigger_added", environment=env, subject=current.incident_id,
                                 detail=event.title)
            return "added"
        channel = incident_channel(rt, env)
        if channel is None:  # the endpoint refuses these; kept for direct callers
            raise BotError(f"environment {env} has no slack.incident_channel")
        parent = await rt.out.post(channel, blocks.trigger_opened(event))
        incident = await rt.state.create_incident(env, channel, parent, event.actor)
        if not await rt.state.claim_open_incident(env, incident.id, channel, parent, event.actor):
            # another replica opened one in between: point there and stop
            other = await rt.state.open_incident(env)
            if other is not None:
                await rt.out.post(other.channel, blocks.trigger_note(event), thread_ts=other.thread_ts)
            return "added"
        await rt.state.audit(event.actor, f"trigger_{event.kind.value}", environment=env, subject=incident.id,
                             detail=event.title)
        self.diagnose(env, channel, parent, event.actor, incident_id=incident.id)
        return "opened"

    def diagnose(self, env: str, channel: str, thread_ts: str, actor: str, *, incident_id: str | None) -> None:
        """Start :func:`start_incident_diagnosis` in the background task registry."""
        self.rt.tasks.spawn(start_incident_diagnosis(self.rt, env, channel, thread_ts, actor,
                                                     incident_id=incident_id),
                            name=f"trigger-diagnose-{env}",
                            on_error=reporter(self.rt, Target(channel=channel, thread_ts=thread_ts, in_thread=True)))

    async def _resolve(self, event: TriggerEvent) -> str:
        rt, env = self.rt, event.environment
        closed = await rt.state.close_open_incident(env, actor=event.actor, reason=event.title)
        done = "ignored"
        if closed is not None:
            await rt.out.post(closed.channel, blocks.trigger_note(event, closed=True), thread_ts=closed.thread_ts)
            done = "closed"
        if event.kind == TriggerKind.DEPLOY_SUCCEEDED and self.watcher is not None \
                and rt.settings.watch.after_green_deploy:
            channel = closed.channel if closed is not None else incident_channel(rt, env)
            if channel is not None and await rt.state.active_watch(env) is not None:
                log.info("green deploy of %s while a watch runs: the running watch goes on", env)
            elif channel is not None:
                thread = closed.thread_ts if closed is not None else None
                if thread is None:
                    thread = await rt.out.post(channel, blocks.deploy_succeeded(event,
                                                                                rt.settings.watch.window_min))
                started = await self.watcher.start(env, actor=event.actor, channel=channel, thread_ts=thread,
                                                   origin=f"after {event.title}", quiet_if_running=True)
                if started is not None:
                    done = "watching"
        elif closed is None:
            log.info("%s for %s with no open incident: nothing to note", event.kind.value, env)
        return done
