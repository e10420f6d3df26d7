"""Run an approved fix exactly once, with its precondition re-checked, then verify it.

``FixRunner.execute(approval_id, actor=...)``:

1. moves the approval ``approved -> running`` with one atomic update (a second caller,
   in this process or another replica, gets :class:`bot.errors.ApprovalAlreadyHandled`);
2. records a ``fix`` run (owned by this instance, so a restart marks it ``interrupted``);
3. re-checks the precondition (:mod:`bot.preconditions`); when it no longer holds, nothing
   runs and the approval ends ``failed`` with the reason;
4. runs the action: SQL statements through ``SqlRunner.execute``, shell lines through
   ``CommandRunner.run``, stopping at the first failure;
5. re-runs ``action.verify_steps`` and the precondition check (is the problem gone?); for a
   fix that (re)starts the proxy (``restart_proxy``, ``rollback``) the proxy must also stay
   up past a settle window (:func:`settle`): running, its listening line logged since it
   started, ``/version`` answering (with the pinned commit after a rollback), and still the
   same start ``SETTLE_S`` seconds later. "Up less than a second" is not success; a proxy
   that dies again fails the fix with its new last log line;
6. moves the approval ``running -> succeeded|failed`` and returns a :class:`FixOutcome`
   with the steps before (from the diagnosis) and after.

Everything in the outcome is redacted.

:data:`FIXES` is the one registry of fixes, keyed by :class:`~bot.models.ActionId`: each entry
names its builder (in :mod:`bot.diagnosis.actions`), its precondition check (in
:mod:`bot.preconditions`; None only for advice, which never runs) and the pydantic model its
``Action.params`` must validate against.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from bot import preconditions as pre
from bot.bundle import Bundle
from bot.config import Settings
from bot.diagnosis import actions
from bot.diagnosis.facts import same_commit
from bot.errors import ApprovalError, BotError, CommandTimeout, TransportError
from bot.models import Action, ActionId, ActionKind, CommandResult, Diagnosis, StepResult
from bot.preconditions import Check, Checker, FixContext, check_precondition
from bot.service import DiagnosisService
from bot.state.models import ApprovalStatus, RunKind, RunStatus
from bot.state.store import StateStore, new_id
from bot.transports.base import EnvironmentTransports, TransportProvider


@dataclass(frozen=True)
class Fix:
    """One fix of the registry: how it is built, re-checked and parameterised."""

    id: ActionId
    kind: ActionKind
    builder: Callable[..., Any]
    check: Checker | None
    params: type[BaseModel]


def _advice(action_id: ActionId) -> Fix:
    return Fix(action_id, ActionKind.ADVICE, actions.advice, None, actions.NoParams)


FIXES: dict[ActionId, Fix] = {
    ActionId.ADD_COLUMN: Fix(ActionId.ADD_COLUMN, ActionKind.SQL, actions.add_column, pre.check_add_column,
                             actions.AddColumnParams),
    ActionId.RESTART_PROXY: Fix(ActionId.RESTART_PROXY, ActionKind.SSH, actions.restart_proxy,
                                pre.check_container_state, actions.RestartParams),
    ActionId.ROLLBACK: Fix(ActionId.ROLLBACK, ActionKind.SSH, actions.rollback, pre.check_rollback,
                           actions.RollbackParams),
    ActionId.FREE_PORT: Fix(ActionId.FREE_PORT, ActionKind.ADVICE, actions.port_actions, pre.check_port_holder,
                            actions.PortParams),
    ActionId.REMOVE_SQUATTER: Fix(ActionId.REMOVE_SQUATTER, ActionKind.SSH, actions.port_actions,
                                  pre.check_port_holder, actions.PortParams),
    **{a: _advice(a) for a in ActionId if a in actions.ADVICE},
}


def fix_for(action_id: str) -> Fix | None:
    """The registry entry of ``action_id``, or None for an id the registry does not know."""
    try:
        return FIXES.get(ActionId(action_id))
    except ValueError:
        return None


SSH_TIMEOUT_S = 900.0  # a rollback rebuilds the image
SQL_TIMEOUT_S = 120.0
SETTLE_S = 10.0  # the proxy must stay up this long after it answered (seconds)
SETTLE_TIMEOUT_S = 90.0  # longest wait for the proxy to answer at all (seconds)
SETTLE_POLL_S = 1.0
STARTS_PROXY = {"restart_proxy", "rollback"}

# One probe of the proxy on the host: "<status>|<StartedAt>|<RestartCount>", whether its log
# since that start has the listening line, the /version body, then its last 40 log lines.
_PROBE = (
    'ID=$("$docker" ps -aq --filter "label=com.docker.compose.project=$project" '
    '--filter "label=com.docker.compose.service=$service" '
    '--filter "label=com.docker.compose.oneoff=False" | head -n 1); '
    '[ -n "$ID" ] || { echo "missing||"; exit 0; }; '
    'S=$("$docker" inspect -f \'{{.State.Status}}|{{.State.StartedAt}}|{{.RestartCount}}\' "$ID") || exit 3; '
    'echo "$S"; START=$(echo "$S" | cut -d"|" -f2); '
    'if "$docker" logs --since "$START" "$ID" 2>&1 | grep -q "listening on"; '
    'then echo listening; else echo silent; fi; '
    'curl -s -m 3 "http://127.0.0.1:$port/version" | head -c 2000; echo; '
    '"$docker" logs --tail 40 "$ID" 2>&1'
)


class FixOutcome(BaseModel):
    """What happened when an approved fix ran (or why it did not)."""

    approval_id: str
    environment: str
    action: Action
    status: ApprovalStatus  # succeeded | failed | interrupted
    ran: bool = False  # False when the precondition stopped it: nothing was executed
    precondition: Check
    verification: Check | None = None
    commands: list[CommandResult] = Field(default_factory=list)
    before: list[StepResult] = Field(default_factory=list)
    after: list[StepResult] = Field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0

    @property
    def summary(self) -> str:
        if not self.ran:
            return f"not run: {self.precondition.detail}"
        if self.error:
            return f"{self.status.value}: {self.error}"
        verified = f"; {self.verification.detail}" if self.verification else ""
        return f"{self.status.value}{verified}"


class FixRunner:
    """Runs approved actions against an environment's transports."""

    def __init__(self, settings: Settings, diagnosis: DiagnosisService, transports: TransportProvider,
                 state: StateStore) -> None:
        self.settings = settings
        self.diagnosis = diagnosis
        self.transports = transports
        self.state = state

    async def execute(self, approval_id: str, *, actor: str) -> FixOutcome:
        """Run the approved fix ``approval_id`` once. Raises :class:`ApprovalAlreadyHandled`
        when it is not ``approved`` any more, :class:`ApprovalError` for advice-only actions."""
        approval = await self.state.get_approval(approval_id)
        if approval.action.kind == ActionKind.ADVICE or not approval.action.commands:
            raise ApprovalError("this suggestion is advice for a human; there is nothing to run")
        run_id = new_id()
        approval = await self.state.transition(approval_id, ApprovalStatus.APPROVED, ApprovalStatus.RUNNING,
                                               actor=actor, fix_run_id=run_id)
        diag_run = await self.state.get_run(approval.run_id)
        await self.state.start_run(RunKind.FIX, approval.environment, actor=actor, run_id=run_id,
                                   incident_id=diag_run.incident_id, channel=approval.channel,
                                   thread_ts=approval.thread_ts)
        start = time.monotonic()
        try:
            outcome = await self._run(approval.id, approval.environment, approval.action,
                                      diag_run.diagnosis(),
                                      diag_run.bundle_json)
        except asyncio.CancelledError:
            await self._finish(run_id, approval_id, actor, ApprovalStatus.INTERRUPTED,
                               "cancelled by shutdown")
            raise
        except BaseException as exc:
            await self._finish(run_id, approval_id, actor, ApprovalStatus.FAILED,
                               f"internal error: {type(exc).__name__}")
            raise
        outcome.duration_s = time.monotonic() - start
        await self.state.save_steps(run_id, "before", outcome.before)
        await self.state.save_steps(run_id, "after", outcome.after)
        await self._finish(run_id, approval_id, actor, outcome.status, outcome.summary)
        return outcome

    async def precheck(self, env_name: str, action: Action, diagnosis_run_id: str) -> Check:
        """The precondition check of ``action`` now, as :meth:`execute` will re-run it (read-only;
        for a front end to show before asking for confirmation)."""
        diag_run = await self.state.get_run(diagnosis_run_id)
        transports = await self.transports.get(env_name)
        ctx = FixContext(env_name=env_name, env=self.settings.environment(env_name), action=action,
                         transports=transports, service=self.diagnosis, diagnosis=diag_run.diagnosis(),
                         analysis=(Bundle.model_validate_json(diag_run.bundle_json).context
                                   if diag_run.bundle_json else None))
        return await check_precondition(ctx)

    async def _finish(self, run_id: str, approval_id: str, actor: str, status: ApprovalStatus,
                      summary: str) -> None:
        run_status = {ApprovalStatus.SUCCEEDED: RunStatus.SUCCEEDED,
                      ApprovalStatus.INTERRUPTED: RunStatus.INTERRUPTED}.get(status, RunStatus.FAILED)
        summary = self.diagnosis.redact(summary)
        await self.state.finish_run(run_id, run_status, actor=actor, summary=summary)
        await self.state.transition(approval_id, ApprovalStatus.RUNNING, status, actor=actor, result=summary)

    async def _run(self, approval_id: str, env_name: str, action: Action, diagnosis: Diagnosis | None,
                   bundle_json: str | None) -> FixOutcome:
        transports = await self.transports.get(env_name)
        ctx = FixContext(env_name=env_name, env=self.settings.environment(env_name), action=action,
                         transports=transports, service=self.diagnosis, diagnosis=diagnosis,
                         analysis=Bundle.model_validate_json(bundle_json).context if bundle_json else None)
        before = [s for s in (diagnosis.steps if diagnosis else []) if s.id in action.verify_steps]
        base = {"approval_id": approval_id, "environment": env_name, "action": action, "before": before}
        pre = await check_precondition(ctx)
        if not pre.holds:
            return FixOutcome(**base, status=ApprovalStatus.FAILED, precondition=pre)
        results = await self._commands(action, transports)
        failed = next((r for r in results if not r.ok), None)
        settled = None
        if failed is None and action.id in STARTS_PROXY:
            settled = await settle(ctx, float(action.params.get("settle_s") or SETTLE_S))
        after = await self.diagnosis.run_checks(env_name, action.verify_steps) if action.verify_steps else []
        post = await check_precondition(ctx)
        if settled is not None:
            post = settled if not settled.fixed else post.model_copy(
                update={"detail": f"{post.detail}; {settled.detail}"})
        error = None
        if failed is not None:
            how = failed.signal or f"exit {failed.exit_status}"
            error = f"command failed ({how}): {failed.command[:200]}"
        elif not post.fixed:
            error = f"not verified: {post.detail}"
        status = ApprovalStatus.FAILED if error else ApprovalStatus.SUCCEEDED
        return FixOutcome(**base, status=status, ran=True, precondition=pre, verification=post,
                          commands=results,
                          after=after, error=error and self.diagnosis.redact(error))

    async def _commands(self, action: Action, transports: EnvironmentTransports) -> list[CommandResult]:
        results: list[CommandResult] = []
        timeout = float(action.params.get("timeout_s") or (SQL_TIMEOUT_S if action.kind == ActionKind.SQL
                                                             else SSH_TIMEOUT_S))
        for command in action.commands:
            start = time.monotonic()
            try:
                if action.kind == ActionKind.SQL:
                    if transports.sql is None:
                        raise TransportError("no MySQL configured for this environment")
                    rows = await transports.sql.execute(command, None, timeout_s=timeout)
                    res = CommandResult(command=command, exit_status=0, stdout=f"{rows} row(s) affected")
                else:
                    res = await transports.shell.run(command, timeout_s=timeout)
            except CommandTimeout as exc:
                res = CommandResult(command=command, exit_status=None, signal="timeout", stderr=str(exc))
            except BotError as exc:
                res = CommandResult(command=command, exit_status=1, stderr=str(exc))
            res = res.model_copy(update={"stdout": self.diagnosis.redact(res.stdout[-20000:]),
                                         "stderr": self.diagnosis.redact(res.stderr[-20000:]),
                                         "command": self.diagnosis.redact(res.command),
                                         "duration_s": res.duration_s or time.monotonic() - start})
            results.append(res)
            if not res.ok:
                break
        return results


async def settle(ctx: FixContext, settle_s: float = SETTLE_S, *, timeout_s: float = SETTLE_TIMEOUT_S,
                 poll_s: float = SETTLE_POLL_S) -> Check:
    """Wait until the proxy has stayed up ``settle_s`` seconds after it first answered.

    Answered = running, a ``listening on`` line in its log since its current start, and
    ``/version`` on the proxy port returning JSON (after a rollback, with ``git_commit`` equal
    to the pinned commit). ``fixed`` is True only when the same start (``StartedAt``) is
    still running and answering ``settle_s`` later; otherwise ``detail`` names what failed
    and quotes the proxy's last log line (its new fatal line when it died again).
    """
    env = ctx.env
    variables = {"docker": env.docker, "project": env.compose_project, "service": env.proxy_service,
                 "port": str(env.proxy_port)}
    script = " ".join(f"{k}={shlex.quote(v)};" for k, v in variables.items()) + " " + _PROBE
    pinned = ctx.action.params.get("commit", "") if ctx.action.id == "rollback" else ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    ready_at: float | None = None
    ready_start = ""
    last = "no probe ran"
    while True:
        try:
            res = await ctx.transports.shell.run(script, timeout_s=30.0)
            lines = res.stdout.splitlines() + ["", "", ""]
        except BotError as exc:
            lines = ["error||", "", "", str(exc)]
        status, started, restarts = (lines[0].split("|") + ["", ""])[:3]
        listening, version_body = lines[1] == "listening", lines[2]
        last_line = _fatal_line([line for line in lines[3:] if line.strip()])
        commit = _version_commit(version_body)
        answering = status == "running" and listening and commit is not None
        if pinned and commit is not None and answering and not same_commit(commit, pinned):  # /version may be short
            last = f"/version reports commit {commit[:12]}, not the pinned {pinned[:12]}"
            answering = False
        elif not answering:
            what = ("the proxy container is missing" if status == "missing"
                    else f"the proxy is {status or 'unreadable'}" if status != "running"
                    else "no listening line since it started" if not listening
                    else "/version does not answer")
            last = f"{what}; last log line: {last_line!r}" if last_line else what
        now = loop.time()
        if ready_at is None and status in ("exited", "dead", "created"):
            return Check(holds=False, fixed=False, detail=f"the proxy did not come up: {last}")
        if ready_at is not None and (not answering or started != ready_start):
            why = "it restarted" if started != ready_start and status == "running" else last
            return Check(holds=False, fixed=False,
                         detail=f"the proxy answered, then failed within the settle window ({why}; "
                                f"restarts {restarts or '?'}; last log line: {last_line!r})")
        if answering and ready_at is None:
            ready_at, ready_start = now, started
        if ready_at is not None and now - ready_at >= settle_s:
            build = f", build {commit[:12]}" if commit else ""
            return Check(holds=False, fixed=True,
                         detail=f"the proxy stayed up {settle_s:.0f}s after answering (/version{build})")
        if now >= deadline:
            return Check(holds=False, fixed=False, detail=f"not up within {timeout_s:.0f}s: {last}")
        await asyncio.sleep(poll_s)


def _fatal_line(lines: list[str]) -> str:
    """The line that ended the proxy: the last ``panic:``/``fatal error:`` line, else the last line."""
    for line in reversed(lines):
        if line.lstrip().startswith(("panic:", "fatal error:")):
            return line.strip()
    return lines[-1].strip() if lines else ""


def _version_commit(body: str) -> str | None:
    """``git_commit`` of a ``/version`` JSON body ("" when absent), None when it is not JSON."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return str(data.get("git_commit", "")) if isinstance(data, dict) else None
