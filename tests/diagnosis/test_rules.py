"""Each rule in isolation: the evidence that makes it fire, and the evidence that must not."""

from __future__ import annotations

from bot.diagnosis import crashrules, rules
from bot.diagnosis.checklist import build_checklist
from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.facts import Facts

from .builders import (
    FREE_LOW,
    FREE_OK,
    START,
    facts,
    healthy_host,
    inspect_obj,
    logtext,
    ps_row,
    ps_workers,
    schema,
    start,
    step,
)

EXITED_1 = ps_row("qcc_test_proxy", "Exited (1) 2 minutes ago")
DAEMON = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"


def exited(code: int, **kw: object) -> dict[str, object]:
    return {"container_status": ps_row("qcc_test_proxy", f"Exited ({code}) 2 minutes ago"),
            "container_inspect": [inspect_obj("qcc_test_proxy", "exited", exit_code=code, **kw)]}  # type: ignore[arg-type]


def _healthy(f: Facts) -> bool:
    hit = rules.healthy(f)
    return hit is not None and hit.id == "healthy"


def up() -> dict[str, object]:
    return {"container_status": ps_row("qcc_test_proxy", "Up 5 minutes"),
            "container_inspect": [inspect_obj("qcc_test_proxy", "running", pid=3990)]}


# ---------------------------------------------------------------- migration
def test_migration_1054_phase_and_schema_confirm(ctx: AnalysisContext) -> None:
    """Error 1054 after `using MySQL storage`, column missing in the schema: migration_failed at 0.95."""
    log = logtext(*start("using MySQL"), (2.0, "Error 1054 (42S22): Unknown column 'health_check_model' in "
                                               "'field list'"))
    f = facts(ctx, **exited(1), proxy_logs=log, schema_nodes=schema(False))
    assert f.run is not None and f.run.phase == "mysql_storage"
    hit = crashrules.migration_failed(f)
    assert hit is not None and hit.confidence == 0.95
    assert any("Unknown column 'health_check_model'" in e and e.startswith("2025-12-10T")
               for e in hit.evidence)
    assert any("has no column health_check_model" in e for e in hit.evidence)
    assert "using MySQL storage" in hit.detail


def test_migration_without_sqlstate_and_column_present_weakens(ctx: AnalysisContext) -> None:
    """Old driver text (no `(42S22)`) still matches; the column present now weakens the finding."""
    log = logtext(*start("using MySQL"), (2.0, "Error 1054: Unknown column 'health_check_model' in 'field "
                                               "list'"))
    strong = crashrules.migration_failed(facts(ctx, **exited(1), proxy_logs=log, schema_nodes=schema(False)))
    weak = crashrules.migration_failed(facts(ctx, **exited(1), proxy_logs=log, schema_nodes=schema(True)))
    unknown = crashrules.migration_failed(facts(ctx, **exited(1), proxy_logs=log))
    assert strong and weak and unknown
    assert weak.confidence < unknown.confidence < strong.confidence


def test_migration_duplicate_column(ctx: AnalysisContext) -> None:
    """Error 1060 in the [migration] phase: migration_failed, the existing column quoted."""
    log = logtext(*start("[migration] start"), (1.3, "Error 1060 (42S21): Duplicate column name "
                                                     "'health_check_model'"))
    f = facts(ctx, **exited(1), proxy_logs=log, schema_nodes=schema(True))
    assert f.run is not None and f.run.phase == "migrating"
    hit = crashrules.migration_failed(f)
    assert hit is not None and "not idempotent" in hit.detail


def test_migration_not_from_a_running_proxy_or_from_nothing(ctx: AnalysisContext) -> None:
    """No fatal line and the proxy Up: no migration finding even if the schema lacks the column."""
    assert crashrules.migration_failed(facts(ctx, **up(), proxy_logs=logtext(*start()),
                                             schema_nodes=schema(False))) is None
    assert crashrules.migration_failed(facts(ctx, **up())) is None


# ---------------------------------------------------------------- mysql
def test_mysql_unavailable_refused_with_mysql_down(ctx: AnalysisContext) -> None:
    """dial tcp ... connection refused after the pool line, MySQL container Exited: quoted, strong."""
    log = logtext(*start("store: mysql pool"), (1.1, "dial tcp 172.18.0.2:3306: connect: connection refused"))
    mysql = ps_row("qcc_test_mysql", "Exited (0) 1 minute ago", "mysql")
    f = facts(ctx, container_status=EXITED_1 + "\n" + mysql, proxy_logs=log)
    hit = crashrules.mysql_unavailable(f)
    assert hit is not None and hit.confidence > 0.9
    assert "qcc_test_mysql Exited (0) 1 minute ago" in hit.evidence
    assert f.run is not None and f.run.phase == "pool_configured"


def test_mysql_deadline_is_slow_not_gone(ctx: AnalysisContext) -> None:
    """A bare `context deadline exceeded` after the pool line says slow MySQL (metadata lock)."""
    log = logtext(*start("store: mysql pool"), (6.0, "context deadline exceeded"))
    hit = crashrules.mysql_unavailable(facts(ctx, **exited(1), proxy_logs=log))
    assert hit is not None and "metadata lock" in hit.detail


def test_health_check_dial_errors_are_not_mysql(ctx: AnalysisContext) -> None:
    """`dial tcp` inside a health-check failure is upstream, not MySQL."""
    log = logtext(*start(), (31.0, "health check failed for node n1: dial tcp 1.2.3.4:443: i/o timeout"))
    f = facts(ctx, container_status=EXITED_1 + "\n" + ps_row("qcc_test_mysql", "Up 3 days", "mysql"),
              proxy_logs=log)
    assert f.fatal is None and crashrules.mysql_unavailable(f) is None


def test_access_denied_codes(ctx: AnalysisContext) -> None:
    """1045 and 1142 are access problems; 1049 is a configuration problem (wrong database name)."""
    for msg, rule in (("Error 1045 (28000): Access denied for user 'qcc'@'172.18.0.3' (using password: YES)",
                       crashrules.mysql_access_denied),
                      ("Error 1142: ALTER command denied to user 'qcc'@'172.18.0.3' for table 'nodes'",
                       crashrules.mysql_access_denied),
                      ("Error 1049 (42000): Unknown database 'qcc_plus'", crashrules.config_error)):
        f = facts(ctx, **exited(1), proxy_logs=logtext(*start("store: mysql pool"), (1.1, msg)))
        hit = rule(f)
        assert hit is not None and any(msg in e for e in hit.evidence), msg
        assert crashrules.migration_failed(f) is None


# ---------------------------------------------------------------- config
def test_config_invalid_dsn_and_sqlite(ctx: AnalysisContext) -> None:
    """invalid DSN with no store: line; SQLite storage while MySQL is expected (even when Up)."""
    log = logtext(*start("health check mode"), (1.0, "invalid DSN: missing the slash separating the database "
                                                     "name"))
    f = facts(ctx, **exited(1), proxy_logs=log)
    assert f.run is not None and f.run.phase == "none"
    assert crashrules.config_error(f) is not None
    sqlite = logtext(*start("health check mode"), (1.0, "using SQLite storage: /data/qcc_proxy.db"),
                     (1.4, "Claude Code proxy listening on :8001"))
    hit = crashrules.config_error(facts(ctx, **up(), proxy_logs=sqlite))
    assert hit is not None and "SQLite" in hit.title
    no_mysql = ctx.model_copy(update={"has_mysql": False})
    assert crashrules.config_error(facts(no_mysql, **up(), proxy_logs=sqlite)) is None


# ---------------------------------------------------------------- panic / fatal / stop / kill
PANIC = [(31.0, "panic: runtime error: invalid memory address or nil pointer dereference", True),
         (31.0, "goroutine 57 [running]:", True),
         (31.0, "github.com/yxhpy/qcc_plus/internal/proxy.(*HealthScheduler).checkNode(0xc0001f2000)", True),
         (31.0, "\t/app/internal/proxy/health_scheduler.go:142 +0x8e", True)]


def test_panic_quotes_first_frames(ctx: AnalysisContext) -> None:
    """Exit 2 with `panic:`: panic, quoting the panic line and the first /app/internal frame."""
    hit = crashrules.panic(facts(ctx, **exited(2), proxy_logs=logtext(*start(), *PANIC)))
    assert hit is not None and hit.confidence >= 0.9
    assert any("health_scheduler.go:142" in e for e in hit.evidence)


def test_exit2_without_panic_is_a_stop(ctx: AnalysisContext) -> None:
    """Exit 2, grep_panic empty: not a panic; `unknown` saying it was stopped."""
    f = facts(ctx, **exited(2), proxy_logs=logtext(*start()),
              grep_panic=step("grep_panic", "", exit_status=1))
    assert crashrules.panic(f) is None and crashrules.runtime_fatal(f) is None
    hit = crashrules.exit_without_crash(f)
    assert hit is not None and hit.id == "unknown" and "docker stop" in hit.title


def test_runtime_fatal(ctx: AnalysisContext) -> None:
    """`fatal error: concurrent map read and map write` is runtime_fatal, not panic."""
    log = logtext(*start(), (33.0, "fatal error: concurrent map read and map write", True),
                  (33.0, "goroutine 88 [running]:", True))
    f = facts(ctx, **exited(2), proxy_logs=log)
    assert crashrules.runtime_fatal(f) is not None and crashrules.panic(f) is None


def test_exit137_needs_memory_evidence(ctx: AnalysisContext) -> None:
    """137 alone is not OOM; OOMKilled, a kernel kill of ccproxy or host memory at zero makes it OOM."""
    plain = facts(ctx, **exited(137), proxy_logs=logtext(*start()), host_memory=FREE_OK,
                  kernel_oom=step("kernel_oom", "", exit_status=1))
    assert crashrules.oom_killed(plain) is None
    kill = crashrules.exit_without_crash(plain)
    assert kill is not None and kill.id == "unknown" and "OOMKilled=false" in " ".join(kill.evidence)
    flagged = crashrules.oom_killed(facts(ctx, **exited(137, oom=True, memory=512 << 20)))
    assert flagged is not None and "OOMKilled=true" in " ".join(flagged.evidence)
    kernel = facts(ctx, **exited(137), kernel_oom="Dec 10 06:15:11 h kernel: Out of memory: Killed process "
                                                  "3990 "
                                                  "(ccproxy) total-vm:2893320kB")
    assert crashrules.oom_killed(kernel) is not None
    assert crashrules.oom_killed(facts(ctx, **exited(137), host_memory=FREE_LOW)) is not None


# ---------------------------------------------------------------- overload
def test_overload_while_up(ctx: AnalysisContext) -> None:
    """signal: killed + many claude processes + host memory at zero: overload even though Up."""
    log = logtext(*start(), (31.0, "[HealthScheduler] total nodes to check: 6 (concurrency=6, "
                                   "cli_concurrency=6)"),
                  *[(61.0, f"health check failed for node n{i}: claude cli failed: signal: killed: stdout= "
                           "stderr=")
                    for i in range(6)])
    f = facts(ctx, **up(), proxy_logs=log, host_processes=ps_workers(8), host_memory=FREE_LOW)
    hit = rules.startup_health_check_overload(f)
    assert hit is not None and hit.confidence >= 0.8
    assert any("signal: killed" in e for e in hit.evidence) and "still Up" in hit.detail
    assert not _healthy(f)


def test_overload_needs_health_check_signals(ctx: AnalysisContext) -> None:
    """Low memory alone, or claude processes alone, is not an overload finding."""
    assert rules.startup_health_check_overload(facts(ctx, **up(), host_memory=FREE_LOW)) is None
    assert rules.startup_health_check_overload(facts(ctx, **up(), host_processes=ps_workers(8))) is None


# ---------------------------------------------------------------- containers, deploy, docker
def test_deploy_in_progress_not_container_missing(ctx: AnalysisContext) -> None:
    """No containers while deploy-server.sh runs: deploy_in_progress, and container_missing stays silent."""
    f = facts(ctx, container_status="", deploy_running="  24117   95 /bin/bash ./scripts/deploy-server.sh "
                                                       "test\n")
    assert rules.deploy_in_progress(f) is not None and rules.container_missing(f) is None
    missing = facts(ctx, container_status=ps_row("qcc_test_mysql", "Up 3 days", "mysql"),
                    deploy_running=step("deploy_running", "", exit_status=1))
    hit = rules.container_missing(missing)
    assert hit is not None and hit.confidence == 0.85


def test_container_missing_needs_evidence(ctx: AnalysisContext) -> None:
    """A failed `docker ps` is no evidence of absence; an unknown deploy state lowers confidence."""
    failed = step("container_status", status="error")
    assert rules.container_missing(facts(ctx, container_status=failed)) is None
    hit = rules.container_missing(facts(ctx, container_status=""))
    assert hit is not None and hit.confidence == 0.6 and "not ruled out" in hit.detail


def test_docker_unresponsive(ctx: AnalysisContext) -> None:
    """The daemon error text, or docker steps timing out while the host answers."""
    down = facts(ctx, container_status=step("container_status", status="failed", stderr=DAEMON,
                                            error="exit status 1: " + DAEMON))
    hit = rules.docker_unresponsive(down)
    assert hit is not None and any("Cannot connect to the Docker daemon" in e for e in hit.evidence)
    hung = facts(ctx, container_status=step("container_status", status="timeout", error="timed out after "
                                                                                        "15s"),
                 container_inspect=step("container_inspect", status="timeout", error="timed out after 15s"),
                 host_memory=FREE_OK)
    assert (rules.docker_unresponsive(hung) or pytest_fail()).confidence >= 0.7
    slow = facts(ctx, **up(), resource_usage=step("resource_usage", status="timeout", error="timed out"))
    assert (rules.docker_unresponsive(slow) or pytest_fail()).confidence < 0.5


def pytest_fail():  # noqa: ANN201 - helper that fails with a readable message
    raise AssertionError("rule did not fire")


# ---------------------------------------------------------------- port, disk
def test_port_conflict_bind_and_created(ctx: AnalysisContext) -> None:
    """bind: address already in use with the holder; Created with another container publishing the port."""
    log = logtext(*start(), (1.5, "listen tcp :8001: bind: address already in use"))
    ss = 'LISTEN 0 4096 *:8001 *:* users:(("cccli",pid=31337,fd=7))'
    hit = rules.port_conflict(facts(ctx, **exited(1), proxy_logs=log, port_listeners=ss))
    assert hit is not None and any('"cccli",pid=31337' in e for e in hit.evidence)
    squat = ps_row("qcc_test-proxy-1", "Up 3 days", ports="0.0.0.0:8001->8001/tcp")
    created = facts(ctx, container_status=ps_row("qcc_test_proxy", "Created") + "\n" + squat,
                    port_publishers=squat,
                    port_listeners='LISTEN 0 4096 0.0.0.0:8001 0.0.0.0:* '
                                   'users:(("docker-proxy",pid=2211,fd=4))')
    hit = rules.port_conflict(created)
    assert hit is not None and hit.confidence >= 0.85
    assert any("qcc_test-proxy-1 Up 3 days" in e for e in hit.evidence)


def test_own_published_port_is_not_a_conflict(ctx: AnalysisContext) -> None:
    """The running proxy's own docker-proxy on 8001 is not a conflict."""
    own = ps_row("qcc_test_proxy", "Up 5 minutes", ports="0.0.0.0:8001->8001/tcp")
    f = facts(ctx, container_status=own, port_publishers=own,
              port_listeners='LISTEN 0 4096 0.0.0.0:8001 0.0.0.0:* users:(("docker-proxy",pid=2211,fd=4))')
    assert rules.port_conflict(f) is None


def test_disk_full(ctx: AnalysisContext) -> None:
    """df at 95 % or more, or `no space left on device` in any output."""
    df = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda1 100 97 3 97% /\n"
    assert rules.disk_full(facts(ctx, **exited(1), host_disk=df)) is not None
    log = logtext(*start(), (2.0, "write /data/x: no space left on device"))
    hit = rules.disk_full(facts(ctx, **exited(1), proxy_logs=log))
    assert hit is not None and hit.confidence >= 0.88
    fine = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda1 100 40 60 40% /\n"
    assert rules.disk_full(facts(ctx, **exited(1), host_disk=fine)) is None


# ---------------------------------------------------------------- crash loop, slow start, healthy, useless
def test_crash_loop_names_underlying(ctx: AnalysisContext) -> None:
    """Restarting with RestartCount 5 and a 1054 in each run: crash_loop mentions migration_failed."""
    run = [*start("using MySQL"), (2.0, "Error 1054 (42S22): Unknown column 'health_check_model' in 'field "
                                        "list'")]
    log = logtext(*run, *[(t + 10, m, *rest) for t, m, *rest in run])
    f = facts(ctx, container_status=ps_row("qcc_test_proxy", "Restarting (1) 3 seconds ago"),
              container_inspect=[inspect_obj("qcc_test_proxy", "restarting", exit_code=1, restarts=5)],
              proxy_logs=log)
    assert len(f.runs) == 2
    hit = crashrules.crash_loop(f)
    assert hit is not None and "migration_failed" in hit.detail and "RestartCount=5" in " ".join(hit.evidence)
    assert crashrules.migration_failed(f) is not None


def test_deploy_health_timeout(ctx: AnalysisContext) -> None:
    """Listening 75 s after the first line (deploy waits 60 s); a fast start is not a timeout."""
    slow = [*start("[migration] start"), (74.0, "[migration] config->settings migration finished (18211 "
                                                "rows)"),
            (75.0, "Claude Code proxy listening on :8001")]
    hit = rules.deploy_health_timeout(facts(ctx, **up(), proxy_logs=logtext(*slow)))
    assert hit is not None and any("listening 75 s after start" in e for e in hit.evidence)
    assert rules.deploy_health_timeout(facts(ctx, **up(), proxy_logs=logtext(*start()))) is None


def test_healthy_requires_everything(ctx: AnalysisContext) -> None:
    """Up + listening + /version + no error is healthy; without /version it is not."""
    version = '{"version":"v1.9.4","git_commit":"8c2d41f","build_date":"2025-12-10T05:58:11Z"}'
    ok = facts(ctx, **healthy_host(), proxy_logs=logtext(*start()), deployed_version=version)
    assert _healthy(ok)
    assert not _healthy(facts(ctx, **healthy_host(), proxy_logs=logtext(*start())))
    assert not _healthy(facts(ctx, **healthy_host(), proxy_logs=logtext(*start("using MySQL")),
                              deployed_version=version))


def test_healthy_is_vetoed_by_each_missing_item(ctx: AnalysisContext) -> None:
    """Drop any one of MySQL health, schema, memory, disk or kernel evidence: `unknown` naming that item."""
    version = '{"version":"v1.9.4","git_commit":"8c2d41f","build_date":"2025-12-10T05:58:11Z"}'
    for drop, label in (("schema_nodes", "schema query"), ("host_memory", "memory"), ("host_disk", "disk"),
                        ("kernel_oom", "kernel OOM")):
        outputs = {k: v for k, v in healthy_host().items() if k != drop}
        hit = rules.healthy(facts(ctx, **outputs, proxy_logs=logtext(*start()), deployed_version=version))
        assert hit is not None and hit.id == "unknown", drop
        assert any(label in e for e in hit.evidence), (drop, hit.evidence)


def test_up_but_useless(ctx: AnalysisContext) -> None:
    """Up, every node at the failure threshold (not killed): an `unknown` finding, never healthy."""
    log = logtext(*start(), (31.0, "[HealthScheduler] total nodes to check: 2 (concurrency=2, "
                                   "cli_concurrency=2)"),
                  (61.0, "health check failed for node a: claude cli failed: exit status 1: stdout= "
                         "stderr=bad key"),
                  (92.0, "[health] node a reached failure threshold (3/3), marking unavailable"),
                  (92.0, "[health] node b reached failure threshold (3/3), marking unavailable"))
    f = facts(ctx, **up(), proxy_logs=log, deployed_version='{"version":"v1.9.4","git_commit":"8c2d41f"}')
    hit = rules.up_but_useless(f)
    assert hit is not None and hit.id == "unknown" and "Up but not serving" in hit.title
    assert not _healthy(f)


def test_transient_driver_error_in_a_live_proxy_is_not_a_crash(ctx: AnalysisContext) -> None:
    """`[mysql] ... unexpected EOF` as the last line of an Up proxy (idle connection closed) is no fatal."""
    log = logtext(*start(), (600.0, "[mysql] 2025/12/10 06:24:01 packets.go:58 unexpected EOF", True))
    f = facts(ctx, **up(), proxy_logs=log)
    assert f.fatal is None and crashrules.mysql_unavailable(f) is None


def test_phase_unknown_when_run_start_not_captured(ctx: AnalysisContext) -> None:
    """A tail that starts mid-run: the phase is `unknown`, not `none` (which would mean a bad DSN)."""
    log = logtext((2.0, "Error 1054 (42S22): Unknown column 'health_check_model' in 'field list'"))
    f = facts(ctx, **exited(1), proxy_logs=log)
    assert f.run is not None and f.run.phase == "unknown"
    hit = crashrules.migration_failed(f)
    assert hit is not None and "outside the captured log" in hit.detail


def test_old_kernel_oom_lines_are_another_incident(ctx: AnalysisContext) -> None:
    """Kernel OOM kills from days before the proxy started are ignored; recent ones count."""
    old = "[Mon Dec  1 03:00:00 2025] Out of memory: Killed process 77 (ccproxy) total-vm:1kB"
    new = "[Wed Dec 10 06:15:06 2025] Out of memory: Killed process 3990 (ccproxy) total-vm:1kB"
    assert facts(ctx, **exited(137), kernel_oom=old).oom == []
    assert crashrules.oom_killed(facts(ctx, **exited(137), kernel_oom=old)) is None
    assert crashrules.oom_killed(facts(ctx, **exited(137), kernel_oom=new)) is not None


def test_long_running_proxy_with_start_outside_the_tail_is_healthy(ctx: AnalysisContext) -> None:
    """A tail of request lines only (start-up long gone), Up, /version answers: healthy, lower confidence."""
    version = '{"version":"v1.9.4","git_commit":"8c2d41f","build_date":"2025-12-10T05:58:11Z"}'
    tail = logtext(*[(9000.0 + i, f"[proxy] POST /v1/messages 200 1.284s account=acct-{i} in=1843 out=512")
                     for i in range(50)])
    hit = rules.healthy(facts(ctx, **healthy_host(), proxy_logs=tail, deployed_version=version))
    assert hit is not None and hit.id == "healthy" and hit.confidence == 0.75
    assert "outside the captured log" in " ".join(hit.evidence)
    starting = logtext(*start("using MySQL"))
    assert not _healthy(facts(ctx, **healthy_host(), proxy_logs=starting, deployed_version=version))


def test_a_crash_before_a_manual_restart_is_history(ctx: AnalysisContext) -> None:
    """RestartCount=0 (no restart policy) and an earlier run that crashed, then a clean run that
    listens and answers: healthy, the earlier crash shown on the checklist line. The same log with
    RestartCount=1 (the policy restarted it) is not healthy."""
    version = '{"version":"v1.9.4","git_commit":"8c2d41f","build_date":"2025-12-10T05:58:11Z"}'
    crashed = [*start("using MySQL"), (1.5, "Error 1054 (42S22): Unknown column 'health_check_model' in 'field list'")]
    again = [(t + 200, *rest) for t, *rest in START]
    log = logtext(*crashed, *again)
    ok = facts(ctx, **healthy_host(), proxy_logs=log, deployed_version=version)
    hit = rules.healthy(ok)
    assert hit is not None and hit.id == "healthy", hit
    item = next(i for i in build_checklist(ok) if i.id == "proxy_running")
    assert item.status == "ok" and "1 earlier run(s) crashed before this run started" in item.line
    host = healthy_host()
    host["container_inspect"] = [inspect_obj("qcc_test_proxy", "running", pid=3990, restarts=1),
                                 inspect_obj("qcc_test_mysql", "running", pid=1822, service="mysql")]
    restarted = rules.healthy(facts(ctx, **host, proxy_logs=log, deployed_version=version))
    assert restarted is None or restarted.id != "healthy"
