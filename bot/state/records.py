"""Typed rows returned by :class:`bot.state.store.StateStore` (never raw SQLAlchemy rows)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from bot.models import Action, Diagnosis, StepResult
from bot.state.models import ApprovalStatus, RunKind, RunStatus


def aware(value: datetime | None) -> datetime | None:
    """A UTC-aware datetime from a naive UTC column value."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def naive(value: datetime) -> datetime:
    """The naive UTC value stored in a column."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


class Incident(BaseModel):
    """One Slack thread opened for an environment."""

    id: str
    environment: str
    channel: str
    thread_ts: str | None = None
    created_by: str
    created_at: datetime


class RunRecord(BaseModel):
    """A diagnosis or fix run as stored (diagnosis and bundle parsed lazily by callers)."""

    id: str
    incident_id: str | None = None
    kind: RunKind
    environment: str
    status: RunStatus
    owner: str
    started_at: datetime
    finished_at: datetime | None = None
    channel: str | None = None
    thread_ts: str | None = None
    summary: str | None = None
    diagnosis_json: str | None = None
    bundle_json: str | None = None

    def diagnosis(self) -> Diagnosis | None:
        """The stored :class:`Diagnosis`, or None when the run has none (yet)."""
        return Diagnosis.model_validate_json(self.diagnosis_json) if self.diagnosis_json else None


class Proposal(BaseModel):
    """A fix offered by a diagnosis report; the Fix button carries ``id`` only."""

    id: str
    run_id: str
    environment: str
    action: Action
    created_at: datetime


class Approval(BaseModel):
    """A request to run a proposal's action, with its decision and outcome."""

    id: str
    proposal_id: str
    run_id: str
    fix_run_id: str | None = None
    environment: str
    action: Action
    status: ApprovalStatus
    requested_by: str
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    owner: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    card_ts: str | None = None
    result: str | None = None

    def expired(self, now: datetime) -> bool:
        return self.status == ApprovalStatus.PENDING and now >= self.expires_at


class AuditEntry(BaseModel):
    """One append-only audit row."""

    id: int
    at: datetime
    actor: str
    event: str
    environment: str | None = None
    subject: str | None = None
    result: str | None = None
    detail: str | None = None


class Interrupted(BaseModel):
    """A run or approval that a restart left unfinished and that recovery marked ``interrupted``."""

    kind: str  # "diagnosis" | "fix" | "approval"
    environment: str
    run_id: str | None = None
    approval_id: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    card_ts: str | None = None
    action_title: str | None = None


class StepRow(BaseModel):
    """A stored step result (phase: diagnosis | before | after)."""

    run_id: str
    phase: str
    step_id: str
    title: str
    status: str
    duration_s: float
    error: str | None = None


def row_dict(row: Any) -> dict[str, Any]:
    """A SQLAlchemy row as a dict with aware datetimes."""
    out = dict(row._mapping)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = aware(value)
    return out


def steps_rows(run_id: str, phase: str, steps: list[StepResult]) -> list[dict[str, Any]]:
    """Insert rows for ``steps`` (errors cut to 2,000 chars)."""
    return [
        {"run_id": run_id, "phase": phase, "step_id": s.id, "title": s.title[:200], "status": s.status.value,
         "duration_s": float(s.duration_s), "error": (s.error or None) and s.error[:2000]}
        for s in steps
    ]

