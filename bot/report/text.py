"""Terminal renderer: a :class:`~bot.models.Diagnosis` as a readable report (rich).

``render_text(diagnosis, console)`` prints: header, steps (status and duration), ranked
likely causes with their evidence and rule-out check, the summarized log, and the
suggested fixes with the exact commands. Plain text when the console is not a terminal.
"""

from __future__ import annotations

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bot.models import ActionKind, CauseId, Diagnosis, StepStatus

_STATUS_STYLE = {
    StepStatus.OK: "green",
    StepStatus.FAILED: "red",
    StepStatus.TIMEOUT: "yellow",
    StepStatus.ERROR: "red",
    StepStatus.SKIPPED: "dim",
}
MAX_EVIDENCE_LINES = 8
MAX_TEMPLATES = 12


def _bar(confidence: float, width: int = 10) -> str:
    filled = int(round(confidence * width))
    return "█" * filled + "░" * (width - filled)


_CHECK_STYLE = {"ok": "green", "fail": "red", "unknown": "yellow"}
_VERDICT_STYLE = {"confirmed": "bold red", "likely": "yellow", "ruled_out": "green", "not_checked": "dim"}


def _render_evidence(d: Diagnosis, console: Console) -> None:
    """The health checklist, the hypothesis table and what changed (issue 10)."""
    if d.checklist:
        t = Table(title="Health checklist (healthy needs every item ✓)", title_justify="left", show_edge=False,
                  pad_edge=False)
        t.add_column("", no_wrap=True)
        t.add_column("item")
        t.add_column("deciding line / check that would settle it", overflow="fold")
        for i in d.checklist:
            note = i.line + (f"  → settle: {i.settle}" if i.settle and i.status != "ok" else "")
            t.add_row(Text(i.mark, style=_CHECK_STYLE[i.status]), i.label, escape(note))
        console.print(t)
    if d.hypotheses:
        t = Table(title="Hypotheses (the runbook's five first)", title_justify="left", show_edge=False,
                  pad_edge=False)
        t.add_column("hypothesis")
        t.add_column("verdict", no_wrap=True)
        t.add_column("check · quoted line", overflow="fold")
        for h in d.hypotheses:
            verdict = h.verdict.replace("_", " ") + (f" {h.confidence:.0%}" if h.confidence is not None else "")
            name = (f"{h.seed_rank}. " if h.seed_rank else "   ") + h.id
            t.add_row(name, Text(verdict, style=_VERDICT_STYLE[h.verdict]), escape(f"{h.check} · {h.line}"))
        console.print(t)
    c = d.changes
    if c is not None:
        console.print(Text("What changed", style="bold"))
        rows = [("running build (/version)", f"{c.running_version or '?'} commit {c.running_commit or '?'} "
                                             f"built {c.running_built or '?'}"),
                ("checkout HEAD", f"{(c.head_commit or '?')[:12]} {c.head_subject or ''}"),
                *[("before it", p) for p in c.previous_commits],
                ("container", f"created {c.container_created or '?'} · started {c.container_started or '?'} · "
                              f"restarts {c.restart_count if c.restart_count is not None else '?'}")]
        if c.ci_conclusion:
            rows.append(("deploy run", f"{c.ci_conclusion}" + (f" (step {c.ci_failed_step})" if c.ci_failed_step
                                                               else "")))
            rows += [("  run log", line) for line in c.ci_lines]
        for k, v in rows:
            console.print(Text.assemble(("  " + k + ": ", "bold"), v))
        for note in c.notes:
            console.print(Text("  ! " + note, style="yellow"))


def render_text(diagnosis: Diagnosis, console: Console) -> None:
    """Print the report for ``diagnosis`` on ``console``."""
    d = diagnosis
    header = Text.assemble(
        ("qcc diagnosis  ", "bold"),
        (f"environment {d.environment}", "bold cyan"),
        f"  ·  started {d.started_at:%Y-%m-%d %H:%M:%S %Z}  ·  {d.duration_s:.1f}s",
    )
    console.print(header)

    steps = Table(title="Runbook steps", title_justify="left", show_edge=False, pad_edge=False)
    steps.add_column("step")
    steps.add_column("status")
    steps.add_column("time", justify="right")
    steps.add_column("note", overflow="fold")
    for s in d.steps:
        steps.add_row(s.id, Text(s.status.value, style=_STATUS_STYLE[s.status]), f"{s.duration_s:.2f}s",
                      escape(s.error or ""))
    console.print(steps)

    # A healthy verdict is not a cause: it gets its own heading (and a green frame).
    healthy = bool(d.causes) and d.causes[0].id == CauseId.HEALTHY
    console.print(Text("Verdict: no cause found" if healthy else "Likely causes (most likely first)", style="bold"))
    for rank, c in enumerate(d.causes, 1):
        body: list[Text | str] = []
        if c.detail:
            body.append(Text(c.detail))
        for line in c.evidence[:MAX_EVIDENCE_LINES]:
            body.append(Text("  » " + line, style="yellow"))
        if len(c.evidence) > MAX_EVIDENCE_LINES:
            body.append(Text(f"  … {len(c.evidence) - MAX_EVIDENCE_LINES} more evidence lines", style="dim"))
        if c.rule_out:
            body.append(Text("rule out: " + c.rule_out, style="dim"))
        # Confidence first: a long title may be cut at the terminal's width, the figure must not be.
        number = "" if c.id == CauseId.HEALTHY else f"{rank}. "  # a verdict, not a ranked cause
        title = f"{number}{_bar(c.confidence)} {c.confidence:.0%}  {c.id} — {escape(c.title)}"
        console.print(Panel(Group(*body) if body else Text("(no evidence lines)", style="dim"),
                            title=title, title_align="left",
                            border_style="green" if c.id == CauseId.HEALTHY else "red" if rank == 1 else "blue"))

    _render_evidence(d, console)

    if d.log_summary is not None:
        ls = d.log_summary
        t = Table(title=f"Proxy log summary ({ls.total_lines} lines, {ls.redacted_lines} redacted)",
                  title_justify="left", show_edge=False)
        t.add_column("count", justify="right")
        t.add_column("template", overflow="fold")
        for tpl in ls.templates[:MAX_TEMPLATES]:
            t.add_row(str(tpl.count), escape(tpl.template))
        console.print(t)
        if ls.first_error:
            console.print(Text("first error: ", style="bold red") + Text(ls.first_error))
        if ls.goroutine_dump:
            console.print(Text("goroutine dump (first frames):", style="bold"))
            for line in ls.goroutine_dump:
                console.print(Text("  " + line))
        if ls.last_lines:
            console.print(Text("last lines of the log (before the exit, if it exited):", style="bold"))
            for line in ls.last_lines:
                console.print(Text("  " + line))

    if d.actions:
        runnable = any(a.kind != ActionKind.ADVICE for a in d.actions)
        console.print(Text("Suggested fixes (each needs an approval: in Slack, or `qcc-bot fix` "
                           "with the typed environment name)" if runnable else
                           "Advice (nothing the bot can run for this cause: steps for a person)", style="bold"))
        for a in d.actions:
            kind = "advice" if a.kind == ActionKind.ADVICE else a.kind.value
            console.print(Text.assemble((f"• {a.id}", "bold"), f" [{kind}] {a.title}"))
            if a.precondition:
                console.print(Text("    precondition: " + a.precondition, style="dim"))
            for cmd in a.commands:
                console.print(Text("    $ " + cmd, style="cyan"))
    console.print(Text(f"{d.redacted_lines} line(s) redacted from this report.", style="dim"))
