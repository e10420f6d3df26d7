"""The hypothesis table: every runbook hypothesis with a verdict, its deciding check and line. Pure.

``build_hypotheses(facts, causes) -> list[Hypothesis]``: the seed runbook's five in its
order (migration, start-up health checks, panic, deploy health-check timeout, port in use),
then the rest of the catalogue. A hypothesis a rule found evidence for is ``confirmed``
(confidence >= :data:`CONFIRMED`) or ``likely``, with its own confidence and first evidence
line; otherwise it is ``ruled_out`` when its check ran and showed absence (the quoted line
says what was seen), else ``not_checked`` (the line names the step that gave no evidence).
"""

from __future__ import annotations

from collections.abc import Callable

from bot.diagnosis.checklist import build_checklist
from bot.diagnosis.facts import HEALTH_COLUMN, Facts, same_commit
from bot.models import Cause, CheckItem, Hypothesis, Verdict
from bot.runbook.steps import StepId

CONFIRMED = 0.85
Absent = Callable[[Facts, dict[str, CheckItem]], str | None]  # the ruled-out line, or None: not checked


def _log_read(f: Facts) -> bool:
    return f.log is not None or bool(f.grep)


def _no_line(f: Facts, pattern: str, what: str) -> str | None:
    if not _log_read(f):
        return None
    hits = f.find_lines(pattern, limit=1)
    return None if hits else f"no {what} in {len(f.all_lines())} log line(s)"


def _migration(f: Facts, c: dict[str, CheckItem]) -> str | None:
    parts = []
    if f.schema_has(HEALTH_COLUMN):
        parts.append(f"`{HEALTH_COLUMN}` present in `nodes`")
    if (x := _no_line(f, r"\bError 10(54|60|64|146)\b|Error 1146|\[migration\].*(fail|error)",
                      "`Error 10xx` / failed `[migration]` line")):
        parts.append(x)
    return ", ".join(parts) or None


def _overload(f: Facts, c: dict[str, CheckItem]) -> str | None:
    parts = []
    if _log_read(f) and not f.health.killed:
        parts.append("no health check ended with `signal: killed`")
    if f.processes is not None:
        parts.append(f"{len(f.processes.workers)} claude/node process(es)")
    if f.memory is not None and not f.mem_exhausted:
        parts.append(f.memory.evidence)
    return ", ".join(parts) or None


def _deploy_timeout(f: Facts, c: dict[str, CheckItem]) -> str | None:
    if f.ci_run is not None and f.ci_run.conclusion == "success":
        return "deploy run concluded success"
    run = f.run
    if run is None:
        return None
    if run.fatal is not None:
        return f"the proxy crashed, not slow: {run.fatal.raw}"
    if run.listen_delay_s is not None:
        return f"listening {run.listen_delay_s:.0f} s after start (deploy waits 60 s)"
    return None


def _port(f: Facts, c: dict[str, CheckItem]) -> str | None:
    if f.listeners is None and f.publishers is None:
        return None
    if f.find_lines(r"address already in use|port is already allocated", limit=1):
        return None
    others = f.other_publishers()
    holders = [ln for ln in f.port_holders() if not all(n == "docker-proxy" for n, _ in ln.processes)]
    if others or holders:
        return None
    return f"port {f.ctx.proxy_port}: no other listener or publisher, no `address already in use`"


def _oom(f: Facts, c: dict[str, CheckItem]) -> str | None:
    if f.proxy_state is None:
        return None
    k = c.get("no_kernel_kill")
    return (f"OOMKilled={str(f.proxy_state.oom_killed).lower()}, exit {f.exit_code}"
            + (f"; {k.line}" if k and k.status == "ok" else ""))


def _mysql_up(f: Facts, c: dict[str, CheckItem]) -> str | None:
    m, s = c.get("mysql_healthy"), c.get("schema_answered")
    if m is None or m.status != "ok":
        return None
    return m.line + ("; " + s.line if s and s.status == "ok" else "")


def _mysql_lost(f: Facts, c: dict[str, CheckItem]) -> str | None:
    up = _mysql_up(f, c)
    e = c.get("no_error_after_listen")
    if up and e and e.status == "ok":
        return f"{up}; {e.line}"
    return up


def _mysql_oom(f: Facts, c: dict[str, CheckItem]) -> str | None:
    k = c.get("no_kernel_kill")
    if f.oom is None:
        return _mysql_up(f, c)
    kills = [e for e in f.oom if e.process == "mysqld"]
    return None if kills else (k.line if k else "no mysqld kill in the window")


def _dsn(f: Facts, c: dict[str, CheckItem]) -> str | None:
    run = f.run
    if run is not None and run.storage == "mysql" and run.storage_line is not None:
        return f"the proxy connected: {run.storage_line.raw}"
    return _no_line(f, r"dial tcp", "`dial tcp` line")


def _access(f: Facts, c: dict[str, CheckItem]) -> str | None:
    return _no_line(f, r"\bError 1(045|044|142|227)\b", "`Error 1045/1044/1142` line")


def _config(f: Facts, c: dict[str, CheckItem]) -> str | None:
    run = f.run
    if run is not None and run.storage == "mysql" and run.storage_line is not None:
        return run.storage_line.raw
    return _no_line(f, r"invalid DSN|\bError 1049\b|using SQLite storage", "`invalid DSN`/`Error 1049`/SQLite line")


def _item(key: str) -> Absent:
    def absent(f: Facts, c: dict[str, CheckItem]) -> str | None:
        it = c.get(key)
        return it.line if it is not None and it.status == "ok" else None
    return absent


def _build(f: Facts, c: dict[str, CheckItem]) -> str | None:
    if f.version is None or not f.commits:
        return None
    return f"/version commit {f.version.git_commit} is HEAD" if same_commit(f.version.git_commit,
                                                                               f.commits[0].sha) else None


def _crash_loop(f: Facts, c: dict[str, CheckItem]) -> str | None:
    if f.proxy_state is None:
        return None
    return f"RestartCount={f.restart_count}, {len(f.crashed_runs)} crashed run(s) in the log"


def _missing(f: Facts, c: dict[str, CheckItem]) -> str | None:
    return f.proxy_row


def _deploy(f: Facts, c: dict[str, CheckItem]) -> str | None:
    return "no deploy-server.sh / compose build process" if f.deploys == [] else None


def _docker(f: Facts, c: dict[str, CheckItem]) -> str | None:
    return "docker ps answered" if f.ok(StepId.CONTAINER_STATUS) and not f.docker_errors else None


def _disk(f: Facts, c: dict[str, CheckItem]) -> str | None:
    it = c.get("disk")
    if it is None or it.status != "ok":
        return None
    return it.line + ("; MySQL log: no disk-full line" if f.mysql_log is not None else "")


def _bad_data(f: Facts, c: dict[str, CheckItem]) -> str | None:
    return _no_line(f, r"sql: Scan error", "`sql: Scan error` line")


# (cause id, title, check that decides it, ruled-out line)
CATALOGUE: list[tuple[str, str, str, Absent]] = [
    ("migration_failed", "Database migration failed", "log grep migration|Error 10xx + schema of nodes", _migration),
    ("startup_health_check_overload", "Start-up health checks exhaust the host",
     "log grep HealthScheduler + ps + free -m", _overload),
    ("panic", "Uncaught panic", "log grep panic", lambda f, c: _no_line(f, r"^panic: ", "`panic:` line")),
    ("deploy_health_timeout", "Deploy health-check timeout (60 s)", "listening delay + deploy run log",
     _deploy_timeout),
    ("port_conflict", "Port in use", "ss -ltnp + docker ps --filter publish", _port),
    ("runtime_fatal", "Go runtime fatal error", "log grep fatal error",
     lambda f, c: _no_line(f, r"^fatal error: ", "`fatal error:` line")),
    ("oom_killed", "Proxy killed by the OOM killer", "docker inspect OOMKilled + kernel OOM lines", _oom),
    ("mysql_unavailable", "MySQL unreachable at start-up", "MySQL container state + the bot's query", _mysql_up),
    ("mysql_lost", "MySQL lost under a running proxy", "driver lines after listening + MySQL state", _mysql_lost),
    ("mysql_oom_killed", "MySQL killed by the OOM killer", "kernel OOM lines (mysqld) in the window", _mysql_oom),
    ("dsn_wrong_target", "DSN at a wrong MySQL port/host", "`using MySQL storage` / dial errors vs MySQL health",
     _dsn),
    ("mysql_access_denied", "MySQL denied access", "log grep Error 1045/1142", _access),
    ("config_error", "Configuration error (DSN, database, SQLite)", "log: storage line", _config),
    ("bad_data", "Bad data (NULL in a scanned column)", "log grep `sql: Scan error`", _bad_data),
    ("listen_addr_mismatch", "LISTEN_ADDR not the published port", "listening line vs published port",
     _item("listening_port")),
    ("disk_full", "Disk full", "df + `no space left` + MySQL log", _disk),
    ("previous_image_running", "Previous image re-upped (push not running)", "/version vs checkout HEAD", _build),
    ("tls_certificate_expired", "TLS certificate expired", "log grep `x509: certificate has expired`",
     lambda f, c: _no_line(f, r"x509: certificate has expired", "`x509: certificate has expired` line")),
    ("crash_loop", "Crash loop", "docker inspect RestartCount + runs in the log", _crash_loop),
    ("container_missing", "Proxy container missing", "docker ps -a (compose labels)", _missing),
    ("deploy_in_progress", "Deploy in progress", "ps: deploy-server.sh / compose build", _deploy),
    ("docker_unresponsive", "Docker daemon not answering", "docker ps / inspect", _docker),
]
SEED_FIVE = 5


def build_hypotheses(f: Facts, causes: list[Cause], checklist: list[CheckItem] | None = None) -> list[Hypothesis]:
    """The table (see module doc). Never raises on thin facts: a failing check is ``not_checked``."""
    items = {i.id: i for i in (checklist if checklist is not None else build_checklist(f))}
    found: dict[str, Cause] = {str(c.id): c for c in causes}
    out = []
    for rank, (cid, title, check, absent) in enumerate(CATALOGUE, 1):
        seed = rank if rank <= SEED_FIVE else None
        if (c := found.get(cid)) is not None:
            verdict: Verdict = "confirmed" if c.confidence >= CONFIRMED and c is causes[0] else "likely"
            out.append(Hypothesis(id=cid, title=title, verdict=verdict, check=check,
                                  line=c.evidence[0] if c.evidence else c.title, confidence=c.confidence,
                                  seed_rank=seed))
            continue
        try:
            line = absent(f, items)
        except Exception:  # noqa: BLE001 - one odd fact must not lose the table
            line = None
        if line:
            out.append(Hypothesis(id=cid, title=title, verdict="ruled_out", check=check, line=line, seed_rank=seed))
        else:
            out.append(Hypothesis(id=cid, title=title, verdict="not_checked", check=check,
                                  line="its check gave no evidence", seed_rank=seed))
    return out
