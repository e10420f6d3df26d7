"""Reading the proxy log: fatal classes, runs of a restarted container, start-up phases."""

from __future__ import annotations

import pytest

from bot.diagnosis.logparse import parse_docker_logs
from bot.diagnosis.logscan import classify, health_signals, scan_run, split_runs

from .builders import logtext, start


@pytest.mark.parametrize(("message", "cls", "code"), [
    ("Error 1054 (42S22): Unknown column 'health_check_model' in 'field list'", "migration", 1054),
    ("Error 1054: Unknown column 'health_check_model' in 'field list'", "migration", 1054),
    ("Error 1060 (42S21): Duplicate column name 'health_check_model'", "migration", 1060),
    ("Error 1146 (42S02): Table 'qcc_proxy.nodes' doesn't exist", "migration", 1146),
    ("Error 1064 (42000): You have an error in your SQL syntax", "migration", 1064),
    ("Error 1045 (28000): Access denied for user 'qcc'@'172.18.0.3' (using password: YES)", "access_denied",
     1045),
    ("Error 1142 (42000): ALTER command denied to user 'qcc'@'%' for table 'nodes'", "access_denied", 1142),
    ("Error 1049 (42000): Unknown database 'qcc_plus'", "unknown_database", 1049),
    ("dial tcp 172.18.0.2:3306: connect: connection refused", "mysql_unreachable", None),
    ("dial tcp: lookup mysql on 127.0.0.11:53: no such host", "mysql_unreachable", None),
    ("context deadline exceeded", "mysql_unreachable", None),
    ("[mysql] packets.go:58 unexpected EOF", "mysql_unreachable", None),
    ("invalid DSN: missing the slash separating the database name", "invalid_dsn", None),
    ("listen tcp :8001: bind: address already in use", "bind", None),
    ("panic: runtime error: invalid memory address or nil pointer dereference", "panic", None),
    ("fatal error: concurrent map read and map write", "runtime_fatal", None),
    ("open /data/x: No space left on device", "disk_full", None),
    ("health check failed for node n1: dial tcp 1.2.3.4:443: i/o timeout", None, None),
    ("[HealthScheduler] checking all nodes...", None, None),
    ("using MySQL storage: ***@tcp(mysql:3306)/qcc_proxy", None, None),
])
def test_classify(message: str, cls: str | None, code: int | None) -> None:
    """Driver codes with and without SQLSTATE, network errors, panics; health-check lines are never fatal."""
    assert classify(message) == (cls, code)


@pytest.mark.parametrize(("upto", "phase"), [
    ("health check mode", "none"), ("store: mysql pool", "pool_configured"),
    ("[migration] start", "migrating"), ("using MySQL", "mysql_storage"),
])
def test_phase_from_last_phase_line_before_fatal(upto: str, phase: str) -> None:
    """The phase is read from the last phase line before the fatal one."""
    lines = parse_docker_logs(logtext(*start(upto), (2.0, "Error 1054: Unknown column 'x' in 'field list'")))
    info = scan_run(lines, ended=True)
    assert info.phase == phase and info.fatal is not None and info.fatal_code == 1054
    assert info.prev_line is not None and upto in info.prev_line.message


def test_transient_error_in_a_running_proxy_is_not_fatal() -> None:
    """An error followed by normal start-up lines in a live run is not the fatal line."""
    lines = parse_docker_logs(logtext(*start("store: mysql pool"), (1.05, "[mysql] packets.go:58 unexpected "
                                                                          "EOF"),
                                      *start()[4:], (30.0, "[HealthScheduler] checking all nodes...")))
    assert scan_run(lines, ended=False).fatal is None


def test_split_runs_on_restart() -> None:
    """Each entrypoint banner after other lines starts a new run."""
    run = [*start("using MySQL"), (2.0, "Error 1054: Unknown column 'x' in 'field list'")]
    again = [(t + 9, m, *r) for t, m, *r in run]
    third = [(t + 20, m, *r) for t, m, *r in start("store")]
    lines = parse_docker_logs(logtext(*run, *again, *third))
    runs = split_runs(lines)
    assert len(runs) == 3 and all(r[0].message.startswith("==> qcc_plus") for r in runs)


def test_health_signals() -> None:
    """Killed checks, nodes at threshold, the node total and 503 answers are collected once each."""
    lines = parse_docker_logs(logtext(
        (31.0, "[HealthScheduler] total nodes to check: 2 (concurrency=2, cli_concurrency=2)"),
        (61.0, "health check failed for node a: claude cli failed: signal: killed: stdout= stderr="),
        (61.0, "health check failed for node a: claude cli failed: signal: killed: stdout= stderr="),
        (92.0, "[health] node a reached failure threshold (3/3), marking unavailable"),
        (99.0, "[proxy] POST /v1/messages -> 503 no available node (0 of 2 healthy) 1ms")))
    hs = health_signals(lines)
    assert len(hs.killed) == 1 and list(hs.threshold_nodes) == ["a"] and hs.total_nodes == 2
    assert hs.concurrency == "concurrency=2, cli_concurrency=2" and len(hs.unavailable) == 1
