"""``qcc-bot fix`` and ``qcc-bot demo --fix``: the fix path without Slack.

:func:`terminal_fix` is the whole flow for one environment:

1. the fixes of the latest recorded diagnosis of the environment (or of a fresh one, recorded
   like any other: ``--fresh`` or when none is stored);
2. without ``ACTION``: list them with their exact commands and stop;
3. with ``ACTION`` (an action id or its number in the list): say "already handled" when the
   proposal's fix already succeeded; refuse production unless
   ``approval.allow_terminal_fixes``; show exactly what would run; re-check the precondition;
4. ask for the environment's name, typed (``confirm``); anything else cancels;
5. open an approved approval in one atomic insert that competes with Slack approvals of the
   same proposal (:meth:`bot.state.store.StateStore.approve_at_terminal`), then run and verify
   it with :meth:`bot.fixes.FixRunner.execute`, exactly as an approval click does.

The actor in the audit log is ``cli:<OS user>``; an attempt that runs nothing writes a
``terminal_fix_refused`` row (already handled, denied, precondition, not confirmed).

Exit codes: 0 the fix succeeded, or nothing was asked to run, or it was already handled;
1 not confirmed, precondition not met, or the fix failed; 2 refused (policy, open elsewhere,
unknown action).
"""

from __future__ import annotations

import functools
import getpass
from collections.abc import Awaitable, Callable
from typing import TextIO

from rich.console import Console

from bot.app import Services
from bot.errors import ApprovalAlreadyHandled, BadCommand, NotAuthorized
from bot.incidents import Origin, OriginKind, RecordedDiagnosis
from bot.report.fixview import (
    render_already_handled,
    render_diagnosis_line,
    render_fix_list,
    render_outcome,
    render_plan,
)
from bot.report.progress import StepProgress
from bot.state.models import ApprovalStatus
from bot.state.records import Proposal

Confirm = Callable[[str], Awaitable[str]]
"""Asks the prompt and returns what the person typed (one line)."""


def cli_actor() -> str:
    """``cli:<OS user>`` for the audit log (``cli:unknown`` when the user cannot be told)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"[:64]


def stdin_confirm(inp: TextIO, console: Console) -> Confirm:
    """A :data:`Confirm` that prints the prompt and reads one line from ``inp`` ("" at EOF)."""

    async def ask(prompt: str) -> str:
        console.print(prompt, end="")
        console.file.flush()
        return inp.readline().strip()

    return ask


async def diagnose_recorded(services: Services, env: str, *, actor: str, console: Console,
                            live: bool) -> RecordedDiagnosis:
    """A recorded CLI diagnosis of ``env``, with live step progress on ``console`` when ``live``."""
    origin = Origin(kind=OriginKind.CLI)
    if not live:
        return await services.incidents.diagnose(env, actor=actor, origin=origin)
    with StepProgress(console, [(s.id, s.title) for s in services.runbook.steps]) as progress:
        return await services.incidents.diagnose(env, actor=actor, origin=origin, on_progress=progress)


def pick_proposal(recorded: RecordedDiagnosis, wanted: str) -> Proposal:
    """The proposal named by action id or by its 1-based number. Raises :class:`BadCommand`."""
    for i, proposal in enumerate(recorded.proposals, 1):
        if wanted in (proposal.action.id, str(i)):
            return proposal
    known = ", ".join(p.action.id for p in recorded.proposals) or "none"
    raise BadCommand(f"no fix {wanted!r} in the diagnosis of {recorded.environment} (proposed: {known})")


async def terminal_fix(services: Services, env: str, *, action: str | None, fresh: bool, actor: str,
                       console: Console, confirm: Confirm, live: bool = False,
                       stage: Callable[[str], None] | None = None) -> int:
    """The flow in the module docstring; returns the exit code.

    ``stage`` (optional) is called with ``"confirm"`` before the plan is shown and ``"fix"``
    before the fix runs (the demo draws headings there)."""
    def at(name: str) -> None:
        if stage is not None:
            stage(name)

    recorded = None if fresh else await services.incidents.latest(env)
    if recorded is None:
        recorded = await diagnose_recorded(services, env, actor=actor, console=console, live=live)
        render_diagnosis_line(recorded, console, fresh=True)
    else:
        render_diagnosis_line(recorded, console, fresh=False)
    if action is None:
        render_fix_list(recorded, console)
        return 0
    proposal = pick_proposal(recorded, action)

    async def refused(result: str, detail: str) -> None:
        """Every terminal attempt leaves an audit row, also when nothing ran."""
        await services.state.audit(actor, "terminal_fix_refused", environment=env, subject=proposal.id,
                                   result=result, detail=f"{proposal.action.id}: {detail}")

    done = await services.state.proposal_done(proposal.id)
    if done is not None:
        render_already_handled(done, console)
        await refused("already handled", f"approval {done.id} succeeded")
        return 0
    try:
        services.incidents.check_terminal_allowed(env)
    except NotAuthorized as exc:
        await refused("denied", str(exc))
        raise
    cfg = services.settings.environment(env)
    at("confirm")
    render_plan(proposal.action, env, console, production=cfg.production)
    check = await services.fixes.precheck(env, proposal.action, recorded.run_id)
    if not check.holds:
        if check.fixed:
            console.print(f"already handled: {check.detail}; nothing to run")
            await refused("already handled", check.detail)
            return 0
        console.print(f"precondition not met: {check.detail}; nothing ran")
        await refused("precondition", check.detail)
        return 1
    console.print(f"precondition holds: {check.detail}")
    typed = await confirm(f"type the environment name ({env}) to run this fix, anything else cancels: ")
    if typed != env:
        console.print("not confirmed: nothing ran")
        await refused("not confirmed", "the typed name did not match")
        return 1
    try:
        approval = await services.incidents.approve_at_terminal(proposal, actor)
    except ApprovalAlreadyHandled as exc:
        await refused("already handled", str(exc))
        raise
    at("fix")
    console.print(f"approved by {actor} (approval {approval.id[:8]}); running...")
    outcome = await services.fixes.execute(approval.id, actor=actor)
    render_outcome(outcome, console)
    return 0 if outcome.status == ApprovalStatus.SUCCEEDED else 1


def _demo_stage(rule: Callable[[str], None], action: str, name: str) -> None:
    rule({"confirm": f"confirm: {action}", "fix": "fix and verify"}[name])


DEMO_MAX_FIXES = 3  # fixes one `demo --fix` runs at most (each after a fresh diagnosis)


async def demo_fix(scenario: str, *, out: TextIO, err: TextIO) -> int:
    """``qcc-bot demo --fix``: the whole loop on a sandbox host (diagnose, propose, confirm, fix,
    verify), with the confirmation printed and typed automatically (the output says so)."""
    import os

    from bot.app import lifespan
    from bot.report.text import render_text

    # The host simulator: a separate package (sandbox/), imported only here.
    from qcc_sandbox.database import MySQLTarget
    from qcc_sandbox.demo import exported
    from qcc_sandbox.host import SandboxHost
    from qcc_sandbox.scenario import ScenarioError, load_scenario

    sc = load_scenario(scenario)
    try:
        mysql = MySQLTarget.from_env(os.environ)
    except ValueError as exc:
        raise ScenarioError(f"bad QCC_DEMO_MYSQL_* setting: {exc}") from None
    console = Console(file=out, highlight=False, soft_wrap=False, width=None if out.isatty() else 120)
    actor = cli_actor()
    async with SandboxHost(sc, mysql=mysql) as host:
        err.write(f"sandbox host: 127.0.0.1:{host.port} playing scenario {sc.name!r} ({sc.title})\n")
        if not host.mysql_ready:
            err.write(f"sandbox MySQL: {host.mysql.host}:{host.mysql.port} not usable; SQL fixes cannot run\n")
        err.flush()
        with exported(host.secret_env()):  # the sandbox's MySQL password, for this run
            async with lifespan(host.settings(), with_state=True) as services:
                env = host.env_name
                async def auto_type(prompt: str) -> str:
                    console.print(prompt, end="")
                    console.print(f"{env}   [dim](demo: typed for you)[/]")
                    return env

                n = 0

                def rule(title: str) -> None:
                    nonlocal n
                    n += 1
                    console.rule(f"{n}. {title}")

                code, done = 0, set()
                for round_ in range(DEMO_MAX_FIXES):
                    # Diagnose, propose, confirm, fix, verify; then diagnose again, since a fix can
                    # make the next one possible (the column added, then the restart).
                    rule("diagnose" if round_ == 0 else "diagnose again")
                    recorded = await diagnose_recorded(services, env, actor=actor, console=console,
                                                       live=out.isatty())
                    render_text(recorded.diagnosis, console)
                    todo = [p for p in recorded.proposals if p.action.id not in done]
                    rule("propose")
                    render_fix_list(recorded, console, demo=True)
                    if not todo:
                        break
                    action = todo[0].action.id
                    done.add(action)
                    code = await terminal_fix(services, env, action=action, fresh=False, actor=actor,
                                              console=console, confirm=auto_type,
                                              stage=functools.partial(_demo_stage, rule, action))
                    if code != 0:
                        break
                rule("audit log")
                for entry in reversed(await services.state.list_audit(50, environment=env)):
                    console.print(f"  {entry.at:%H:%M:%S} {entry.actor:<16} {entry.event:<20} "
                                  f"{entry.result or '':<10} {(entry.detail or '')[:60]}")
                return code
