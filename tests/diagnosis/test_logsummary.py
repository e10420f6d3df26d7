"""Log summary: templates with counts (drain3), first error, last lines, collapsed dumps, redaction."""

from __future__ import annotations

import random

from bot.diagnosis.logsummary import mask, summarize_logs

from .builders import logtext, start
from .quirks import fixture


def test_templates_group_similar_lines() -> None:
    """Lines differing in node names and numbers share one template with a count and an example."""
    entries = [*start(), *[(31.0 + i, f"health check failed for node node-{i}: claude cli failed: signal: "
                                      "killed: "
                                      "stdout= stderr=") for i in range(40)]]
    s = summarize_logs(logtext(*entries))
    top = s.templates[0]
    assert top.count == 40 and "signal: killed" in top.template
    assert "<*>" in top.template or "<NUM>" in top.template
    assert top.example.startswith("2025-12-10T") and s.total_lines == len(entries)


def test_first_error_last_lines_and_dump_collapse() -> None:
    """The first error is kept; a goroutine dump keeps its first frames and is collapsed in last_lines."""
    s = summarize_logs(fixture("proxy_panic.log"))
    assert s.first_error is not None and "panic: runtime error" in s.first_error
    assert s.goroutine_dump[0].endswith("panic: runtime error: invalid memory address or nil pointer "
                                        "dereference")
    assert any("health_scheduler.go:142" in ln for ln in s.goroutine_dump)
    assert len(s.last_lines) <= 20 and s.last_lines[-1].startswith("... ") and "collapsed" in s.last_lines[-1]


def test_redacts_before_anything_is_kept() -> None:
    """Credential lines are redacted in templates, examples and last lines, and counted."""
    s = summarize_logs(fixture("proxy_panic.log"))
    blob = s.model_dump_json()
    for secret in ("Adm1n-9f3kQz7w", "sk-ant-api03-q8Zk", "qcc_live_7d1e6a9b"):
        assert secret not in blob
    assert s.redacted_lines == 3


def test_ansi_crlf_and_junk() -> None:
    """ANSI codes and CRs are stripped; blank lines are not counted; junk never raises."""
    text = logtext(*start()).replace("\n", "\r\n").replace("Claude Code", "\x1b[32mClaude Code\x1b[0m")
    s = summarize_logs(text + "\r\n\r\n\ufffd\x00junk\n")
    assert all("\x1b" not in ln and "\r" not in ln for ln in s.last_lines)
    assert s.total_lines == len(start()) + 1
    assert summarize_logs("").total_lines == 0


def test_mask() -> None:
    """Timestamps, IPs, hex and numbers are masked in one pass."""
    assert mask("[mysql] 2025/12/10 06:14:02 packets.go:58 dial 172.18.0.2:3306 0xc000123 took 45ms") == \
        "[mysql] <TS> packets.go:<NUM> dial <IP> <HEX> took <NUM>"


def test_bounded_templates_on_large_logs() -> None:
    """2 MB of varied lines: every line counted, the template count stays bounded.

    The speed on a big log is measured by `make bench` (summarize_50mb), not asserted here.
    """
    rnd = random.Random(7)
    forms = ["[proxy] POST /v1/messages -> 200 node=node-{n} in={a} out={b} {ms}ms",
             "health check failed for node node-{n}: claude cli failed: signal: killed: stdout= stderr=",
             "request id={h} latency={ms}ms", "unique message number {a} about {h} {b}"]
    lines: list[str] = []
    size = 0
    while size < 2_000_000:
        msg = rnd.choice(forms).format(n=rnd.randrange(40), a=rnd.randrange(99999), b=rnd.randrange(900),
                                       ms=rnd.randrange(9000), h=f"{rnd.getrandbits(64):016x}")
        ln = f"2025-12-10T06:14:{len(lines) % 60:02d}.123456789Z 2025/12/10 06:14:{len(lines) % 60:02d} {msg}"
        lines.append(ln)
        size += len(ln) + 1
    text = "\n".join(lines)
    s = summarize_logs(text, max_templates=25)
    assert s.total_lines == len(lines) and len(s.templates) <= 25


def test_zero_failure_counts_are_not_the_first_error() -> None:
    """`all nodes checked: 2 healthy, 0 failed` is a healthy count, not the log's first error."""
    from bot.diagnosis.logsummary import summarize_logs

    text = ("2026-11-29T12:00:00.000000000Z 2026/11/29 12:00:00 [HealthScheduler] all nodes checked: "
            "2 healthy, 0 failed\n"
            "2026-11-29T12:00:01.000000000Z 2026/11/29 12:00:01 health check failed for node n1: timeout\n")
    assert "health check failed for node n1" in (summarize_logs(text).first_error or "")
