"""The proxy-log parser reads `docker logs --timestamps` and grep output in the service's real format."""

from __future__ import annotations

import pytest

from bot.diagnosis.logparse import parse_docker_logs, parse_log_line, parse_log_lines

from .quirks import QUIRKS, fixture


@pytest.mark.parametrize("quirk", QUIRKS)
def test_docker_logs_go_and_bare_lines(quirk: str) -> None:
    """Docker timestamp then a Go `2006/01/02 15:04:05` line, or a bare panic/goroutine line."""
    lines = parse_docker_logs(QUIRKS[quirk](fixture("proxy_panic.log")))
    junk = 3 if quirk in ("junk", "all") else 0  # the warning and the two U+FFFD lines are kept as bare lines
    kinds = [ln.kind for ln in lines]
    assert kinds.count("go") == 13 and kinds.count("bare") == 9 + junk
    version = next(ln for ln in lines if "qcc_plus version" in ln.message)
    assert version.ts is not None and version.go_time == "2025/12/10 06:14:02"
    assert version.message.startswith("qcc_plus version: v1.9.4")
    panic = next(ln for ln in lines if ln.message.startswith("panic: "))
    assert panic.kind == "bare" and panic.raw.startswith("2025-12-10T06:14:33.311234638Z panic:")
    frame = next(ln for ln in lines if "health_scheduler.go:142" in ln.message)
    assert frame.message.startswith("\t/app/internal/"), "the frame's tab survives the timestamp prefix"


def test_log_line_variants() -> None:
    """Driver lines, lines without --timestamps, blank bodies and grep separators."""
    drv = parse_log_line("2025-12-10T06:14:02.1Z [mysql] 2025/12/10 06:14:02 packets.go:58 unexpected EOF")
    assert drv is not None and drv.kind == "driver" and drv.message == "[mysql] packets.go:58 unexpected EOF"
    plain = parse_log_line("2025/12/10 06:14:02 using health check mode: cli")
    assert plain is not None and plain.ts is None and plain.message == "using health check mode: cli"
    assert parse_log_line("2025-12-10T06:14:02.1Z ") is None
    assert parse_log_line("--") is None and parse_log_line("\r") is None
    bad = parse_log_line("2025-12-10T06:14:02.1Z 2025/12/10 06:14:02 node \ufffd\ufffd failed")
    assert bad is not None and "\ufffd" in bad.message


def test_grep_output_drops_separators() -> None:
    """`grep -A N` output: the `--` group separators are not lines."""
    lines = parse_log_lines(fixture("grep_panic.txt"))
    assert all(ln.raw != "--" for ln in lines)
    assert [ln.message for ln in lines if ln.message.startswith("panic")] == [
        "panic: runtime error: invalid memory address or nil pointer dereference", "panic: again"]


def test_huge_and_hostile_input_never_raises() -> None:
    """Binary-ish junk, NULs and a 1 MB line parse without an exception."""
    text = "\x00\x01\ufffd" * 1000 + "\n" + "x" * 1_000_000 + "\n2025-13-99T99:99:99Z bad ts\n"
    lines = parse_docker_logs(text)
    assert len(lines) == 3
