"""Terminal rendering of the fix path (``qcc-bot fix``): proposals, the plan, the outcome.

The same objects the Slack cards draw (:class:`bot.state.records.Proposal`,
:class:`bot.fixes.FixOutcome`), drawn with rich for a terminal; plain text when the console
is not a terminal. Commands and SQL are printed verbatim (they are already redacted).
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from bot.fixes import FixOutcome
from bot.incidents import RecordedDiagnosis
from bot.models import Action, ActionKind, CauseId
from bot.state.models import ApprovalStatus
from bot.state.records import Approval


def render_diagnosis_line(recorded: RecordedDiagnosis, console: Console, *, fresh: bool) -> None:
    """One line naming the diagnosis the fixes come from."""
    d = recorded.diagnosis
    top = d.top_cause
    cause = f"{top.title} ({top.confidence:.2f})" if top else "no likely cause"
    how = "fresh diagnosis" if fresh else "latest diagnosis"
    console.print(f"{how} of [bold]{escape(recorded.environment)}[/] (run {recorded.run_id[:8]}, "
                  f"{d.started_at:%Y-%m-%d %H:%M:%S %Z}): {escape(cause)}")


def render_fix_list(recorded: RecordedDiagnosis, console: Console, *, demo: bool = False) -> None:
    """The runnable fixes of a diagnosis, numbered, each with its exact commands (``demo``: the
    sandbox's environment exists only for this run, so no ``qcc-bot fix`` hint is printed)."""
    if not recorded.proposals:
        top = recorded.diagnosis.top_cause
        if top is not None and top.id == CauseId.HEALTHY:
            console.print("[green]the proxy is healthy: nothing left to fix[/]")
        else:
            console.print("no runnable fix was proposed by this diagnosis")
        return
    console.print(f"{len(recorded.proposals)} fix(es) proposed:")
    for i, proposal in enumerate(recorded.proposals, 1):
        console.print(f"  {i}. [bold]{escape(proposal.action.id)}[/]  {escape(proposal.action.title)}")
        for command in proposal.action.commands:
            console.print(f"       {escape(command)}", soft_wrap=True)
    if not demo:
        console.print(f"run one with: qcc-bot fix --env {escape(recorded.environment)} ACTION")


def render_plan(action: Action, env: str, console: Console, *, production: bool) -> None:
    """Exactly what will run, where, how it is checked and verified."""
    where = "on the environment's MySQL" if action.kind == ActionKind.SQL else "over SSH on the host"
    prod = " [bold red](production)[/]" if production else ""
    console.print(f"[bold]fix {escape(action.id)}[/]: {escape(action.title)}")
    console.print(f"environment: [bold]{escape(env)}[/]{prod}; runs {where}, in this order, stopping at the "
                  "first failure:")
    for command in action.commands:
        console.print(f"    {escape(command)}", soft_wrap=True)
    if action.precondition:
        console.print(f"precondition: {escape(action.precondition)}")
    if action.verify_steps:
        console.print(f"verified afterwards by: {', '.join(action.verify_steps)} and the precondition check")


def render_already_handled(approval: Approval, console: Console) -> None:
    """The answer when a proposal's fix already ran and succeeded."""
    when = f"{approval.decided_at:%Y-%m-%d %H:%M:%S %Z}" if approval.decided_at else "earlier"
    who = approval.decided_by or approval.requested_by
    console.print(f"already handled: {escape(approval.action.id)} succeeded (approved by {escape(who)}, {when}; "
                  f"approval {approval.id[:8]}): {escape(approval.result or '')}")


def render_outcome(outcome: FixOutcome, console: Console) -> None:
    """Each command with its exit status, then the verification and the final status."""
    for res in outcome.commands:
        mark = "ok" if res.ok else (res.signal or f"exit {res.exit_status}")
        console.print(f"  [{'green' if res.ok else 'red'}]{mark}[/] {res.duration_s:.2f}s  "
                      f"{escape(res.command)}", soft_wrap=True)
        detail = (res.stdout or res.stderr).strip().splitlines()
        if detail:
            console.print(f"      {escape(detail[-1][:200])}")
    for step in outcome.after:
        console.print(f"  re-checked {escape(step.id)}: {step.status.value}")
    if outcome.verification is not None:
        console.print(f"verification: {escape(outcome.verification.detail)}")
    style = "green" if outcome.status == ApprovalStatus.SUCCEEDED else "red"
    why = outcome.error or (outcome.verification.detail if outcome.verification else outcome.summary)
    if not outcome.ran:
        why = outcome.summary
    console.print(f"[bold {style}]fix {outcome.status.value}[/]: {escape(why)} ({outcome.duration_s:.1f}s)")
