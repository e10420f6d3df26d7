"""The diagnosis engine: step outputs + context in, ranked likely causes out. Pure.

``analyze(steps, ctx, *, started_at, duration_s, extra_secrets=None) -> Diagnosis``:

1. :func:`~bot.diagnosis.facts.collect_facts` parses every step into :class:`Facts`;
2. the ordered :data:`~bot.diagnosis.rules.RULES` are folded over the facts (a rule that
   raises is skipped, never the diagnosis);
3. :func:`rank` orders findings by confidence (rule order breaks ties, and a tie at the top is
   explained in ``detail``), lifts a crash loop's underlying cause above it, drops ``healthy``
   next to a real finding and adds ``unknown`` (saying what is missing) when nothing is
   convincing;
4. fix actions and the log summary are attached, and every string is redacted.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from bot.diagnosis import changes as changes_mod
from bot.diagnosis import checklist as checklist_mod
from bot.diagnosis import hypotheses as hypotheses_mod
from bot.diagnosis.actions import build_actions
from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.evidence import Finding, finding
from bot.diagnosis.facts import Facts, collect_facts
from bot.diagnosis.logscan import CLASS_TO_CAUSE
from bot.diagnosis.logsummary import summarize_logs
from bot.diagnosis.redact import redact_text
from bot.diagnosis.rules import RULES
from bot.models import Action, Cause, CauseId, ChangeSummary, CheckItem, Diagnosis, Hypothesis, StepResult
from bot.runbook.steps import StepId

log = logging.getLogger(__name__)

CONVINCING = 0.3  # below this the top cause is reported together with `unknown`
TIE = 0.005


STRICT = False  # the test suite sets this (tests/conftest.py): a rule that raises fails the test


def run_rules(facts: Facts, *, strict: bool | None = None) -> list[tuple[int, Finding]]:
    """``(rule index, finding)`` for every rule that fired.

    A rule that raises is logged and skipped, so one broken rule never loses the diagnosis;
    with ``strict`` (default :data:`STRICT`) the exception propagates instead.
    """
    strict = STRICT if strict is None else strict
    out = []
    for i, rule in enumerate(RULES):
        try:
            hit = rule(facts)
        except Exception:
            if strict:
                raise
            log.exception("diagnosis rule %s failed", getattr(rule, "__name__", rule))
            continue
        if hit is not None:
            out.append((i, hit))
    return out


def _host_unreachable(facts: Facts) -> Cause | None:
    """``unknown`` saying the host itself could not be reached, when no SSH step ran at all."""
    status = facts.availability(StepId.CONTAINER_STATUS)
    shell_steps = [a for sid, a in facts.steps.items() if sid != StepId.SCHEMA_NODES]
    if status.status != "error" or not shell_steps or any(a.ok or a.status == "failed" for a in shell_steps):
        return None
    return finding(CauseId.UNKNOWN, "The host could not be reached over SSH: nothing on it was checked", 0.2,
                   [status.describe(StepId.CONTAINER_STATUS)],
                   "`ssh` to the host (same user, key and known_hosts as the bot) runs `true` successfully",
                   "Every step on the host failed before it ran, so there is no evidence about the proxy "
                   "yet. Fix the SSH access named in the evidence (address, key, host key), then re-run.")


def unknown_cause(facts: Facts) -> Cause:
    """``unknown`` naming what evidence is missing (never a guess)."""
    unreachable = _host_unreachable(facts)
    if unreachable is not None:
        return unreachable
    missing = []
    if facts.containers is None and facts.inspect is None:
        why = "; ".join(facts.missing(StepId.CONTAINER_STATUS, StepId.CONTAINER_INSPECT))
        missing.append(f"the container status ({why})")
    elif facts.proxy is None and facts.proxy_state is None:
        missing.append("a proxy container")
    if facts.logs_empty:
        missing.append("proxy log lines (" + ("empty" if facts.ok(StepId.PROXY_LOGS) else
                                              facts.availability(StepId.PROXY_LOGS).describe(StepId.PROXY_LOGS))
                       + ")")
    failed = [a.describe(s) for s, a in facts.steps.items() if not a.ok]
    evidence = [*([facts.proxy_row] if facts.proxy_row else []), *failed[:6]]
    run = facts.run
    if facts.proxy_running and facts.version is None and run is not None and run.listening is not None:
        missing.append(f"an answer from /version on 127.0.0.1:{facts.ctx.proxy_port} (the proxy logged "
                       "that it listens but does not answer)")
    what = "; ".join(missing) or "a line or state that matches a known failure"
    return finding(CauseId.UNKNOWN, "Not enough evidence to name a cause", 0.2, evidence,
                   "Re-run the diagnosis once the missing evidence is available",
                   f"Missing: {what}. The bot does not guess without evidence.")


def rank(found: list[tuple[int, Finding]], facts: Facts) -> list[Cause]:
    """Order findings (see module doc); returns causes, highest confidence first."""
    best: dict[str, tuple[int, Finding]] = {}
    for idx, f in found:
        if f.id not in best or f.confidence > best[f.id][1].confidence:
            best[f.id] = (idx, f)
    loop = best.get("crash_loop")
    under = CLASS_TO_CAUSE.get(facts.fatal_class or "")
    if loop and under and under in best and best[under][1].confidence <= loop[1].confidence:
        idx, u = best[under]
        best[under] = (idx, u.model_copy(update={
            "confidence": min(0.99, loop[1].confidence + 0.05),
            "detail": (u.detail + " Ranked above crash_loop: it is why each run dies.").strip()}))
    if "healthy" in best and any(c.confidence >= 0.6 for k, (_, c) in best.items() if k != "healthy"):
        del best["healthy"]
    ordered = sorted(best.values(), key=lambda p: (-p[1].confidence, p[0]))
    causes = [c.model_copy() for _, c in ordered]
    if not causes or causes[0].confidence < CONVINCING:
        if not any(c.id == "unknown" for c in causes):
            causes.insert(0, unknown_cause(facts))
        causes.sort(key=lambda c: (c.id != "unknown", -c.confidence))
    if len(causes) > 1 and abs(causes[0].confidence - causes[1].confidence) < TIE:
        top, second = causes[0], causes[1]
        causes[1] = second.model_copy(update={
            "confidence": max(0.0, round(top.confidence - 0.01, 3)),
            "detail": (second.detail + f" Equal evidence to {top.id}; ranked second because the {top.id} "
                                       "rule is "
                                       "the more specific one.").strip()})
        causes[0] = top.model_copy(update={
            "detail": (top.detail + f" Tied with {second.id} on evidence; ranked first as the more specific "
                                    "rule.").strip()})
    return causes


def _clean_cause(c: Cause, extras: list[str] | None) -> Cause:
    return c.model_copy(update={
        "title": redact_text(c.title, extras)[0], "rule_out": redact_text(c.rule_out, extras)[0],
        "detail": redact_text(c.detail, extras)[0],
        "evidence": [redact_text(e, extras)[0] for e in c.evidence]})


def _clean_action(a: Action, extras: list[str] | None) -> Action:
    return a.model_copy(update={"title": redact_text(a.title, extras)[0],
                                "precondition": redact_text(a.precondition, extras)[0],
                                "params": {k: redact_text(v, extras)[0] for k, v in a.params.items()}})


def redact_step(s: StepResult, extras: list[str] | None) -> tuple[StepResult, int]:
    """``s`` with its output, stderr, error and command redacted, and how many lines that changed."""
    n = 0
    update: dict[str, Any] = {}
    for field in ("output", "stderr", "error", "command"):
        value = getattr(s, field)
        if value:
            new, k = redact_text(value, extras)
            update[field], n = new, n + k
    return s.model_copy(update=update), n


def _clean_value(v: Any, extras: list[str] | None) -> Any:
    return redact_text(v, extras)[0] if isinstance(v, str) else v


def analyze(steps: list[StepResult], ctx: AnalysisContext, *, started_at: datetime, duration_s: float,
            extra_secrets: list[str] | None = None, strict: bool | None = None) -> Diagnosis:
    """Analyze step results. Never raises on odd output; returns ``unknown`` when evidence is thin.

    ``strict`` (default :data:`STRICT`, which the test suite turns on): a rule, parser or action
    builder that raises propagates instead of being logged and skipped.

    ``extra_secrets`` are literals (e.g. the MySQL password) redacted wherever they appear.
    ``Diagnosis.redacted_lines`` counts the lines of step output that redaction changed.
    """
    strict = STRICT if strict is None else strict
    try:
        facts = collect_facts(steps, ctx, strict=strict)
    except Exception:  # parsers never raise; this is a last line of defence
        if strict:
            raise
        log.exception("collecting facts failed")
        facts = Facts(ctx=ctx)
    causes = rank(run_rules(facts, strict=strict), facts)
    try:
        actions = build_actions(causes, facts, ctx)
    except Exception:
        if strict:
            raise
        log.exception("building actions failed")
        actions = []
    checklist, hypotheses, changes = _evidence_tables(facts, causes, extra_secrets, strict=strict)
    summary = summarize_logs(facts.log_text, extra_secrets=extra_secrets) if facts.log_text else None
    clean_steps, redacted = [], 0
    for s in steps:
        cs, n = redact_step(s, extra_secrets)
        clean_steps.append(cs)
        redacted += n
    return Diagnosis(
        environment=ctx.environment,
        started_at=started_at,
        duration_s=duration_s,
        steps=clean_steps,
        causes=[_clean_cause(c, extra_secrets) for c in causes],
        actions=[_clean_action(a, extra_secrets) for a in actions],
        log_summary=summary,
        redacted_lines=redacted,
        facts={k: _clean_value(v, extra_secrets) for k, v in facts.summary().items()},
        checklist=checklist, hypotheses=hypotheses, changes=changes,
    )


def _evidence_tables(facts: Facts, causes: list[Cause], extras: list[str] | None, *, strict: bool = False
                     ) -> tuple[list[CheckItem], list[Hypothesis], ChangeSummary | None]:
    """evidence: the checklist, the hypothesis table and what changed, redacted (issue 10)."""
    try:
        items = checklist_mod.build_checklist(facts)
        hyps = hypotheses_mod.build_hypotheses(facts, causes, items)
        changes = changes_mod.build_changes(facts)
    except Exception:  # the tables must not lose the diagnosis (strict: tests see the bug)
        if strict:
            raise
        log.exception("building the evidence tables failed")
        return [], [], None
    items = [i.model_copy(update={"line": redact_text(i.line, extras)[0]}) for i in items]
    hyps = [h.model_copy(update={"line": redact_text(h.line, extras)[0]}) for h in hyps]
    if changes is not None:
        changes = changes.model_copy(update={"ci_lines": [redact_text(x, extras)[0] for x in changes.ci_lines],
                                             "head_subject": redact_text(changes.head_subject or "", extras)[0]
                                             or None})
    return items, hyps, changes
