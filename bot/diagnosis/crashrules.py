"""Rules that read the proxy's own account of its death: the fatal line and its phase.

qcc_plus ends a store/migration/config failure with one bare ``log.Fatal`` line (exit 1);
the last phase line before it tells where start-up was (see :mod:`bot.diagnosis.logscan`).
A panic prints ``panic:`` plus goroutine frames and a runtime fatal ``fatal error:`` (exit 2);
exit 2 **without** either is a plain ``docker stop``; exit 137 is SIGKILL and only an OOM
kill when memory evidence says so.

Error 1049 (unknown database) is classed ``config_error``, not ``mysql_access_denied``: the
DSN names a database that does not exist (the seed's ``qcc_plus`` versus the real
``qcc_proxy``), which is fixed in the DSN, not with grants.
"""

from __future__ import annotations

import re

from bot.diagnosis import runningrules
from bot.diagnosis.evidence import Finding, finding, following, phase_note, q, status_row
from bot.diagnosis.facts import HEALTH_COLUMN, Facts
from bot.diagnosis.logscan import CLASS_TO_CAUSE
from bot.models import CauseId
from bot.runbook.steps import StepId

_UNKNOWN_COL_RE = re.compile(r"Unknown column '([^']+)'")
_DUP_COL_RE = re.compile(r"Duplicate column name '([^']+)'")


def _schema_line(f: Facts, column: str, present: bool) -> str:
    cols = f.schema_columns or []
    if present:
        col = next(c for c in cols if c.name.lower() == column.lower())
        return f"schema_nodes: nodes.{col.name} exists ({col.type}, default {col.default_value!r})"
    names = ", ".join(c.name for c in cols[-4:])
    return f"schema_nodes: table nodes has no column {column} (last columns: {names})"


def migration_failed(f: Facts) -> Finding | None:
    """Schema error (1054/1060/1146/1064...) as the fatal line; the schema step confirms or weakens."""
    run, fatal = f.run, f.fatal
    has_col = f.schema_has(HEALTH_COLUMN)
    rule_out = ("`SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_NAME='nodes'` lists "
                f"{HEALTH_COLUMN} and the proxy log has no `Error 1054`/`Error 1060`/`[migration]` error")
    if run is not None and fatal is not None and f.fatal_class == "migration":
        conf, ev, notes = 0.86, [*q(fatal), *q(run.prev_line), *status_row(f)], [phase_note(f)]
        if (m := _UNKNOWN_COL_RE.search(fatal.message)) is not None:
            col = m.group(1)
            if f.schema_has(col) is False:
                conf = 0.95
                ev.append(_schema_line(f, col, False))
                notes.append(f"The schema check confirms `{col}` is missing.")
            elif f.schema_has(col):
                conf = 0.6
                ev.append(_schema_line(f, col, True))
                notes.append(f"But `{col}` exists now (added after the crash?): a restart should get past it.")
            else:
                notes.append("The schema check gave no evidence, so the column is not confirmed missing.")
        elif (m := _DUP_COL_RE.search(fatal.message)) is not None:
            col = m.group(1)
            if f.schema_has(col):
                conf = 0.92
                ev.append(_schema_line(f, col, True))
            notes.append(f"`{col}` already exists, so the migration's ADD COLUMN fails (it is not idempotent); "
                         "do not run the seed's ALTER again.")
        title = f"Database migration failed ({fatal.message.strip()[:80]})"
        return finding(CauseId.MIGRATION_FAILED, title, conf, ev,
                       rule_out, " ".join(n for n in notes if n))
    if has_col is False and f.proxy_running is not True and not fatal:
        conf = 0.55 if f.logs_empty else 0.45
        why = "the log is empty (the deploy's rollback erases the failed container's logs)" if f.logs_empty \
            else "the log shows no fatal line"
        return finding(CauseId.MIGRATION_FAILED, f"Table nodes lacks {HEALTH_COLUMN} (migration not applied)", conf,
                       [_schema_line(f, HEALTH_COLUMN, False), *status_row(f)], rule_out,
                       f"The proxy is down and {why}; the schema lacks the column the new build reads.")
    return None


def mysql_access_denied(f: Facts) -> Finding | None:
    """Error 1045/1044/1142/1227 as the fatal line."""
    if f.fatal is None or f.fatal_class != "access_denied":
        return None
    code = f.run.fatal_code if f.run else None
    reasons = {1045: "the DSN's user or password is wrong",
               1142: "the DSN's user lacks a privilege the migration needs (ALTER/CREATE)",
               1044: "the DSN's user has no access to the database"}
    why = reasons.get(code or 0, "MySQL refused the DSN's user")
    return finding(CauseId.MYSQL_ACCESS_DENIED, f"MySQL denied access (Error {code})", 0.9,
                   [*q(f.fatal), *q(f.run.prev_line if f.run else None), *status_row(f)],
                   "The DSN's credentials log in "
                   "(`mysql -u<user> -p -h 127.0.0.1 -P <port> <db> -e 'SELECT 1'`) "
                   "and `SHOW GRANTS` includes ALTER on the database",
                   f"{why.capitalize()}. {phase_note(f)}")


def mysql_unavailable(f: Facts) -> Finding | None:
    """dial tcp / no such host / context deadline exceeded after ``store: mysql pool configured``."""
    mysql_ev: list[str] = []
    mysql_down = False
    if f.mysql is not None and f.mysql.state != "running":
        mysql_ev, mysql_down = [f.mysql.row], True
    elif f.containers is not None and f.mysql is None and f.expects_mysql:
        mysql_ev, mysql_down = [f"docker ps -a: no {f.ctx.mysql_service} container in project "
                                f"{f.ctx.compose_project}"], True
    rule_out = ("`docker exec <mysql> mysqladmin ping` answers `mysqld is alive` and the proxy log has no "
                "`dial tcp`/`context deadline exceeded` after `store: mysql pool configured`")
    if f.fatal is not None and f.fatal_class == "mysql_unreachable":
        msg = f.fatal.message
        conf = 0.86 + (0.07 if mysql_down else 0.0)
        if not mysql_down and runningrules.mysql_health(f) == "healthy" and runningrules.mysql_serving(f):
            conf = 0.5  # evidence: MySQL is healthy and answers the bot: dsn_wrong_target, not an outage
        if "context deadline exceeded" in msg:
            note = "A bare `context deadline exceeded` right after the pool line means MySQL was slow (a " \
                   "metadata lock or overload), not gone."
        elif "no such host" in msg:
            note = "`no such host` for the MySQL service name means the MySQL container is gone."
        else:
            note = "The proxy could not open a connection to MySQL."
        return finding(CauseId.MYSQL_UNAVAILABLE, "MySQL unreachable at start-up", conf,
                       [*q(f.fatal), *q(f.run.prev_line if f.run else None), *mysql_ev, *status_row(f)],
                       rule_out, f"{note} {phase_note(f)}")
    if mysql_down and f.proxy_running is False and f.fatal is None:
        return finding(CauseId.MYSQL_UNAVAILABLE, "MySQL container is down", 0.6, [*mysql_ev, *status_row(f)],
                       rule_out,
                       "The proxy is down without a fatal line in its log while MySQL is not running.")
    return None


def config_error(f: Facts) -> Finding | None:
    """invalid DSN (no ``store:`` line), Error 1049 unknown database, SQLite when MySQL is expected."""
    rule_out = ("`docker exec <proxy> printenv PROXY_MYSQL_DSN` shows a well-formed DSN naming an existing "
                "database, and the log says `using MySQL storage`")
    if f.fatal is not None and f.fatal_class == "invalid_dsn":
        return finding(CauseId.CONFIG_ERROR, "Malformed PROXY_MYSQL_DSN", 0.9, [*q(f.fatal), *status_row(f)],
                       rule_out,
                       f"The driver rejected the DSN before connecting. {phase_note(f)}")
    if f.fatal is not None and f.fatal_class == "unknown_database":
        return finding(CauseId.CONFIG_ERROR, "DSN names a database that does not exist (Error 1049)", 0.88,
                       [*q(f.fatal), *q(f.run.prev_line if f.run else None), *status_row(f)], rule_out,
                       "Error 1049 is a configuration fault, not a privilege one: the DSN's database name is "
                       "wrong (the real database is `qcc_proxy`; the seed says `qcc_plus`).")
    run = f.run
    if run is not None and run.storage == "sqlite" and f.expects_mysql:
        conf, ev = 0.8, [*q(run.storage_line), *status_row(f)]
        if f.proxy_state is not None and f.proxy_state.dsn_configured is False:
            conf, ev = 0.86, [*ev, f"docker inspect {f.proxy_state.name}: PROXY_MYSQL_DSN is empty"]
        return finding(CauseId.CONFIG_ERROR, "Proxy fell back to SQLite: PROXY_MYSQL_DSN empty", conf, ev, rule_out,
                       "With an empty PROXY_MYSQL_DSN the proxy silently uses SQLite inside the container: it starts, "
                       "but none of the MySQL nodes or settings are there.")
    return None


def _crash(f: Facts, cls: str, prefix: str) -> tuple[list[str], float] | None:
    if f.fatal is not None and f.fatal_class == cls:
        line = f.fatal
    else:
        hits = f.find_lines(rf"^{prefix}", limit=50)
        if not hits:
            return None
        line = hits[-1]
    ev = [*q(line), *[x for ln in following(f, line) for x in q(ln)], *status_row(f)]
    conf = 0.9 if f.proxy_running is not True else 0.5
    return ev, conf


def panic(f: Facts) -> Finding | None:
    """An unrecovered ``panic:`` with goroutine frames (exit 2)."""
    got = _crash(f, "panic", "panic: ")
    if got is None:
        return None
    ev, conf = got
    detail = "An unrecovered panic ends the process with exit 2; the first frame under /app/internal/ " \
             "is the crashing code."
    if f.proxy_running:
        detail = "A panic is in the log but the proxy is running again; it is history unless it repeats."
    return finding(CauseId.PANIC, "Uncaught panic", conf, ev,
                   "No `panic:` line in the whole `docker logs` output (grep_panic empty): "
                   "exit code 2 alone is a plain `docker stop`", detail)


def runtime_fatal(f: Facts) -> Finding | None:
    """A Go runtime ``fatal error:`` (concurrent map access, out of memory), exit 2."""
    got = _crash(f, "runtime_fatal", "fatal error: ")
    if got is None:
        return None
    ev, conf = got
    detail = "The Go runtime aborted (not recoverable by panic recovery)."
    if "out of memory" in ev[0]:
        detail = "The Go runtime could not allocate memory: the host ran out; look at what used it."
        if f.processes is not None and len(f.processes.workers) >= 4:
            conf = min(conf, 0.7)
            detail += " Many claude/node health-check processes were running (startup_health_check_overload)."
    return finding(CauseId.RUNTIME_FATAL, "Go runtime fatal error", conf, ev,
                   "No `fatal error:` line in the whole `docker logs` output", detail)


def crash_loop(f: Facts) -> Finding | None:
    """Restarting / RestartCount > 1 / three or more crashed runs; names the underlying cause."""
    restarting = f.proxy_status == "restarting"
    rc = f.restart_count
    if not (restarting or rc > 1 or len(f.crashed_runs) >= 3):
        return None
    underlying = CLASS_TO_CAUSE.get(f.fatal_class or "")
    ev = [*status_row(f)]
    if rc:
        ev.append(f"docker inspect {f.proxy_name}: RestartCount={rc}")
    ev += [x for r in f.crashed_runs[-2:] for x in q(r.fatal)]
    if underlying:
        conf, detail = 0.7, (f"Each run dies the same way; the underlying cause is {underlying} (ranked above): "
                             "fix it and the loop stops.")
    else:
        conf, detail = 0.85, "The proxy keeps restarting and the log does not say why each run ends."
    return finding(CauseId.CRASH_LOOP, f"Crash loop ({max(rc, len(f.crashed_runs))} restarts)", conf, ev,
                   "`docker inspect -f '{{.RestartCount}} {{.State.Status}}' <proxy>` stays the same and the "
                   "status stays Up for minutes", detail)


def _memory_evidence(f: Facts) -> list[str]:
    ev = []
    if f.proxy_state is not None and f.proxy_state.oom_killed:
        ev.append(f"docker inspect {f.proxy_state.name}: State.OOMKilled=true")
    ev += [e.raw for e in f.oom or [] if e.kind != "invoked"][:2]
    if f.proxy_stats is not None and (f.proxy_stats.mem_pct or 0) >= 95:
        ev.append(f"{f.proxy_stats.source}: {f.proxy_stats.raw}")
    if f.mem_exhausted and f.memory is not None:
        ev.append(f.memory.evidence)
    return ev


def oom_killed(f: Facts) -> Finding | None:
    """Exit 137 plus memory evidence (OOMKilled, kernel OOM lines, usage at limit, host memory ~0)."""
    st = f.proxy_state
    proxy_pid = st.pid if st else 0
    kernel_proxy = [e for e in f.oom or []
                    if e.process in ("ccproxy", "cccli") or (proxy_pid and e.pid == proxy_pid)]
    flagged = bool(st and st.oom_killed)
    # A killed PID 1 exits 137: a kernel kill line next to any other exit (a panic's 2, a fatal's 1)
    # or next to a running proxy belongs to another run or another container, not to this exit.
    if f.exit_code != 137 and not flagged:
        return None
    ev = _memory_evidence(f)
    if not ev:
        return None
    conf = 0.92 if flagged or kernel_proxy else 0.75 if len(ev) >= 2 else 0.68
    detail = "Exit 137 is SIGKILL; the memory evidence shows the OOM killer sent it."
    workers = f.processes.workers if f.processes is not None else []
    if len(workers) >= 4:
        conf = min(conf, 0.8)
        detail += (f" The memory went to {len(workers)} claude/node health-check processes "
                   "(see startup_health_check_overload).")
    return finding(CauseId.OOM_KILLED, "Killed by the OOM killer (exit 137)", conf, [*status_row(f), *ev],
                   "`docker inspect` shows OOMKilled=false, `dmesg -T` has no `Killed process ... (ccproxy)` "
                   "and `free -m` shows memory available: then it was a `docker kill`", detail)


def exit_without_crash(f: Facts) -> Finding | None:
    """Exit 2 without panic (a stop), 137 without memory evidence (a kill), 1/255 without a known fatal."""
    code = f.exit_code
    if code is None or f.proxy_status not in ("exited", "dead") or f.fatal is not None:
        return None
    last = f.log[-1] if f.log else None
    if code == 2 and not f.find_lines(r"^(panic: |fatal error: )"):
        looked = f.ok(StepId.GREP_PANIC) or f.ok(StepId.PROXY_LOGS)
        return finding(CauseId.UNKNOWN, "Stopped, not crashed: exit 2 with no panic in the log (a plain docker stop)",
                       0.6 if looked else 0.35,
                       [*status_row(f), "grep_panic: no `panic:` or `fatal error:` line in the log" if looked
                        else "", *q(last)],
                       "A `panic:` or `fatal error:` line anywhere in the full `docker logs` output",
                       "ccproxy runs as PID 1 without a SIGTERM handler, so `docker stop`/`compose stop` ends it with "
                       "exit 2; nothing in the log shows a crash. Find who stopped it, then start it again.")
    if code == 137 and not _memory_evidence(f):
        checked = [s for s in (StepId.HOST_MEMORY, StepId.KERNEL_OOM, StepId.CONTAINER_INSPECT) if f.ok(s)]
        thin = [s for s in (StepId.HOST_MEMORY, StepId.KERNEL_OOM, StepId.CONTAINER_INSPECT) if not f.ok(s)]
        ev = [*status_row(f)]
        if f.proxy_state is not None:
            ev.append(f"docker inspect {f.proxy_state.name}: State.OOMKilled=false")
        if f.memory is not None:
            ev.append(f.memory.evidence)
        if f.ok(StepId.KERNEL_OOM):
            ev.append("kernel_oom: no OOM-killer lines")
        detail = "Exit 137 is SIGKILL: the OOM killer or a `docker kill` (or a stop that timed out). " \
                 f"Checked without memory evidence: {', '.join(checked) or 'nothing'}."
        if thin:
            detail += f" No evidence from: {', '.join(thin)}."
        return finding(CauseId.UNKNOWN, "Killed (exit 137) with no sign of memory exhaustion",
                       0.5 if not thin else 0.35,
                       ev, "OOMKilled=true, a kernel `Killed process ... (ccproxy)` line or host memory at "
                           "zero would make it oom_killed", detail)
    if code in (1, 255) and f.log:
        what = "an unrecognised last line" if code == 1 else "exit 255 (host or daemon crash)"
        return finding(CauseId.UNKNOWN, f"Exited ({code}) with {what}", 0.4, [*status_row(f), *q(last)],
                       "A known fatal line (driver error, panic, bind) in the full log",
                       "The exit code says the process failed but its last line matches no known failure.")
    return None
