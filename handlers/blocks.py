"""The one Block Kit renderer: typed results in, :class:`~handlers.blockkit.Message` out.

Every message the bot sends is built here with ``slack_sdk.models.blocks`` (limits are
validated on ``to_dict()``); handlers never hold Block Kit literals. Long content is marked
and attached as a file in the thread (see :class:`~handlers.blockkit.Builder`).
"""

from __future__ import annotations

import json

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    DividerBlock,
    HeaderBlock,
)

from bot.config import ApprovalPolicy, Settings
from bot.diagnosis.parsers import Container
from bot.fixes import FixOutcome
from bot.models import Action, Diagnosis, Hypothesis, LogSummary, StepResult
from bot.state.records import Approval, AuditEntry, Interrupted
from bot.triggers import TriggerEvent
from handlers.blockkit import SECTION_LIMIT, Builder, Message, code, esc, when
from handlers.parsing import USAGE

STEP_ICONS = {"queued": "⏳", "running": "🔄", "ok": "✅", "failed": "❌", "timeout": "⏱️", "error": "⚠️",
              "skipped": "⏭️"}
STATUS_ICONS = {"pending": "🟡", "approved": "🟢", "running": "🔄", "succeeded": "✅", "failed": "❌",
                "rejected": "🚫", "expired": "⌛", "interrupted": "⚠️"}


def simple(text: str) -> Message:
    """A one-section message (ephemerals, refusals)."""
    b = Builder("message.txt", "message")
    b.section(text)
    return b.build(text)


def error(text: str, correlation_id: str | None = None) -> Message:
    if correlation_id:
        text = f"⚠️ Something went wrong ({esc(text)}). Reference `{correlation_id}` for the bot's logs."
    else:
        text = f"⚠️ {esc(text)}"
    return simple(text)


def progress(env: str, rows: list[tuple[str, str, str, float | None, str | None]], *,
             done: bool = False) -> Message:
    """The single progress message: rows of (step id, title, state, duration, note)."""
    b = Builder(f"progress-{env}.txt", "progress")
    head = f"*Runbook progress* · `{esc(env)}`" + (" · finished" if done else "")
    lines = [head]
    for _sid, title, state, duration, note in rows:
        dur = f" {duration:.1f}s" if duration is not None and state not in ("queued", "running") else ""
        extra = f" — {esc(note[:120])}" if note and state not in ("ok", "queued", "running") else ""
        lines.append(f"{STEP_ICONS.get(state, '•')} {esc(title)} · {state}{dur}{extra}")
    chunk: list[str] = []
    for line in lines:  # several sections rather than one over-long one
        if sum(len(x) + 1 for x in chunk) + len(line) > SECTION_LIMIT:
            b.section("\n".join(chunk))
            chunk = []
        chunk.append(line)
    b.section("\n".join(chunk))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[2]] = counts.get(row[2], 0) + 1
    return b.build(f"Progress for {env}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))


def diagnose_started(env: str, user: str) -> Message:
    return simple(f"🔎 <@{user}> started a diagnosis of `{esc(env)}`. Progress and report in the thread.")


def diagnose_finished(env: str, user: str, top: str | None, confidence: float | None,
                      duration_s: float) -> Message:
    found = f" Most likely: *{esc(top)}* ({confidence:.0%})." if top and confidence is not None else ""
    return simple(f"🔎 Diagnosis of `{esc(env)}` for <@{user}> finished in {duration_s:.1f}s.{found} "
                  "Report and fixes in the thread.")


def diagnose_failed(env: str, reason: str) -> Message:
    return simple(f"⚠️ The diagnosis of `{esc(env)}` could not finish: {esc(reason)}")


def commands_text(commands: list[str]) -> str:
    return code("\n".join(commands)) if commands else "_(no command)_"


# ---------------------------------------------------------------- the diagnosis report
def _evidence(lines: list[str], limit: int | None = 6) -> str:
    if limit is None:
        return "\n".join(f"> `{esc(line)}`" for line in lines)
    shown = [f"> `{esc(line[:280])}`" + (" _(line cut, full in the report file)_" if len(line) > 280 else "")
             for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"> _…{len(lines) - limit} more line(s) in the full report file_")
    return "\n".join(shown)


def report(diagnosis: Diagnosis, fixes: list[tuple[str, Action]], *, run_id: str) -> Message:
    """Ranked causes with confidence and quoted evidence, summarized logs, one button per fix.

    ``fixes`` pairs each runnable action with its proposal id (the button's only value);
    advice-only actions are listed without a button.
    """
    env = diagnosis.environment
    b = Builder(f"diagnosis-{env}-{run_id[:8]}.md", f"Full diagnosis report ({env})")
    b.add(HeaderBlock(text=f"Diagnosis · {env}"[:150]), f"# Diagnosis · {env}")
    counts: dict[str, int] = {}
    for s in diagnosis.steps:
        counts[s.status.value] = counts.get(s.status.value, 0) + 1
    b.context(f"{diagnosis.duration_s:.1f}s · {len(diagnosis.steps)} steps: "
              + ", ".join(f"{n} {k}" for k, n in counts.items())
              + f" · {diagnosis.redacted_lines} line(s) redacted · diagnosis `{run_id[:10]}`")
    shown = diagnosis.causes[:5]
    for i, cause in enumerate(shown, 1):
        head = f"*{i}. {esc(cause.title)}* — {cause.confidence:.0%} confidence"
        if cause.detail:
            head += f"\n{esc(cause.detail)}"
        tail = f"\n_Rule out:_ {esc(cause.rule_out)}" if cause.rule_out else ""
        ev = "\n" + _evidence(cause.evidence) if cause.evidence else ""
        b.section(head + ev + tail, full=head + "\n" + _evidence(cause.evidence, None) + tail)
    if len(diagnosis.causes) > len(shown):
        b.cut = True
        b.context(f"_{len(diagnosis.causes) - len(shown)} less likely cause(s) are in the full report_")
    for cause in diagnosis.causes[len(shown):]:
        b.full.append(f"{cause.title} — {cause.confidence:.0%}\n" + "\n".join(cause.evidence))
    if diagnosis.checklist:
        short, full = _checklist_text(diagnosis)
        b.section(short, full=full)
    if diagnosis.hypotheses:
        short, full = _hypotheses_text(diagnosis)
        b.section(short, full=full)
    if diagnosis.changes is not None and diagnosis.changes.notes:
        b.context("*What changed:* " + esc(" ".join(diagnosis.changes.notes))[:1900])
    if diagnosis.log_summary is not None:
        b.add(DividerBlock())
        b.section(_log_text(diagnosis.log_summary, last=8))
    problems = [s for s in diagnosis.steps if s.status.value not in ("ok", "skipped")]
    if problems:
        b.section("*Steps that did not complete*\n" + _problems_text(problems))
    if fixes or diagnosis.actions:
        b.add(DividerBlock())
        b.section("*Suggested fixes* — each asks for approval before anything runs")
    for i, (proposal_id, action) in enumerate(fixes):
        button = ButtonElement(text=f"Fix: {action.title}"[:75], action_id=f"qcc_fix_{i}", value=proposal_id,
                               style="primary")
        b.section(f"*{esc(action.title)}* ({action.kind.value})\n{commands_text(action.commands)}"
                  + (f"\n_Precondition:_ {esc(action.precondition)}" if action.precondition else ""),
                  accessory=button)
    for action in diagnosis.actions:
        if action.kind.value == "advice" or not action.commands:
            body = "\n".join(esc(c) for c in action.commands) or esc(action.precondition)
            b.section(f"💡 *{esc(action.title)}* (advice)\n{body}")
    top = diagnosis.top_cause
    fallback = f"Diagnosis of {env}: " + (f"{top.title} ({top.confidence:.0%})" if top else "no cause found")
    return b.build(fallback)


_VERDICT = {"confirmed": "✅ confirmed", "likely": "🟡 likely", "ruled_out": "⚪ ruled out",
            "not_checked": "❔ not checked"}


def _checklist_text(d: Diagnosis) -> tuple[str, str]:
    """Health checklist: one line of marks, then the deciding line of each ✗ / ? (short, full)."""
    marks = " · ".join(f"{i.mark} {esc(i.label)}" for i in d.checklist)
    bad = [i for i in d.checklist if i.status != "ok"]
    lines = [f"{i.mark} *{esc(i.label)}*: `{esc(i.line[:200])}`" + (f" — settle: {esc(i.settle)}" if i.settle and
                                                                    i.status == "unknown" else "")
             for i in bad[:6]]
    head = f"*Health checklist* ({len(d.checklist) - len(bad)}/{len(d.checklist)} ✓)\n{marks}"
    full = head + "\n" + "\n".join(f"{i.mark} {i.label}: {i.line}" + (f" (settle: {i.settle})" if i.settle else "")
                                     for i in d.checklist)
    return (head + ("\n" + "\n".join(lines) if lines else ""))[:2900], full


def _hypotheses_text(d: Diagnosis) -> tuple[str, str]:
    """Hypothesis table: seed's five first; a verdict, its confidence when found, the deciding line."""
    def row(h: Hypothesis, cut: int | None) -> str:
        conf = f" {h.confidence:.0%}" if h.confidence is not None else ""
        line = h.line if cut is None else h.line[:cut]
        return f"{_VERDICT[h.verdict]}{conf} `{h.id}` — {esc(line)}"
    shown = [h for h in d.hypotheses if h.seed_rank is not None or h.verdict in ("confirmed", "likely")]
    rest = len(d.hypotheses) - len(shown)
    short = "*Hypotheses* (the runbook's five, then every one with evidence)\n" + "\n".join(
        row(h, 110) for h in shown)
    if rest:
        short += f"\n_{rest} more ruled out / not checked in the full report_"
    full = "Hypotheses\n" + "\n".join(row(h, None) + f" [check: {h.check}]" for h in d.hypotheses)
    return short[:2900], full


def _problems_text(steps: list[StepResult]) -> str:
    """One line per distinct (status, error): the titles of the steps it hit, then the error.

    A host that cannot be used fails every step with the same message (a refused host key
    carries the admin's instructions); it is shown once, in full, not cut once per step.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for s in steps:
        groups.setdefault((s.status.value, s.error or s.status.value), []).append(s.title)
    lines = []
    for (status, error), titles in groups.items():
        names = ", ".join(titles) if len(titles) <= 3 else f"{len(titles)} steps ({', '.join(titles)})"
        lines.append(f"{STEP_ICONS.get(status, '•')} {esc(names)}: {esc(error[:800])}")
    return "\n".join(lines)


def _log_text(summary: LogSummary, *, last: int) -> str:
    text = f"*Logs* · {summary.total_lines} line(s), {summary.redacted_lines} redacted"
    if summary.first_error:
        text += f"\nFirst error: `{esc(summary.first_error[:300])}`"
    if summary.templates:
        text += "\n" + "\n".join(f"• {t.count}× `{esc(t.template[:200])}`" for t in summary.templates[:8])
    if summary.goroutine_dump:
        text += "\nPanic dump:\n" + code("\n".join(summary.goroutine_dump[:10]))
    if summary.last_lines and last:
        text += "\nLast lines:\n" + code("\n".join(line[:300] for line in summary.last_lines[-last:]))
    return text


# ---------------------------------------------------------------- approvals
def _approval_fields(approval: Approval, policy: ApprovalPolicy, production: bool) -> str:
    who = ", ".join(f"<@{u}>" for u in policy.approvers)
    if policy.approver_usergroup:
        who = ", ".join(x for x in (who, f"<!subteam^{policy.approver_usergroup}>") if x)
    env = f"`{esc(approval.environment)}`" + (" ⚠️ production" if production else "")
    return (f"*Environment:* {env}\n*Requested by:* <@{approval.requested_by}>\n"
            f"*From diagnosis:* `{approval.run_id[:10]}`\n*Expires:* {when(approval.expires_at)}\n"
            f"*Approvers:* {who or 'none configured'} · self-approval "
            f"{'allowed' if policy.allow_self_approval else 'not allowed'}")


def approval_card(approval: Approval, policy: ApprovalPolicy, *, production: bool = False) -> Message:
    """The approval card: exact commands/SQL, environment, diagnosis, requester and (while
    pending) Approve/Reject buttons carrying the approval id only."""
    action = approval.action
    b = Builder(f"approval-{approval.id[:8]}.txt", f"Commands of approval {approval.id[:8]}")
    state = approval.status.value
    b.add(HeaderBlock(text=f"{STATUS_ICONS.get(state, '')} Approval: {action.title}"[:150]))
    sql = action.kind.value == "sql"
    target = "SQL on the environment's MySQL" if sql else "shell on the environment's host"
    b.section(f"*Will run* ({target}):\n{commands_text(action.commands)}")
    if action.precondition:
        b.section(f"*Re-checked right before running:* {esc(action.precondition)}")
    b.section(_approval_fields(approval, policy, production))
    if state == "pending":
        confirm = ConfirmObject(title="Run this fix?",
                                text=f"This runs the commands above on {approval.environment}.",
                                confirm="Approve and run", deny="Cancel")
        b.add(ActionsBlock(elements=[
            ButtonElement(text="Approve", action_id="qcc_approve", value=approval.id, style="primary",
                          confirm=confirm),
            ButtonElement(text="Reject", action_id="qcc_reject", value=approval.id, style="danger"),
        ]))
    else:
        by = f" by <@{approval.decided_by}>" if approval.decided_by and approval.decided_by != "bot" else ""
        detail = f" — {esc(approval.result[:300])}" if approval.result else ""
        b.context(f"{STATUS_ICONS.get(state, '')} *{state}*{by}{detail}")
    return b.build(f"Approval {state}: {action.title} on {approval.environment}")


def fix_result(outcome: FixOutcome) -> Message:
    """Before/after of an executed (or refused) fix."""
    a = outcome.action
    b = Builder(f"fix-{outcome.approval_id[:8]}.txt", f"Fix output: {a.title}")
    icon = {"succeeded": "✅", "failed": "❌"}.get(outcome.status.value, "⚠️")
    if not outcome.ran:
        b.section(f"⏭️ *Fix not run:* {esc(a.title)} on `{esc(outcome.environment)}`\n"
                  f"The precondition no longer holds: {esc(outcome.precondition.detail)}. "
                  "Nothing was executed.")
        return b.build(f"Fix not run: {a.title}")
    b.section(f"{icon} *Fix {outcome.status.value}:* {esc(a.title)} on `{esc(outcome.environment)}` "
              f"({outcome.duration_s:.1f}s)\n*Before:* {esc(outcome.precondition.detail)}"
              + (f"\n*After:* {esc(outcome.verification.detail)}" if outcome.verification else "")
              + (f"\n*Error:* {esc(outcome.error)}" if outcome.error else ""))
    for r in outcome.commands:
        status = f"exit {r.exit_status}" if r.exit_status is not None else (r.signal or "no exit status")
        out = (r.stdout + ("\n" + r.stderr if r.stderr else "")).strip()
        b.section(f"`$ {esc(r.command[:400])}` → {status} ({r.duration_s:.1f}s)" + (f"\n{code(out)}" if out
                                                                                    else ""))
    before = {s.id: s for s in outcome.before}
    for after in outcome.after:
        prev = before.get(after.id)
        was = prev.status.value if prev else "not captured"
        b.section(f"*{esc(after.title)}*: {was} → {after.status.value}\n"
                  + _step_diff(prev.output if prev else "", after.output))
    return b.build(f"Fix {outcome.status.value}: {a.title}")


def _names(output: str) -> list[str] | None:
    try:
        rows = json.loads(output)
    except (ValueError, TypeError):
        return None
    if isinstance(rows, list) and all(isinstance(r, dict) and "name" in r for r in rows):
        return [str(r["name"]) for r in rows]
    return None


def _step_diff(before: str, after: str) -> str:
    nb, na = _names(before), _names(after)
    if nb is not None and na is not None:
        added = [n for n in na if n not in nb]
        removed = [n for n in nb if n not in na]
        return (f"columns before: {len(nb)}, after: {len(na)}"
                + (f"; added: `{esc(', '.join(added))}`" if added else "")
                + (f"; removed: `{esc(', '.join(removed))}`" if removed else ""))
    tail = "\n".join(after.strip().splitlines()[-12:])
    return code(tail) if tail else "_(no output)_"


# ---------------------------------------------------------------- other commands
def usage(prefix: str = "") -> Message:
    return simple((prefix + "\n" if prefix else "") + USAGE)


def help_text(settings: Settings, env: str | None) -> Message:
    b = Builder("help.txt", "help")
    b.section("*qcc chat-ops* — diagnose the qcc_plus proxy and run approved fixes\n" + USAGE)
    names = [env] if env else sorted(settings.environments)
    for name in names:
        cfg = settings.environments.get(name)
        if cfg is None:
            continue
        p = cfg.approval
        approvers = ", ".join(f"<@{u}>" for u in p.approvers) or "none"
        group = f" and <!subteam^{p.approver_usergroup}>" if p.approver_usergroup else ""
        prod = " (production)" if cfg.production else ""
        b.section(f"`{esc(name)}`{prod}: project `{esc(cfg.compose_project)}`"
                  f" on `{esc(cfg.ssh.host)}` · approvers {approvers}{group} · self-approval "
                  f"{'allowed' if p.allow_self_approval else 'not allowed'} · "
                  f"approvals expire after {p.expiry_s}s")
    return b.build("qcc help")


def status(env: str, step: StepResult, containers: list[Container]) -> Message:
    b = Builder(f"status-{env}.txt", f"Container status ({env})")
    if step.status.value != "ok":
        why = esc(step.error or step.status.value)
        b.section(f"⚠️ Could not read container states of `{esc(env)}`: {why}")
        return b.build(f"status of {env}: unavailable")
    rows = [f"{'🟢' if c.state == 'running' else '🔴'} `{esc(c.name)}` {esc(c.status or c.state)}"
            + (f" · {esc(c.ports)}" if c.ports else "") for c in containers]
    b.section(f"*Containers of* `{esc(env)}` ({step.duration_s:.1f}s)\n" + ("\n".join(rows)
                                                                            or "_none found_"))
    return b.build(f"status of {env}: " + ", ".join(f"{c.name} {c.state}" for c in containers))


def logs(env: str, step: StepResult, summary: LogSummary | None, n: int) -> Message:
    b = Builder(f"logs-{env}.txt", f"Proxy log summary ({env})")
    if summary is None:
        b.section(f"⚠️ Could not read the proxy logs of `{esc(env)}`: {esc(step.error or step.status.value)}")
        return b.build(f"logs of {env}: unavailable")
    b.section(f"*Proxy logs of* `{esc(env)}`\n" + _log_text(summary, last=n))
    return b.build(f"logs of {env}: {summary.total_lines} lines")


def audit(entries: list[AuditEntry]) -> Message:
    b = Builder("audit.txt", "Audit log")
    lines = [f"{when(e.at)} · <@{e.actor}> · `{esc(e.event)}`"
             + (f" · {esc(e.environment)}" if e.environment else "")
             + (f" · {esc(e.result)}" if e.result else "")
             + (f" · `{esc(e.subject[:10])}`" if e.subject else "")
             + (f" — {esc(e.detail[:160])}" if e.detail else "")
             if e.actor != "bot" else
             f"{when(e.at)} · bot · `{esc(e.event)}` · {esc(e.environment or '')} {esc(e.result or '')}"
             for e in entries]
    b.section("*Latest audit entries*\n" + ("\n".join(lines) or "_none yet_"))
    return b.build(f"audit: {len(entries)} entries")


def interrupted(item: Interrupted) -> Message:
    what = {"diagnosis": "This diagnosis", "fix": f"The fix *{esc(item.action_title or '')}*",
            "approval": f"The approved fix *{esc(item.action_title or '')}*"}.get(item.kind, "This run")
    return simple(f"⚠️ {what} was interrupted by a bot restart and has been marked *interrupted*. "
                  "It will not be re-run automatically; check the environment and start again if needed.")


def escalation_started(env: str, user: str) -> Message:
    return simple(f"📦 <@{user}> is gathering the escalation bundle for `{esc(env)}` "
                  "(complete proxy log, CI run log, resource usage, latest diagnosis). "
                  "It will appear in the thread.")


def escalation_done(env: str, members: list[str], notes: list[str], lines: int) -> Message:
    text = (f"📦 Escalation bundle for `{esc(env)}`: {', '.join(f'`{esc(m)}`' for m in members)} · "
            f"{lines} proxy log line(s), redacted")
    if notes:
        text += "\n" + "\n".join(f"• {esc(n)}" for n in notes)
    return simple(text)


# ---------------------------------------------------------------- triggers and the watch
_TRIGGER_ICONS = {"deploy_failed": "🚨", "alert_firing": "🔥", "deploy_succeeded": "✅", "alert_resolved": "✅"}


def _link(url: str | None) -> str:
    return f" <{url}|details>" if url and url.startswith(("http://", "https://")) else ""


def trigger_opened(event: TriggerEvent) -> Message:
    """The parent message of an automatic incident (a failed deploy or a firing alert)."""
    icon = _TRIGGER_ICONS.get(event.kind.value, "🚨")
    return simple(f"{icon} *Incident on `{esc(event.environment)}`* ({esc(event.source)}): {esc(event.title)}"
                  f"{_link(event.url)}\nDiagnosing now; progress and report in the thread.")


def trigger_note(event: TriggerEvent, *, closed: bool = False) -> Message:
    """A later event in an open incident's thread (another failure, a resolution, a green deploy)."""
    icon = _TRIGGER_ICONS.get(event.kind.value, "•")
    what = {"deploy_failed": "Another failed deploy", "alert_firing": "Alert firing",
            "deploy_succeeded": "Deploy succeeded", "alert_resolved": "Alert resolved"}[event.kind.value]
    end = " — incident closed." if closed else ""
    return simple(f"{icon} *{what}* on `{esc(event.environment)}`: {esc(event.title)}{_link(event.url)}{end}")


def deploy_succeeded(event: TriggerEvent, watch_minutes: float | None) -> Message:
    """A green deploy with no open incident: posted in the incident channel when a watch starts."""
    watch = f" Watching it for {watch_minutes:g} min." if watch_minutes else ""
    return simple(f"✅ *Deploy of `{esc(event.environment)}` succeeded*: {esc(event.title)}{_link(event.url)}{watch}")


def watch_started(env: str, minutes: float, interval_s: float, origin: str) -> Message:
    return simple(f"👀 Watching `{esc(env)}` for {minutes:g} min (every {interval_s:g}s: container, restarts, "
                  f"/version and /, memory, health-check workers) — {esc(origin)}")


def watch_resumed(env: str, ends_at_text: str) -> Message:
    return simple(f"👀 The watch of `{esc(env)}` resumed after a bot restart (until {esc(ends_at_text)}).")


def watch_healthy(env: str, line: str) -> Message:
    """The one line of a clean window: ``watched N min: stayed healthy (...)``."""
    return simple(f"✅ `{esc(env)}` {esc(line)}")


def watch_degraded(env: str, minutes: float, reasons: list[str]) -> Message:
    lines = "\n".join(f"• {esc(r)}" for r in reasons[:10])
    return simple(f"⚠️ *`{esc(env)}` degraded* after {minutes:g} min of watching:\n{lines}\n"
                  "Diagnosing now; the report follows in this thread.")


def watch_stopped(env: str, user: str, minutes: float) -> Message:
    return simple(f"⏹️ <@{user}> stopped the watch of `{esc(env)}` after {minutes:g} min.")


def watch_failed(env: str, reason: str) -> Message:
    return simple(f"⚠️ The watch of `{esc(env)}` stopped: {esc(reason[:500])}")
