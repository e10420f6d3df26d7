"""The incident use case, shared by every front end: diagnose -> record -> propose.

:meth:`IncidentService.diagnose` is the one entry for a diagnosis, whoever asked for it (a
Slack command, ``qcc-bot diagnose``, a webhook trigger). It:

1. opens an incident (or continues ``origin.incident_id``) and records a ``diagnosis`` run
   (audit rows ``incident_opened``, ``diagnosis_started``);
2. runs the runbook (:class:`bot.service.DiagnosisService`), forwarding each redacted
   :class:`bot.models.StepEvent` to ``on_progress``;
3. stores the step results, one proposal per runnable fix, the diagnosis and its bundle,
   and finishes the run (audit row ``diagnosis_finished``). A failure or cancellation ends
   the run ``failed``/``interrupted`` and is re-raised.

Where the request came from is opaque :class:`Origin` data: the Slack handler passes its
channel and thread, the CLI passes ``kind="cli"``. Nothing here knows about Slack.

Terminal fixes (``qcc-bot fix``) go through :meth:`IncidentService.approve_at_terminal`:
the environment's policy is checked (production refuses unless
``approval.allow_terminal_fixes``), then the store opens an already-approved approval in
one atomic insert that competes with Slack approvals of the same proposal.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from bot.bundle import Bundle
from bot.config import Settings
from bot.errors import NotAuthorized
from bot.models import Action, ActionKind, Diagnosis
from bot.service import DiagnosisService, EventCallback
from bot.state.models import RunKind, RunStatus
from bot.state.records import Approval, Proposal, RunRecord
from bot.state.store import StateStore


class OriginKind(StrEnum):
    """Which front end asked for a diagnosis."""

    SLACK = "slack"
    CLI = "cli"
    TRIGGER = "trigger"


class Origin(BaseModel):
    """Where a diagnosis was asked for; stored with the incident and its runs, never interpreted.

    ``channel``/``thread_ts`` are the Slack thread the front end posts in (None for the CLI).
    ``incident_id`` continues an open incident instead of opening a new one (a second event
    for the same outage).
    """

    model_config = ConfigDict(frozen=True)

    kind: OriginKind
    channel: str | None = None
    thread_ts: str | None = None
    incident_id: str | None = None


class RecordedDiagnosis(BaseModel):
    """A diagnosis as recorded: its run, incident, the report, the bundle and the proposals.

    ``proposals`` are the runnable fixes in report order (advice is never proposed).
    """

    run_id: str
    incident_id: str | None = None
    environment: str
    diagnosis: Diagnosis
    bundle: Bundle | None = None
    proposals: list[Proposal] = Field(default_factory=list)

    @property
    def fixes(self) -> list[tuple[str, Action]]:
        """``(proposal id, action)`` of each proposal, as the report's Fix buttons need them."""
        return [(p.id, p.action) for p in self.proposals]


def runnable(action: Action) -> bool:
    """An action that a fix runner can execute (not advice, and it has commands)."""
    return action.kind != ActionKind.ADVICE and bool(action.commands)


class IncidentService:
    """Diagnose, record and propose for one environment at a time; see the module docstring."""

    def __init__(self, settings: Settings, diagnosis: DiagnosisService, state: StateStore) -> None:
        self.settings = settings
        self.diagnosis = diagnosis
        self.state = state

    async def diagnose(self, env: str, *, actor: str, origin: Origin,
                       on_progress: EventCallback | None = None) -> RecordedDiagnosis:
        """Diagnose ``env`` for ``actor`` (a Slack user id, ``cli:<user>``, ``trigger:<source>``).

        Raises :class:`bot.errors.UnknownEnvironment` before anything is recorded,
        :class:`bot.errors.StateUnavailable`/SQLAlchemy errors when the state store fails;
        step failures are part of the diagnosis, never an exception. A cancelled or failed
        diagnosis ends its run ``interrupted``/``failed`` (audit row) and re-raises.
        """
        self.settings.environment(env)
        incident_id = origin.incident_id
        if incident_id is None:
            incident = await self.state.create_incident(env, origin.channel or "", origin.thread_ts, actor)
            incident_id = incident.id
        run = await self.state.start_run(RunKind.DIAGNOSIS, env, actor=actor, incident_id=incident_id,
                                         channel=origin.channel, thread_ts=origin.thread_ts)
        try:
            result = await self.diagnosis.diagnose(env, on_progress=on_progress)
        except BaseException as exc:
            ended = RunStatus.INTERRUPTED if isinstance(exc, asyncio.CancelledError) else RunStatus.FAILED
            await asyncio.shield(self.state.finish_run(run.id, ended, actor=actor, summary=type(exc).__name__))
            raise
        diagnosis = result.diagnosis
        # Stored first: whatever the front end does next, the diagnosis is kept.
        await self.state.save_steps(run.id, "diagnosis", diagnosis.steps)
        proposals = [await self.state.create_proposal(run.id, env, action)
                     for action in diagnosis.actions if runnable(action)]
        top = diagnosis.top_cause
        await self.state.finish_run(run.id, RunStatus.SUCCEEDED, actor=actor,
                                    summary=f"{top.id} {top.confidence:.2f}" if top else "no cause",
                                    diagnosis_json=diagnosis.model_dump_json(),
                                    bundle_json=result.bundle.model_dump_json())
        return RecordedDiagnosis(run_id=run.id, incident_id=incident_id, environment=env, diagnosis=diagnosis,
                                 bundle=result.bundle, proposals=proposals)

    async def latest(self, env: str) -> RecordedDiagnosis | None:
        """The newest recorded diagnosis of ``env`` with its proposals, or None."""
        self.settings.environment(env)
        run = await self.state.latest_diagnosis(env)
        if run is None:
            return None
        return await self._recorded(run)

    async def _recorded(self, run: RunRecord) -> RecordedDiagnosis:
        diagnosis = run.diagnosis()
        assert diagnosis is not None  # noqa: S101 - latest_diagnosis only returns runs with one
        bundle = Bundle.model_validate_json(run.bundle_json) if run.bundle_json else None
        return RecordedDiagnosis(run_id=run.id, incident_id=run.incident_id, environment=run.environment,
                                 diagnosis=diagnosis, bundle=bundle,
                                 proposals=await self.state.list_proposals(run.id))

    def check_terminal_allowed(self, env: str) -> None:
        """Raise :class:`NotAuthorized` when ``env`` does not accept fixes from a terminal
        (``production: true`` without ``approval.allow_terminal_fixes: true``)."""
        cfg = self.settings.environment(env)
        if cfg.production and not cfg.approval.allow_terminal_fixes:
            raise NotAuthorized(f"{env} is production: fixes need a Slack approval there "
                                "(set approval.allow_terminal_fixes: true to allow terminal fixes)")

    async def approve_at_terminal(self, proposal: Proposal, actor: str) -> Approval:
        """Open an ``approved`` approval of ``proposal`` for ``actor`` who typed the environment's
        name. Raises :class:`NotAuthorized` (policy) or :class:`bot.errors.ApprovalAlreadyHandled`
        (open in Slack, running, or already succeeded)."""
        self.check_terminal_allowed(proposal.environment)
        cfg = self.settings.environment(proposal.environment)
        return await self.state.approve_at_terminal(proposal.id, actor, expiry_s=cfg.approval.expiry_s)
