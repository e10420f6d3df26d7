"""Helpers the rules share: the :data:`Finding` type and verbatim evidence quoting.

Evidence is quoted, never paraphrased: log lines with their docker timestamps, the
container status row (``qcc_test_proxy Exited (1) 2 minutes ago``), the schema fact, the
``ss`` row of the process holding the port. Quotes are capped in length so a 5 KB line
cannot flood a Slack message.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.diagnosis.facts import Facts
from bot.diagnosis.logparse import LogLine
from bot.diagnosis.logscan import is_dump_line
from bot.models import Cause, CauseId

Finding = Cause  # a rule's result: a likely cause with confidence, evidence, rule_out and detail
Rule = Callable[[Facts], Finding | None]

MAX_QUOTE = 400


def quote(text: str) -> str:
    """``text`` trimmed to :data:`MAX_QUOTE` characters."""
    text = text.strip()
    return text if len(text) <= MAX_QUOTE else text[: MAX_QUOTE - 1] + "…"


def q(line: LogLine | None) -> list[str]:
    """The raw line (timestamp included) as a one-element list, or an empty list."""
    return [quote(line.raw)] if line is not None else []


def status_row(f: Facts) -> list[str]:
    """The proxy's container status row, when known."""
    return [f.proxy_row] if f.proxy_row else []


def following(f: Facts, line: LogLine, n: int = 4) -> list[LogLine]:
    """Up to ``n`` goroutine-dump lines that follow ``line`` (header and first frames)."""
    for source in [f.log or [], *f.grep.values()]:
        for i, ln in enumerate(source):
            if ln.raw == line.raw:
                out: list[LogLine] = []
                for nxt in source[i + 1:]:
                    if not is_dump_line(nxt.message) or len(out) >= n:
                        break
                    if nxt.message.strip():
                        out.append(nxt)
                return out
    return []


def phase_note(f: Facts) -> str:
    """One sentence on the start-up phase read from the last phase line before the fatal one."""
    run = f.run
    if run is None or run.fatal is None:
        return ""
    notes = {
        "none": "no `store:` line before it, so the DSN was malformed or start-up never reached the store",
        "pool_configured": "the last phase line before it is `store: mysql pool configured`, so connecting, "
                           "authenticating or the schema DDL failed",
        "migrating": "it came during the `[migration]` steps, so the schema DDL failed",
        "mysql_storage": "the last phase line before it is `using MySQL storage`, so loading the nodes "
                         "failed",
        "sqlite_storage": "the proxy had fallen back to SQLite (`using SQLite storage`) before it",
        "listening": "it came after the listening line, so start-up had finished",
        "unknown": "the start of this run is outside the captured log, so the phase is unknown",
    }
    caveat = " (read from grep output, which can miss phase lines)" if f.log_source == "grep" else ""
    return "Start-up phase: " + notes.get(run.phase, run.phase) + caveat + "."


def finding(cause_id: CauseId, title: str, confidence: float, evidence: list[str], rule_out: str,
            detail: str = "") -> Finding:
    """Build a finding; confidence is clamped to 0..1 and evidence de-duplicated, in order.

    Raises ValueError when ``cause_id`` is not a :class:`CauseId` (a string that is not in the
    vocabulary never reaches the model, where it would be swallowed as a failed rule)."""
    cause_id = CauseId(cause_id)
    ev = [quote(e) for e in dict.fromkeys(e for e in evidence if e and e.strip())]
    return Cause(id=cause_id, title=title,  # ids are checked by the model
                 confidence=max(0.0, min(1.0, round(confidence, 3))), evidence=ev, rule_out=rule_out,
                 detail=detail)
