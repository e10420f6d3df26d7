"""State of the deploy/alert triggers and the post-deploy watch (mixed into ``StateStore``).

* ``qcc_deliveries``: webhook delivery ids seen (replay protection, one INSERT decides).
* ``qcc_open_incidents``: the one open automatic incident per environment (primary key).
* ``qcc_watches``: post-deploy watches; ``active_key`` (the environment while running, unique)
  allows one running watch per environment; the owner heartbeats it on every poll, so a
  restarted owner resumes its watches and any replica can take over a dead owner's.

Every change is one conditional statement whose rowcount (or unique key) decides the winner.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.errors import UserError
from bot.state import models as m
from bot.state.models import WatchStatus
from bot.state.records import naive, row_dict


class WatchAlreadyRunning(UserError):
    """A watch is already running for the environment (``watch`` is it)."""

    def __init__(self, message: str, watch: WatchRecord) -> None:
        self.watch = watch
        super().__init__(message)


class OpenIncident(BaseModel):
    """The open automatic incident of an environment (its Slack thread)."""

    environment: str
    incident_id: str
    channel: str
    thread_ts: str | None = None
    opened_by: str
    opened_at: datetime


class WatchRecord(BaseModel):
    """A post-deploy watch as stored (``progress_json``: :class:`bot.watch.WatchProgress`)."""

    id: str
    environment: str
    status: WatchStatus
    owner: str
    started_by: str
    started_at: datetime
    ends_at: datetime
    interval_s: float
    channel: str | None = None
    thread_ts: str | None = None
    origin: str | None = None
    polls: int = 0
    progress_json: str | None = None
    finished_at: datetime | None = None
    result: str | None = None


def _watch(row: Any) -> WatchRecord:
    d = row_dict(row)
    d.pop("active_key", None)
    d.pop("heartbeat_at", None)
    return WatchRecord(**d)


class TriggerStateMixin:
    """Deliveries, open incidents and watches; needs ``engine``, ``owner``, ``lease_s``,
    ``clock``, ``_now`` and ``_audit`` from :class:`bot.state.store.StateStore`."""

    owner: str
    lease_s: float

    @property
    def engine(self) -> AsyncEngine:  # pragma: no cover - provided by StateStore
        raise NotImplementedError

    def _now(self) -> datetime:  # pragma: no cover - provided by StateStore
        raise NotImplementedError

    async def _audit(self, conn: AsyncConnection, actor: str, event_name: str, *, environment: str | None,
                     subject: str | None, result: str | None = None,
                     detail: str | None = None) -> None:  # pragma: no cover - provided by StateStore
        raise NotImplementedError

    # -- deliveries --------------------------------------------------------------------
    async def record_delivery(self, source: str, delivery_id: str, environment: str | None, *,
                              retention_days: int = 14) -> bool:
        """Remember a webhook delivery; False when it was seen before (a replay).

        Deliveries older than ``retention_days`` are forgotten on the way.
        """
        now = self._now()
        key = f"{source}:{delivery_id}"[:160]
        try:
            async with self.engine.begin() as conn:
                await conn.execute(delete(m.deliveries).where(
                    m.deliveries.c.received_at < now - timedelta(days=retention_days)))
                await conn.execute(insert(m.deliveries).values(id=key, source=source, environment=environment,
                                                               received_at=now))
        except IntegrityError:
            return False
        return True

    async def count_deliveries(self) -> int:
        async with self.engine.connect() as conn:
            return len((await conn.execute(select(m.deliveries.c.id))).all())

    # -- open incidents ----------------------------------------------------------------
    async def open_incident(self, environment: str) -> OpenIncident | None:
        """The environment's open automatic incident, if any."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(m.open_incidents).where(
                m.open_incidents.c.environment == environment))).first()
        return OpenIncident(**row_dict(row)) if row is not None else None

    async def claim_open_incident(self, environment: str, incident_id: str, channel: str, thread_ts: str | None,
                                  opened_by: str) -> bool:
        """Make ``incident_id`` the environment's open incident; False when another one is open."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(m.open_incidents).values(
                    environment=environment, incident_id=incident_id, channel=channel, thread_ts=thread_ts,
                    opened_by=opened_by[:64], opened_at=self._now()))
        except IntegrityError:
            return False
        return True

    async def close_open_incident(self, environment: str, *, actor: str, reason: str) -> OpenIncident | None:
        """Close the environment's open incident (audited); returns it, or None when none was open."""
        current = await self.open_incident(environment)
        if current is None:
            return None
        async with self.engine.begin() as conn:
            res = await conn.execute(delete(m.open_incidents).where(and_(
                m.open_incidents.c.environment == environment,
                m.open_incidents.c.incident_id == current.incident_id)))
            if res.rowcount != 1:
                return None
            await self._audit(conn, actor, "incident_closed", environment=environment,
                              subject=current.incident_id, detail=reason[:400])
        return current

    # -- watches -----------------------------------------------------------------------
    async def start_watch(self, environment: str, *, started_by: str, minutes: float, interval_s: float,
                          channel: str | None, thread_ts: str | None, origin: str | None,
                          watch_id: str | None = None) -> WatchRecord:
        """Record a ``running`` watch owned by this instance, ending ``minutes`` from now.

        Raises :class:`WatchAlreadyRunning` when the environment already has one.
        """
        from bot.state.store import new_id

        now = self._now()
        new = watch_id or new_id()
        values: dict[str, Any] = {"id": new, "environment": environment, "status": WatchStatus.RUNNING.value,
                  "active_key": environment, "owner": self.owner, "heartbeat_at": now,
                  "started_by": started_by[:64], "started_at": now, "ends_at": now + timedelta(minutes=minutes),
                  "interval_s": interval_s, "channel": channel, "thread_ts": thread_ts,
                  "origin": (origin or "")[:200] or None, "polls": 0}
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(m.watches).values(**values))
                await self._audit(conn, started_by, "watch_started", environment=environment,
                                  subject=new, detail=f"{minutes:g} min; {origin or ''}"[:400])
        except IntegrityError:
            current = await self.active_watch(environment)
            if current is None:  # it ended in between: try once more
                return await self.start_watch(environment, started_by=started_by, minutes=minutes,
                                              interval_s=interval_s, channel=channel, thread_ts=thread_ts,
                                              origin=origin)
            raise WatchAlreadyRunning(f"a watch of {environment} is already running (until "
                                      f"{current.ends_at:%H:%M} UTC)", current) from None
        return await self.get_watch(new)

    async def get_watch(self, watch_id: str) -> WatchRecord:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(m.watches).where(m.watches.c.id == watch_id))).one()
        return _watch(row)

    async def active_watch(self, environment: str) -> WatchRecord | None:
        """The environment's running watch, if any."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(m.watches).where(m.watches.c.active_key == environment))).first()
        return _watch(row) if row is not None else None

    async def set_watch_thread(self, watch_id: str, channel: str, thread_ts: str | None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(m.watches).where(m.watches.c.id == watch_id)
                               .values(channel=channel, thread_ts=thread_ts))

    async def save_watch_progress(self, watch_id: str, polls: int, progress_json: str) -> bool:
        """Store a poll's progress and heartbeat the watch; False when it is no longer running
        here (stopped, or taken over)."""
        async with self.engine.begin() as conn:
            res = await conn.execute(update(m.watches).where(and_(
                m.watches.c.id == watch_id, m.watches.c.status == WatchStatus.RUNNING.value,
                m.watches.c.owner == self.owner)).values(polls=polls, progress_json=progress_json,
                                                         heartbeat_at=self._now()))
        return res.rowcount == 1

    async def finish_watch(self, watch_id: str, status: WatchStatus, *, actor: str = "bot",
                           result: str | None = None) -> bool:
        """Move a running watch to ``status`` (audited); False when it was no longer running."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(m.watches.c.environment).where(m.watches.c.id == watch_id))).first()
            res = await conn.execute(update(m.watches).where(and_(
                m.watches.c.id == watch_id, m.watches.c.status == WatchStatus.RUNNING.value))
                .values(status=status.value, active_key=None, finished_at=self._now(),
                        result=(result or "")[:4000] or None))
            if res.rowcount != 1:
                return False
            await self._audit(conn, actor, f"watch_{status.value}", environment=row.environment if row else None,
                              subject=watch_id, result=status.value, detail=(result or "")[:400] or None)
        return True

    async def resumable_watches(self) -> list[WatchRecord]:
        """Running watches to resume here: this instance's own (a restart), and those of owners
        whose heartbeat is older than ``lease_s`` (taken over: the owner becomes this instance)."""
        stale = self._now() - timedelta(seconds=self.lease_s)
        async with self.engine.begin() as conn:
            rows = (await conn.execute(select(m.watches).where(and_(
                m.watches.c.status == WatchStatus.RUNNING.value,
                or_(m.watches.c.owner == self.owner, m.watches.c.heartbeat_at < naive(stale)))))).all()
            mine = []
            for row in rows:
                res = await conn.execute(update(m.watches).where(and_(
                    m.watches.c.id == row.id, m.watches.c.owner == row.owner,
                    m.watches.c.status == WatchStatus.RUNNING.value))
                    .values(owner=self.owner, heartbeat_at=self._now()))
                if res.rowcount == 1:
                    mine.append(row.id)
        return [await self.get_watch(i) for i in mine]
