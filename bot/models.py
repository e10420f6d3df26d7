"""Typed results shared by the engine, the renderers, the CLI and the Slack handlers.

Shapes (all pydantic, JSON-serialisable):

* :class:`CommandResult` — what a transport returns for one command or query.
* :class:`StepResult` — one runbook step as run: status, duration (seconds), raw output.
* :class:`Cause` — one likely cause with confidence (0..1), evidence lines and a rule-out check.
* :class:`Action` — one suggested fix (or advice) with the exact commands/SQL it would run.
* :class:`LogSummary` — templated, redacted summary of the proxy log.
* :class:`Diagnosis` — the whole report; ``Diagnosis.to_report_json()`` gives the CLI's JSON.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CauseId(StrEnum):
    """The fixed vocabulary of causes a rule may name (``finding()`` takes one)."""

    MIGRATION_FAILED = "migration_failed"
    STARTUP_HEALTH_CHECK_OVERLOAD = "startup_health_check_overload"
    PANIC = "panic"
    RUNTIME_FATAL = "runtime_fatal"
    DEPLOY_HEALTH_TIMEOUT = "deploy_health_timeout"
    PORT_CONFLICT = "port_conflict"
    OOM_KILLED = "oom_killed"
    MYSQL_UNAVAILABLE = "mysql_unavailable"
    MYSQL_ACCESS_DENIED = "mysql_access_denied"
    CONFIG_ERROR = "config_error"
    DISK_FULL = "disk_full"
    CONTAINER_MISSING = "container_missing"
    DOCKER_UNRESPONSIVE = "docker_unresponsive"
    DEPLOY_IN_PROGRESS = "deploy_in_progress"
    CRASH_LOOP = "crash_loop"
    # evidence: faults of a running system and of what changed (issue 10)
    MYSQL_LOST = "mysql_lost"
    MYSQL_OOM_KILLED = "mysql_oom_killed"
    LISTEN_ADDR_MISMATCH = "listen_addr_mismatch"
    BAD_DATA = "bad_data"
    DSN_WRONG_TARGET = "dsn_wrong_target"
    PREVIOUS_IMAGE_RUNNING = "previous_image_running"
    TLS_CERTIFICATE_EXPIRED = "tls_certificate_expired"
    HEALTHY = "healthy"
    UNKNOWN = "unknown"


CAUSE_IDS: tuple[str, ...] = tuple(c.value for c in CauseId)


class ActionId(StrEnum):
    """Ids of suggested fixes; each has one entry in the fix registry (``bot.fixes.FIXES``)."""

    ADD_COLUMN = "add_column"
    RESTART_PROXY = "restart_proxy"
    ROLLBACK = "rollback"
    FREE_PORT = "free_port"
    REMOVE_SQUATTER = "remove_squatter"
    # advice: nothing to run, a human changes code or configuration
    LOWER_HEALTH_CHECK_CONCURRENCY = "lower_health_check_concurrency"
    DELAY_FIRST_HEALTH_CHECK = "delay_first_health_check"
    ADD_PANIC_RECOVERY = "add_panic_recovery"
    MAKE_MIGRATION_IDEMPOTENT = "make_migration_idempotent"
    GRANT_MYSQL_PRIVILEGES = "grant_mysql_privileges"
    FIX_DSN = "fix_dsn"
    FREE_DISK = "free_disk"
    WAIT_FOR_DEPLOY = "wait_for_deploy"
    CHECK_DOCKER_DAEMON = "check_docker_daemon"
    FIX_RUNTIME_FATAL = "fix_runtime_fatal"
    LIMIT_MEMORY = "limit_memory"
    SPEED_UP_START = "speed_up_start"


class StepStatus(StrEnum):
    """Outcome of one runbook step."""

    OK = "ok"
    FAILED = "failed"  # ran, but the command/query reported failure (non-zero exit, SQL error)
    TIMEOUT = "timeout"  # passed its deadline
    ERROR = "error"  # could not run (transport down, host key refused, ...)
    SKIPPED = "skipped"  # not run (a prerequisite missing, e.g. no proxy container)


class CommandResult(BaseModel):
    """Result of one remote command or SQL query.

    ``exit_status`` is None when the remote side reported no status (killed by a
    signal, connection lost); then ``signal`` names the signal if known. Never
    treat ``exit_status is None`` as success. ``stdout``/``stderr`` are decoded
    UTF-8 with replacement characters; ``duration_s`` is wall time in seconds.
    """

    model_config = ConfigDict(frozen=True)

    command: str
    exit_status: int | None
    signal: str | None = None
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    truncated: bool = False  # output was cut at the transport's byte cap

    @property
    def ok(self) -> bool:
        """True only for an explicit exit status 0."""
        return self.exit_status == 0


class StepResult(BaseModel):
    """One runbook step as executed.

    ``output`` is the raw text the step's parser reads (stdout, with stderr merged
    when the step asks for it); ``stderr`` is kept apart otherwise. For SQL steps
    ``output`` is JSON (a list of row objects).
    """

    id: str
    title: str
    status: StepStatus
    duration_s: float = 0.0
    error: str | None = None
    output: str = ""
    stderr: str = ""
    exit_status: int | None = None
    command: str | None = None  # rendered command (no secrets: passwords never go on a command line)


class StepPhase(StrEnum):
    """Where a step is in its run: waiting for a slot, running, or done (see :class:`StepEvent`)."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"


class StepEvent(BaseModel):
    """One progress event of a runbook step; ``result`` is set exactly when ``phase`` is FINISHED."""

    model_config = ConfigDict(frozen=True)

    step_id: str
    title: str
    phase: StepPhase
    result: StepResult | None = None  # set when FINISHED


class Cause(BaseModel):
    """A likely cause with the evidence that supports it.

    ``confidence`` is in 0..1; ``evidence`` quotes the deciding lines (log lines with
    their timestamps, container status rows, missing schema rows); ``rule_out`` is the
    check that would show it is *not* this cause.
    """

    id: CauseId
    title: str
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[str] = Field(default_factory=list)
    rule_out: str = ""
    detail: str = ""  # one or two sentences of reasoning (why this rank)


class ActionKind(StrEnum):
    """How an action is carried out."""

    SSH = "ssh"  # shell commands on the environment's host
    SQL = "sql"  # statements over the MySQL tunnel
    ADVICE = "advice"  # no safe command: a code/config change for a human


class Action(BaseModel):
    """A suggested fix. ``commands`` are exact, already quoted shell lines or SQL statements."""

    id: str  # an ActionId value; kept a str so a stored or unknown id loads (and then never runs)
    title: str
    kind: ActionKind = ActionKind.SSH
    commands: list[str] = Field(default_factory=list)
    cause_id: str | None = None
    precondition: str = ""  # human-readable condition re-checked before running
    params: dict[str, str] = Field(default_factory=dict)  # e.g. {"commit": "<sha>"}; used by re-checks
    verify_steps: list[str] = Field(default_factory=list)  # runbook step ids to re-run afterwards


class LogTemplate(BaseModel):
    """A group of similar log lines: ``template`` with ``<*>`` for variable parts."""

    template: str
    count: int
    example: str


class LogSummary(BaseModel):
    """Summarized, redacted proxy log (from ``docker logs --timestamps`` output)."""

    total_lines: int = 0
    redacted_lines: int = 0
    templates: list[LogTemplate] = Field(default_factory=list)
    first_error: str | None = None
    last_lines: list[str] = Field(default_factory=list)
    goroutine_dump: list[str] = Field(default_factory=list)  # first frames of a panic dump


CheckStatus = Literal["ok", "fail", "unknown"]
Verdict = Literal["confirmed", "likely", "ruled_out", "not_checked"]


class CheckItem(BaseModel):
    """One item of the health checklist: ``ok`` (✓), ``fail`` (✗) or ``unknown`` (?).

    ``line`` quotes the deciding line (a log line, a status row, a command's output);
    ``settle`` names the check that would settle an ``unknown`` (or confirm a ``fail``).
    """

    id: str
    label: str
    status: CheckStatus
    line: str = ""
    settle: str = ""

    @property
    def mark(self) -> str:
        return {"ok": "✓", "fail": "✗", "unknown": "?"}[self.status]


class Hypothesis(BaseModel):
    """One runbook hypothesis with its verdict, the check that decided it and the quoted line.

    ``confidence`` is the cause's confidence when a rule found evidence for it, else None.
    """

    id: str
    title: str
    verdict: Verdict
    check: str = ""
    line: str = ""
    confidence: float | None = None
    seed_rank: int | None = None  # 1..5 for the seed runbook's five, None for the rest


class ChangeSummary(BaseModel):
    """What changed: the running build next to the checkout and the container's life.

    ``running_is_head`` is None when either side is unknown. ``ci`` holds the deploy run's
    conclusion and failed-step lines when a GitHub Actions run log was read.
    """

    running_version: str | None = None
    running_commit: str | None = None
    running_built: str | None = None
    head_commit: str | None = None
    head_subject: str | None = None
    previous_commits: list[str] = Field(default_factory=list)
    running_is_head: bool | None = None
    running_commit_position: int | None = None  # 0 = HEAD, 1 = HEAD~1, ... when found in the log
    container_created: str | None = None
    container_started: str | None = None
    restart_count: int | None = None
    ci_conclusion: str | None = None
    ci_failed_step: str | None = None
    ci_lines: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class Diagnosis(BaseModel):
    """The full report of one diagnosis run (live or re-analyzed from a bundle)."""

    environment: str
    started_at: datetime
    duration_s: float
    steps: list[StepResult]
    causes: list[Cause]
    actions: list[Action] = Field(default_factory=list)
    log_summary: LogSummary | None = None
    redacted_lines: int = 0
    facts: dict[str, object] = Field(default_factory=dict)  # notable extracted facts, for display
    # evidence: the health checklist, every hypothesis's verdict and what changed (issue 10)
    checklist: list[CheckItem] = Field(default_factory=list)
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    changes: ChangeSummary | None = None

    @property
    def top_cause(self) -> Cause | None:
        """The highest-confidence cause, or None when there is none."""
        return self.causes[0] if self.causes else None

    def to_report_json(self) -> dict[str, object]:
        """The CLI's JSON object (see issue: environment, started_at, steps, causes, actions...)."""
        return {
            "environment": self.environment,
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "steps": [
                {
                    "id": s.id,
                    "title": s.title,
                    "status": s.status.value,
                    "duration_s": round(s.duration_s, 3),
                    "error": s.error,
                }
                for s in self.steps
            ],
            "causes": [
                {
                    "id": c.id,
                    "title": c.title,
                    "confidence": round(c.confidence, 3),
                    "evidence": list(c.evidence),
                    "rule_out": c.rule_out,
                    "detail": c.detail,
                }
                for c in self.causes
            ],
            "actions": [
                {
                    "id": a.id,
                    "title": a.title,
                    "kind": a.kind.value,
                    "commands": list(a.commands),
                    "cause_id": a.cause_id,
                    "precondition": a.precondition,
                }
                for a in self.actions
            ],
            "log_summary": self.log_summary.model_dump() if self.log_summary else None,
            "redacted_lines": self.redacted_lines,
            "checklist": [c.model_dump() for c in self.checklist],
            "hypotheses": [h.model_dump() for h in self.hypotheses],
            "changes": self.changes.model_dump() if self.changes else None,
        }
