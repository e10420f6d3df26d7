"""Tables and status enums of the state store (SQLAlchemy Core, portable SQLite/MySQL).

Tables::

    incidents     one Slack thread opened by `/qcc diagnose` (environment, channel, thread)
    runs          a diagnosis or fix execution: status, owner + heartbeat (for restarts),
                  the diagnosis and its replayable bundle as JSON
    step_results  one row per runbook step of a run (phase diagnosis | before | after)
    proposals     a suggested fix offered by a report (the Fix button carries its id)
    approvals     a request to run a proposal: pending -> approved -> running -> done
    audit_log     append-only: who did what, when, where, with what result

Ids shown to Slack (proposal and approval ids) are random, opaque tokens. Times are naive
UTC ``DATETIME(6)``; the store converts them to aware datetimes.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()

_TS = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
_LONG = Text().with_variant(mysql.LONGTEXT(), "mysql")
_ID = 64


class ApprovalStatus(StrEnum):
    """Life of an approval; only :data:`APPROVAL_TRANSITIONS` moves are allowed."""

    PENDING = "pending"
    APPROVED = "approved"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        return self not in (ApprovalStatus.PENDING, ApprovalStatus.APPROVED, ApprovalStatus.RUNNING)


APPROVAL_TRANSITIONS: dict[ApprovalStatus, frozenset[ApprovalStatus]] = {
    ApprovalStatus.PENDING: frozenset({ApprovalStatus.APPROVED, ApprovalStatus.REJECTED,
                                       ApprovalStatus.EXPIRED}),
    ApprovalStatus.APPROVED: frozenset({ApprovalStatus.RUNNING, ApprovalStatus.INTERRUPTED}),
    ApprovalStatus.RUNNING: frozenset({ApprovalStatus.SUCCEEDED, ApprovalStatus.FAILED,
                                       ApprovalStatus.INTERRUPTED}),
}


class RunStatus(StrEnum):
    """Life of a diagnosis or fix run."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class RunKind(StrEnum):
    DIAGNOSIS = "diagnosis"
    FIX = "fix"


incidents = Table(
    "qcc_incidents", metadata,
    Column("id", String(_ID), primary_key=True),
    Column("environment", String(64), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("thread_ts", String(32), nullable=True),
    Column("created_by", String(64), nullable=False),
    Column("created_at", _TS, nullable=False),
)

runs = Table(
    "qcc_runs", metadata,
    Column("id", String(_ID), primary_key=True),
    Column("incident_id", String(_ID), ForeignKey("qcc_incidents.id"), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("environment", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("heartbeat_at", _TS, nullable=False),
    Column("started_at", _TS, nullable=False),
    Column("finished_at", _TS, nullable=True),
    Column("channel", String(64), nullable=True),
    Column("thread_ts", String(32), nullable=True),
    Column("summary", Text, nullable=True),
    Column("diagnosis_json", _LONG, nullable=True),
    Column("bundle_json", _LONG, nullable=True),
    Index("ix_qcc_runs_status", "status"),
    Index("ix_qcc_runs_env_kind", "environment", "kind", "started_at"),
)

step_results = Table(
    "qcc_step_results", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(_ID), ForeignKey("qcc_runs.id"), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("step_id", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("error", Text, nullable=True),
    Index("ix_qcc_step_results_run", "run_id"),
)

proposals = Table(
    "qcc_proposals", metadata,
    Column("id", String(_ID), primary_key=True),
    Column("run_id", String(_ID), ForeignKey("qcc_runs.id"), nullable=False),
    Column("environment", String(64), nullable=False),
    Column("action_json", Text, nullable=False),
    Column("created_at", _TS, nullable=False),
)

approvals = Table(
    "qcc_approvals", metadata,
    Column("id", String(_ID), primary_key=True),
    Column("proposal_id", String(_ID), ForeignKey("qcc_proposals.id"), nullable=False),
    Column("run_id", String(_ID), ForeignKey("qcc_runs.id"), nullable=False),  # the diagnosis
    Column("fix_run_id", String(_ID), nullable=True),
    Column("environment", String(64), nullable=False),
    Column("action_json", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("requested_by", String(64), nullable=False),
    Column("created_at", _TS, nullable=False),
    Column("expires_at", _TS, nullable=False),
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", _TS, nullable=True),
    Column("owner", String(128), nullable=True),  # the bot instance that ran it
    Column("channel", String(64), nullable=True),
    Column("thread_ts", String(32), nullable=True),
    Column("card_ts", String(32), nullable=True),
    Column("result", Text, nullable=True),
    # Non-null (the proposal id) while the approval is open: one open approval per proposal.
    Column("active_key", String(_ID), nullable=True, unique=True),
    Index("ix_qcc_approvals_status", "status"),
)

audit_log = Table(
    "qcc_audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", _TS, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("event", String(64), nullable=False),
    Column("environment", String(64), nullable=True),
    Column("subject", String(_ID), nullable=True),
    Column("result", String(32), nullable=True),
    Column("detail", Text, nullable=True),
)


# -- triggers and the post-deploy watch (issue 12) -----------------------------------------
class WatchStatus(StrEnum):
    """Life of a post-deploy watch: ``running`` until its window ends (``healthy``), it finds
    the environment ``degraded``, someone ``stopped`` it, or it could not go on (``failed``)."""

    RUNNING = "running"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    STOPPED = "stopped"
    FAILED = "failed"


deliveries = Table(
    "qcc_deliveries", metadata,
    # "<source>:<delivery id>" (GitHub's X-GitHub-Delivery, Alertmanager's body hash): unique.
    Column("id", String(160), primary_key=True),
    Column("source", String(32), nullable=False),
    Column("environment", String(64), nullable=True),
    Column("received_at", _TS, nullable=False),
    Index("ix_qcc_deliveries_received", "received_at"),
)

open_incidents = Table(
    "qcc_open_incidents", metadata,
    # One open automatic incident per environment (the primary key enforces it).
    Column("environment", String(64), primary_key=True),
    Column("incident_id", String(_ID), ForeignKey("qcc_incidents.id"), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("thread_ts", String(32), nullable=True),
    Column("opened_by", String(64), nullable=False),
    Column("opened_at", _TS, nullable=False),
)

watches = Table(
    "qcc_watches", metadata,
    Column("id", String(_ID), primary_key=True),
    Column("environment", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    # The environment's name while the watch runs: one running watch per environment.
    Column("active_key", String(64), nullable=True, unique=True),
    Column("owner", String(128), nullable=False),
    Column("heartbeat_at", _TS, nullable=False),
    Column("started_by", String(64), nullable=False),
    Column("started_at", _TS, nullable=False),
    Column("ends_at", _TS, nullable=False),
    Column("interval_s", Float, nullable=False),
    Column("channel", String(64), nullable=True),
    Column("thread_ts", String(32), nullable=True),
    Column("origin", String(200), nullable=True),
    Column("polls", Integer, nullable=False, default=0),
    Column("progress_json", Text, nullable=True),  # bot.watch.WatchProgress
    Column("finished_at", _TS, nullable=True),
    Column("result", Text, nullable=True),
)
