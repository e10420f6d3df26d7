"""The state store: incidents, runs, step results, proposals, approvals and the audit log.

``StateStore(url)`` works with any SQLAlchemy async URL: a SQLite file by default
(``sqlite+aiosqlite:///qcc-state.db``), MySQL/MariaDB (``mysql+aiomysql://...``) to share
state between replicas. ``open()`` creates missing tables; ``aclose()`` disposes the pool.

Every approval transition is ONE conditional ``UPDATE ... WHERE id=:id AND status=:from``
whose rowcount decides the winner, with its audit row written in the same transaction, so
any number of concurrent clicks, retried requests or replicas move an approval once.
Runs carry an ``owner`` (this bot instance) and a heartbeat; :meth:`recover_interrupted`
marks runs a dead instance left ``running`` as ``interrupted`` (it never re-runs them): at
start-up (this owner's leftovers too) and periodically on every replica (other owners whose
heartbeat is older than ``lease_s``).

An optional :class:`StoreObserver` hears about each finished run and each approval decision
once, after its transaction committed (the Slack layer counts them as metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, event, exists, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from bot.errors import (
    ApprovalAlreadyHandled,
    ApprovalError,
    ApprovalExpired,
    ConfigError,
    StateUnavailable,
)
from bot.models import Action, StepResult
from bot.state import models as m
from bot.state.models import APPROVAL_TRANSITIONS, ApprovalStatus, RunKind, RunStatus
from bot.state.records import (
    Approval,
    AuditEntry,
    Incident,
    Interrupted,
    Proposal,
    RunRecord,
    StepRow,
    naive,
    row_dict,
    steps_rows,
)
from bot.state.triggerstore import TriggerStateMixin

Clock = Callable[[], datetime]


class StoreObserver(Protocol):
    """Told about state changes after they are committed (exactly once each)."""

    def run_finished(self, kind: str, status: str, duration_s: float) -> None:
        """A run left ``running`` (``status``: succeeded | failed | interrupted)."""

    def approval_decided(self, decision: str, latency_s: float) -> None:
        """A pending approval was decided (approved | rejected | expired) ``latency_s`` after its request."""


DECISIONS = (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED)


def new_id() -> str:
    """An opaque, unguessable id (22 URL-safe characters)."""
    return secrets.token_urlsafe(16)


def _engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        memory = url.rstrip("/").endswith(":memory:") or url.endswith(":///")
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 30}}
        if memory:
            kwargs["poolclass"] = StaticPool
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - driver hook
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_recycle=3600)


class StateStore(TriggerStateMixin):
    """Async access to the bot's state. ``owner`` names this bot instance (default: host name)."""

    def __init__(self, url: str, *, owner: str | None = None, clock: Clock | None = None,
                 lease_s: float = 90.0, observer: StoreObserver | None = None) -> None:
        self.url = url
        self.owner = owner or socket.gethostname()
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.lease_s = lease_s
        self.observer = observer
        self._engine: AsyncEngine | None = None

    # -- lifecycle ---------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and create missing tables. Raises :class:`ConfigError` for a bad URL/database."""
        try:
            self._engine = _engine(self.url)
            for attempt in range(3):
                try:
                    async with self._engine.begin() as conn:
                        await conn.run_sync(m.metadata.create_all)
                    break
                except OperationalError:  # replicas starting together: "table already exists"
                    if attempt == 2:
                        raise
                    await asyncio.sleep(0.2 * (attempt + 1))
        except (SQLAlchemyError, OSError, ValueError) as exc:
            if self._engine is not None:
                await self._engine.dispose()
                self._engine = None
            raise ConfigError(f"cannot open the state store: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        """Dispose the pool. A cancellation that lands meanwhile (Ctrl-C while the bot is
        closing) waits for the connections to close (milliseconds) and is then re-raised: a
        pool cut mid-close logs a traceback and may leave the SQLite file locked."""
        if self._engine is None:
            return
        engine, self._engine = self._engine, None
        closing = asyncio.ensure_future(engine.dispose())
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            await closing
            raise

    async def check(self, timeout_s: float = 3.0) -> str | None:
        """None when the database answers a query within ``timeout_s``, else a short reason."""
        try:
            async with asyncio.timeout(timeout_s), self.engine.connect() as conn:
                await conn.execute(select(m.runs.c.id).limit(1))
        except TimeoutError:
            return f"the state database did not answer within {timeout_s:g}s"
        except (SQLAlchemyError, OSError) as exc:
            return f"the state database is unreachable ({type(exc).__name__})"
        return None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("StateStore.open() was not awaited")
        return self._engine

    def _now(self) -> datetime:
        return naive(self.clock())

    # -- audit -------------------------------------------------------------------------
    async def _audit(self, conn: AsyncConnection, actor: str, event_name: str, *, environment: str | None,
                     subject: str | None, result: str | None = None, detail: str | None = None) -> None:
        await conn.execute(insert(m.audit_log).values(
            at=self._now(), actor=actor[:64], event=event_name[:64], environment=environment,
            subject=subject, result=result and result[:32], detail=detail and detail[:4000]))

    async def audit(self, actor: str, event_name: str, *, environment: str | None = None,
                    subject: str | None = None, result: str | None = None, detail: str | None = None) -> None:
        """Append one audit row (the log is append-only: there is no update or delete)."""
        async with self.engine.begin() as conn:
            await self._audit(conn, actor, event_name, environment=environment, subject=subject,
                              result=result, detail=detail)

    async def list_audit(self, limit: int = 10, *, environment: str | None = None) -> list[AuditEntry]:
        """The latest ``limit`` (1..200) audit rows, newest first."""
        q = select(m.audit_log).order_by(m.audit_log.c.id.desc()).limit(max(1, min(limit, 200)))
        if environment:
            q = q.where(m.audit_log.c.environment == environment)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [AuditEntry(**row_dict(r)) for r in rows]

    # -- incidents and runs ------------------------------------------------------------
    async def create_incident(self, environment: str, channel: str, thread_ts: str | None,
                              created_by: str) -> Incident:
        incident_id = new_id()
        values = {"id": incident_id, "environment": environment, "channel": channel, "thread_ts": thread_ts,
                  "created_by": created_by, "created_at": self._now()}
        async with self.engine.begin() as conn:
            await conn.execute(insert(m.incidents).values(**values))
            await self._audit(conn, created_by, "incident_opened", environment=environment,
                              subject=incident_id)
        return Incident(**{**values, "created_at": self.clock()})

    async def start_run(self, kind: RunKind, environment: str, *, actor: str, incident_id: str | None = None,
                        channel: str | None = None, thread_ts: str | None = None,
                        run_id: str | None = None) -> RunRecord:
        """Record a run as ``running`` owned by this instance (``run_id`` default: a new id)."""
        now = self._now()
        run_id = run_id or new_id()
        values = {"id": run_id, "incident_id": incident_id, "kind": kind.value,
                  "environment": environment,
                  "status": RunStatus.RUNNING.value, "owner": self.owner, "heartbeat_at": now,
                  "started_at": now, "channel": channel, "thread_ts": thread_ts}
        async with self.engine.begin() as conn:
            await conn.execute(insert(m.runs).values(**values))
            await self._audit(conn, actor, f"{kind.value}_started", environment=environment,
                              subject=run_id)
        return await self.get_run(run_id)

    async def finish_run(self, run_id: str, status: RunStatus, *, actor: str, summary: str | None = None,
                         diagnosis_json: str | None = None, bundle_json: str | None = None) -> bool:
        """Move a ``running`` run to ``status``; False when it was no longer running (interrupted)."""
        values: dict[str, Any] = {"status": status.value, "finished_at": self._now(), "summary": summary}
        if diagnosis_json is not None:
            values["diagnosis_json"] = diagnosis_json
        if bundle_json is not None:
            values["bundle_json"] = bundle_json
        async with self.engine.begin() as conn:
            res = await conn.execute(update(m.runs).where(
                and_(m.runs.c.id == run_id, m.runs.c.status == RunStatus.RUNNING.value)).values(**values))
            if res.rowcount != 1:
                return False
            run = (await conn.execute(select(m.runs.c.kind, m.runs.c.environment, m.runs.c.started_at)
                                      .where(m.runs.c.id == run_id))).one()
            await self._audit(conn, actor, f"{run.kind}_finished", environment=run.environment,
                              subject=run_id,
                              result=status.value, detail=summary)
        self._run_finished(run.kind, status.value, run.started_at, values["finished_at"])
        return True

    def _run_finished(self, kind: str, status: str, started_at: datetime, finished_at: datetime) -> None:
        if self.observer is not None:
            self.observer.run_finished(kind, status, max(0.0, (finished_at - started_at).total_seconds()))

    async def save_steps(self, run_id: str, phase: str, steps: list[StepResult]) -> None:
        if not steps:
            return
        async with self.engine.begin() as conn:
            await conn.execute(insert(m.step_results), steps_rows(run_id, phase, steps))

    async def list_steps(self, run_id: str, phase: str | None = None) -> list[StepRow]:
        q = select(m.step_results).where(m.step_results.c.run_id == run_id).order_by(m.step_results.c.id)
        if phase:
            q = q.where(m.step_results.c.phase == phase)
        async with self.engine.connect() as conn:
            return [StepRow(**row_dict(r)) for r in (await conn.execute(q)).all()]

    async def get_run(self, run_id: str) -> RunRecord:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(m.runs).where(m.runs.c.id == run_id))).first()
        if row is None:
            raise ApprovalError(f"unknown run {run_id[:24]!r}")
        return RunRecord(**row_dict(row))

    async def latest_diagnosis(self, environment: str) -> RunRecord | None:
        """The newest finished diagnosis run of ``environment`` that stored a diagnosis."""
        q = (select(m.runs).where(and_(m.runs.c.environment == environment,
                                       m.runs.c.kind == RunKind.DIAGNOSIS.value,
                                       m.runs.c.diagnosis_json.is_not(None)))
             .order_by(m.runs.c.started_at.desc()).limit(1))
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).first()
        return RunRecord(**row_dict(row)) if row is not None else None

    async def heartbeat(self) -> int:
        """Refresh the heartbeat of this instance's running runs; returns how many."""
        async with self.engine.begin() as conn:
            res = await conn.execute(update(m.runs).where(and_(
                m.runs.c.owner == self.owner, m.runs.c.status == RunStatus.RUNNING.value))
                .values(heartbeat_at=self._now()))
        return int(res.rowcount or 0)

    @contextlib.asynccontextmanager
    async def _available(self, limit: float) -> AsyncIterator[None]:
        """Database failures and a wait past ``limit`` seconds become :class:`StateUnavailable`."""
        try:
            async with asyncio.timeout(limit):
                yield
        except TimeoutError:
            raise StateUnavailable(f"the state database did not answer within {limit:g}s",
                                   detail="timeout") from None
        except (SQLAlchemyError, OSError) as exc:
            raise StateUnavailable(f"the state database failed ({type(exc).__name__})",
                                   detail=type(exc).__name__) from exc

    async def upkeep(self, timeout_s: float | None = None) -> list[Interrupted]:
        """The periodic duty of every replica: refresh this instance's heartbeat, then mark the
        runs of owners whose lease expired ``interrupted`` (returned, to be announced).

        Raises :class:`StateUnavailable` when the database fails or takes longer than
        ``timeout_s`` (default: a third of the lease).
        """
        async with self._available(timeout_s if timeout_s is not None else max(1.0, self.lease_s / 3)):
            await self.heartbeat()
            return await self.recover_interrupted(include_own=False)

    async def closing_sweep(self, since: datetime, timeout_s: float = 10.0) -> list[Interrupted]:
        """At shutdown, after the remaining work was cancelled: this instance's runs that ended
        ``interrupted`` since ``since`` plus any it still has ``running`` (now marked), to be
        announced. Raises :class:`StateUnavailable`."""
        async with self._available(timeout_s):
            return await self.interrupted_since(since) + await self.recover_interrupted()

    async def recover_interrupted(self, *, include_own: bool = True) -> list[Interrupted]:
        """Mark runs (and their approvals) left ``running`` by a dead instance (heartbeat older
        than ``lease_s``) and, with ``include_own`` (start-up), by this instance, as
        ``interrupted``. Each item is returned by exactly one caller, even with several
        replicas recovering at once. Nothing is re-run.

        Approvals ``approved`` (or ``running``) whose fix run never started are included when
        decided more than ``lease_s`` ago (or, with ``include_own``, owned by this instance).
        """
        now = self._now()
        stale = now - timedelta(seconds=self.lease_s)
        dead_runs = m.runs.c.heartbeat_at < stale
        dead_approvals = m.approvals.c.decided_at < stale
        if include_own:
            dead_runs = or_(m.runs.c.owner == self.owner, dead_runs)
            dead_approvals = or_(m.approvals.c.owner == self.owner, dead_approvals)
        out: list[Interrupted] = []
        async with self.engine.connect() as conn:
            candidates = (await conn.execute(select(m.runs).where(and_(
                m.runs.c.status == RunStatus.RUNNING.value, dead_runs)))).all()
            open_approvals = (await conn.execute(select(m.approvals).where(and_(
                m.approvals.c.status.in_([ApprovalStatus.APPROVED.value, ApprovalStatus.RUNNING.value]),
                dead_approvals)))).all()
        for run in candidates:
            async with self.engine.begin() as conn:
                res = await conn.execute(update(m.runs).where(and_(
                    m.runs.c.id == run.id, m.runs.c.status == RunStatus.RUNNING.value))
                    .values(status=RunStatus.INTERRUPTED.value, finished_at=now))
                if res.rowcount != 1:
                    continue
                await self._audit(conn, "bot", f"{run.kind}_interrupted", environment=run.environment,
                                  subject=run.id, result="interrupted", detail=f"owner {run.owner}")
                appr = (await conn.execute(select(m.approvals).where(
                    m.approvals.c.fix_run_id == run.id))).first()
                if appr is not None:
                    await self._move(conn, appr.id, ApprovalStatus.RUNNING, ApprovalStatus.INTERRUPTED, "bot",
                                     appr.environment, extra={"result": "interrupted by a restart"})
            self._run_finished(run.kind, RunStatus.INTERRUPTED.value, run.started_at, now)
            out.append(_interrupted(run, appr))
        for appr in open_approvals:  # approved (or running) but its fix run never started or is gone
            async with self.engine.begin() as conn:
                if appr.fix_run_id:
                    run_status = (await conn.execute(select(m.runs.c.status).where(
                        m.runs.c.id == appr.fix_run_id))).scalar()
                    if run_status is not None:
                        continue  # alive elsewhere, or already handled with its run above
                if await self._move(conn, appr.id, ApprovalStatus(appr.status), ApprovalStatus.INTERRUPTED,
                                    "bot",
                                    appr.environment, extra={"result": "interrupted before it ran"}):
                    out.append(Interrupted(kind="approval", environment=appr.environment, approval_id=appr.id,
                                           channel=appr.channel, thread_ts=appr.thread_ts,
                                           card_ts=appr.card_ts,
                                           action_title=Action.model_validate_json(appr.action_json).title))
        return out

    async def interrupted_since(self, since: datetime) -> list[Interrupted]:
        """This instance's runs that ended ``interrupted`` at or after ``since`` (e.g. the runs a
        shutdown cancelled), to be announced in their threads."""
        async with self.engine.connect() as conn:
            runs = (await conn.execute(select(m.runs).where(and_(
                m.runs.c.owner == self.owner, m.runs.c.status == RunStatus.INTERRUPTED.value,
                m.runs.c.finished_at >= naive(since))))).all()
            out = []
            for run in runs:
                appr = (await conn.execute(select(m.approvals).where(
                    m.approvals.c.fix_run_id == run.id))).first()
                out.append(_interrupted(run, appr))
        return out

    # -- proposals and approvals -------------------------------------------------------
    async def create_proposal(self, run_id: str, environment: str, action: Action) -> Proposal:
        values = {"id": new_id(), "run_id": run_id, "environment": environment,
                  "action_json": action.model_dump_json(), "created_at": self._now()}
        async with self.engine.begin() as conn:
            await conn.execute(insert(m.proposals).values(**values))
        return Proposal(id=values["id"], run_id=run_id, environment=environment, action=action,
                        created_at=self.clock())

    async def get_proposal(self, proposal_id: str) -> Proposal:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(m.proposals).where(m.proposals.c.id == proposal_id))).first()
        if row is None:
            raise ApprovalError("this fix is no longer known to the bot; run /qcc diagnose again")
        d = row_dict(row)
        return Proposal(action=Action.model_validate_json(d.pop("action_json")), **d)

    async def list_proposals(self, run_id: str) -> list[Proposal]:
        """The proposals a diagnosis run offered, in the order they were made."""
        q = select(m.proposals).where(m.proposals.c.run_id == run_id).order_by(m.proposals.c.created_at)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        out = []
        for row in rows:
            d = row_dict(row)
            out.append(Proposal(action=Action.model_validate_json(d.pop("action_json")), **d))
        return out

    async def proposal_done(self, proposal_id: str) -> Approval | None:
        """The approval whose fix ran to ``succeeded`` for this proposal, if any (the proposal is done)."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(m.approvals.c.id).where(and_(
                m.approvals.c.proposal_id == proposal_id,
                m.approvals.c.status == ApprovalStatus.SUCCEEDED.value)).limit(1))).first()
        return await self.get_approval(row.id) if row is not None else None

    async def request_approval(self, proposal_id: str, requested_by: str, *, expiry_s: float,
                               channel: str | None, thread_ts: str | None) -> Approval:
        """Open a ``pending`` approval for a proposal. Raises :class:`ApprovalAlreadyHandled`
        when one is already open for it (only one open approval per proposal, DB-enforced) or
        its fix already ran successfully (from Slack or a terminal)."""
        return await self._open_approval(proposal_id, requested_by, expiry_s=expiry_s, channel=channel,
                                         thread_ts=thread_ts, approved=False)

    async def approve_at_terminal(self, proposal_id: str, actor: str, *, expiry_s: float) -> Approval:
        """Open an approval for a proposal already ``approved`` by ``actor`` (a terminal user who
        typed the environment's name): ONE insert, with both audit rows
        (``approval_requested``, ``approval_approved``) in its transaction.

        It competes with Slack on the same terms: it fails with :class:`ApprovalAlreadyHandled`
        when an approval of the proposal is open (pending in a thread, approved or running) or
        its fix already succeeded; a Slack click after it finds the approval open or done.
        :meth:`bot.fixes.FixRunner.execute` then runs it (``approved -> running``).
        """
        return await self._open_approval(proposal_id, actor, expiry_s=expiry_s, channel=None, thread_ts=None,
                                         approved=True)

    async def _open_approval(self, proposal_id: str, actor: str, *, expiry_s: float, channel: str | None,
                             thread_ts: str | None, approved: bool) -> Approval:
        """Insert the approval only if no approval of the proposal succeeded (same statement),
        with the one-open-approval-per-proposal unique key (``active_key``) deciding races."""
        prop = await self.get_proposal(proposal_id)
        now = self._now()
        approval_id = new_id()
        status = ApprovalStatus.APPROVED if approved else ApprovalStatus.PENDING
        values: dict[str, Any] = {
            "id": approval_id, "proposal_id": prop.id, "run_id": prop.run_id, "environment": prop.environment,
            "action_json": prop.action.model_dump_json(), "status": status.value, "requested_by": actor,
            "created_at": now, "expires_at": now + timedelta(seconds=expiry_s), "channel": channel,
            "thread_ts": thread_ts, "active_key": prop.id}
        if approved:
            values.update(decided_by=actor, decided_at=now, owner=self.owner)
        cols = list(values)
        done = exists().where(and_(m.approvals.c.proposal_id == prop.id,
                                   m.approvals.c.status == ApprovalStatus.SUCCEEDED.value))
        source = select(*[literal(values[c], type_=m.approvals.c[c].type).label(c) for c in cols]).where(~done)
        try:
            async with self.engine.begin() as conn:
                res = await conn.execute(insert(m.approvals).from_select(cols, source))
                if res.rowcount == 1:
                    await self._audit(conn, actor, "approval_requested", environment=prop.environment,
                                      subject=approval_id, result="pending", detail=prop.action.id)
                    if approved:
                        await self._audit(conn, actor, "approval_approved", environment=prop.environment,
                                          subject=approval_id, result="approved", detail="typed confirmation")
        except IntegrityError:
            async with self.engine.connect() as conn:
                row = (await conn.execute(select(m.approvals).where(
                    m.approvals.c.active_key == prop.id))).first()
            who = (row.decided_by or row.requested_by) if row is not None else None
            if row is None:
                where = "elsewhere"
            else:  # an approval without a Slack thread was opened by `qcc-bot fix`
                where = f"in a Slack thread ({row.status})" if row.channel else f"from a terminal ({row.status}, {who})"
            raise ApprovalAlreadyHandled(f"an approval for this fix is already open {where}",
                                         handled_by=who) from None
        if res.rowcount != 1:
            prior = await self.proposal_done(prop.id)
            how = f" (approved by {prior.decided_by} from a terminal)" if prior and not prior.channel else ""
            raise ApprovalAlreadyHandled(f"already handled: this fix already ran and succeeded{how}",
                                         handled_by=prior.decided_by if prior else None)
        approval = await self.get_approval(approval_id)
        if approved:
            self._decided(approval)
        return approval

    async def set_card(self, approval_id: str, card_ts: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(m.approvals).where(m.approvals.c.id == approval_id)
                               .values(card_ts=card_ts))

    async def get_approval(self, approval_id: str) -> Approval:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(m.approvals).where(m.approvals.c.id == approval_id))).first()
        if row is None:
            raise ApprovalError("unknown approval request")
        d = row_dict(row)
        d.pop("active_key", None)
        return Approval(action=Action.model_validate_json(d.pop("action_json")), **d)

    async def _move(self, conn: AsyncConnection, approval_id: str, frm: ApprovalStatus, to: ApprovalStatus,
                    actor: str, environment: str, *, extra: dict[str, Any] | None = None,
                    not_expired: bool = False) -> bool:
        if to not in APPROVAL_TRANSITIONS.get(frm, frozenset()):
            raise ApprovalError(f"cannot move an approval from {frm.value} to {to.value}")
        now = self._now()
        values: dict[str, Any] = {"status": to.value, **(extra or {})}
        if to in DECISIONS:
            values.update(decided_by=actor, decided_at=now)
        if to.terminal:
            values["active_key"] = None
        cond = and_(m.approvals.c.id == approval_id, m.approvals.c.status == frm.value)
        if not_expired:
            cond = and_(cond, m.approvals.c.expires_at > now)
        res = await conn.execute(update(m.approvals).where(cond).values(**values))
        if res.rowcount != 1:
            return False
        await self._audit(conn, actor, f"approval_{to.value}", environment=environment, subject=approval_id,
                          result=to.value, detail=(extra or {}).get("result"))
        return True

    async def transition(self, approval_id: str, frm: ApprovalStatus, to: ApprovalStatus, *, actor: str,
                         result: str | None = None, fix_run_id: str | None = None) -> Approval:
        """Atomically move ``approval_id`` from ``frm`` to ``to`` (plus its audit row).

        Raises :class:`ApprovalExpired` when a pending approval passed its expiry (it is then
        marked ``expired``), :class:`ApprovalAlreadyHandled` (with ``handled_by``) when another
        click, request or replica moved it first, :class:`ApprovalError` for an unknown id.
        """
        current = await self.get_approval(approval_id)
        extra: dict[str, Any] = {}
        if result is not None:
            extra["result"] = result[:4000]
        if fix_run_id is not None:
            extra["fix_run_id"] = fix_run_id
        if to in (ApprovalStatus.APPROVED, ApprovalStatus.RUNNING):
            extra["owner"] = self.owner
        async with self.engine.begin() as conn:
            moved = await self._move(conn, approval_id, frm, to, actor, current.environment, extra=extra,
                                     not_expired=frm == ApprovalStatus.PENDING)
        if moved:
            decided = await self.get_approval(approval_id)
            self._decided(decided)
            return decided
        return await self._explain_refusal(approval_id, frm)

    def _decided(self, approval: Approval) -> None:
        if self.observer is not None and approval.status in DECISIONS and approval.decided_at is not None:
            latency = (approval.decided_at - approval.created_at).total_seconds()
            self.observer.approval_decided(approval.status.value, max(0.0, latency))

    async def _explain_refusal(self, approval_id: str, frm: ApprovalStatus) -> Approval:
        now = self.clock()
        current = await self.get_approval(approval_id)
        if frm == ApprovalStatus.PENDING and current.expired(now):
            async with self.engine.begin() as conn:
                expired = await self._move(conn, approval_id, ApprovalStatus.PENDING, ApprovalStatus.EXPIRED,
                                           "bot", current.environment, extra={"result": "expired"})
            current = await self.get_approval(approval_id)
            if expired:
                self._decided(current)
        if current.status == ApprovalStatus.EXPIRED:
            raise ApprovalExpired("this approval request has expired; "
                                  "click the Fix button again to re-request")
        raise ApprovalAlreadyHandled(f"already handled (status: {current.status.value})",
                                     handled_by=current.decided_by)


def _interrupted(run: Any, appr: Any) -> Interrupted:
    """The announcement of an interrupted run (with its approval, for a fix)."""
    item = Interrupted(kind=run.kind, environment=run.environment, run_id=run.id, channel=run.channel,
                       thread_ts=run.thread_ts)
    if appr is not None:
        item = item.model_copy(update={"approval_id": appr.id, "card_ts": appr.card_ts,
                                       "action_title": Action.model_validate_json(appr.action_json).title})
    return item
