"""Rules for faults of a running system and of what changed (issue 10). Pure.

Each rule reads :class:`~bot.diagnosis.facts.Facts` and returns a finding with quoted
evidence, or None:

* :func:`mysql_lost` — MySQL gone under a running proxy (driver lines after the listening
  line: ``closing bad idle connection: EOF``, then ``lookup mysql ... no such host`` every 30 s,
  ``invalid connection``, ``driver: bad connection``, ``packets.go:… unexpected EOF``).
* :func:`mysql_oom_killed` — the kernel OOM killer took ``mysqld`` (in the incident window).
* :func:`disk_full_mysql_log` — MySQL's own log says the disk is full.
* :func:`listen_addr_mismatch` — the listening line names another port than the published one
  (curl exit 52/56: Docker accepts, nothing behind it).
* :func:`bad_data` — ``sql: Scan error on column index N, name "X": converting NULL to string``.
* :func:`dsn_wrong_target` — the proxy cannot reach MySQL while the MySQL container is healthy
  and the bot's own query answered: the DSN names a wrong port or host.
* :func:`previous_image_running` — ``/version`` is not the checkout's HEAD (a failed build
  re-upped the previous image).
* :func:`ci_deploy` — the GitHub Actions deploy run's failed step confirms a health-check
  timeout or ``port is already allocated``.
"""

from __future__ import annotations

import re

from bot.diagnosis import evidenceparse as ep
from bot.diagnosis.evidence import Finding, finding, q, quote, status_row
from bot.diagnosis.facts import Facts, same_commit
from bot.diagnosis.logparse import LogLine
from bot.diagnosis.logscan import LISTEN_RE, classify
from bot.models import CauseId
from bot.runbook.steps import StepId

LOST_RE = re.compile(r"closing bad idle connection|no such host|invalid connection|driver: bad connection|"
                     r"unexpected EOF|connection refused|server has gone away|Lost connection to MySQL|"
                     r"broken pipe|i/o timeout", re.I)
_UPSTREAM_RE = re.compile(r"health check failed|\[health\]|\[HealthScheduler\]|\[proxy\]|upstream", re.I)
SCAN_RE = re.compile(r'sql: Scan error on column index (\d+), name "([^"]+)": converting NULL to (\w+) is '
                     r"unsupported")
_DIAL_RE = re.compile(r"dial tcp (?:lookup )?([\w.\-]+)?:?(\d+)?")
_PORTS_RE = re.compile(r"(?:[\d.]+|\[::\]|::):(\d+)->(\d+)/tcp")


# ---------------------------------------------------------------- shared helpers
def run_lines(f: Facts) -> list[LogLine]:
    """The log lines of the run that matters (from its first line on)."""
    lines = f.log or []
    if f.run is None or f.run.first is None:
        return lines
    for i, ln in enumerate(lines):
        if ln.raw == f.run.first.raw:
            return lines[i:]
    return lines


def after_listening(f: Facts) -> list[LogLine] | None:
    """Lines after the run's listening line; the whole tail when the run's start is outside it;
    None without a log."""
    if f.log is None:
        return None
    lines = run_lines(f)
    if f.run is not None and f.run.listening is not None:
        for i, ln in enumerate(lines):
            if ln.raw == f.run.listening.raw:
                return lines[i + 1:]
    return lines if f.run is not None and not f.run.start_seen else []


def is_error_line(ln: LogLine) -> bool:
    """A store/driver/crash error line (not an upstream or health-check line)."""
    msg = ln.message
    if _UPSTREAM_RE.search(msg):
        return False
    return classify(msg)[0] is not None or bool(LOST_RE.search(msg)) or bool(SCAN_RE.search(msg))


def mysql_row(f: Facts) -> str | None:
    if f.mysql is not None:
        return f.mysql.row
    if f.mysql_state is not None:
        return f"{f.mysql_state.name} {f.mysql_state.status} (docker inspect)"
    return None


def mysql_health(f: Facts) -> str | None:
    """``healthy|unhealthy|starting`` of the MySQL container (inspect, else the ps row), or None."""
    name = f.mysql.name if f.mysql else f.mysql_state.name if f.mysql_state else None
    if name and name in f.details and f.details[name].health:
        return f.details[name].health
    return ep.ps_health(f.mysql.status) if f.mysql else None


def mysql_running(f: Facts) -> bool | None:
    if f.mysql_state is not None:
        return f.mysql_state.running and not f.mysql_state.restarting
    if f.mysql is not None:
        return f.mysql.state == "running"
    if f.containers is not None and f.expects_mysql:
        return False  # docker ps ran and lists no MySQL container
    return None


def mysql_down_evidence(f: Facts) -> list[str]:
    """Quoted lines saying the MySQL container is not serving (gone, stopped, unhealthy)."""
    if f.containers is not None and f.mysql is None and f.mysql_state is None and f.expects_mysql:
        return [f"docker ps -a: no {f.ctx.mysql_service} container in project {f.ctx.compose_project}"]
    if mysql_running(f) is False:
        return [x for x in [mysql_row(f)] if x]
    if mysql_health(f) == "unhealthy":
        name = f.mysql.name if f.mysql else f.ctx.mysql_service
        detail = f.details.get(name)
        return [x for x in [mysql_row(f), f"docker inspect {name}: Health.Status=unhealthy"
                            + (f" ({detail.health_log})" if detail and detail.health_log else "")] if x]
    return []


def mysql_serving(f: Facts) -> list[str]:
    """Quoted lines saying MySQL serves now: its container Up and healthy, the bot's query answered."""
    ev = []
    if mysql_running(f) and mysql_health(f) == "healthy" and (row := mysql_row(f)):
        ev.append(row)
    if f.ok(StepId.SCHEMA_NODES) and f.schema_columns:
        ev.append(f"schema_nodes: the bot's own query answered ({len(f.schema_columns)} columns of nodes)")
    return ev


def proxy_detail(f: Facts) -> ep.ContainerDetail | None:
    return f.details.get(f.proxy_name)


def published_container_port(f: Facts) -> int | None:
    """The container port published on the configured host port (``0.0.0.0:8001->8001/tcp``)."""
    ports = f.proxy.ports if f.proxy else ""
    for host, container in _PORTS_RE.findall(ports or ""):
        if int(host) == f.ctx.proxy_port:
            return int(container)
    return None


def listen_port(ln: LogLine | None) -> int | None:
    if ln is None or not (m := LISTEN_RE.search(ln.message)):
        return None
    return int(m.group(1).rsplit(":", 1)[1])


# ---------------------------------------------------------------- rules
def mysql_lost(f: Facts) -> Finding | None:
    """MySQL lost under a running proxy: driver lines after the listening line and/or the MySQL
    container down while the proxy runs."""
    if f.proxy_running is not True or not f.expects_mysql:
        return None
    lines = [ln for ln in after_listening(f) or [] if LOST_RE.search(ln.message)
             and not _UPSTREAM_RE.search(ln.message)]
    down = mysql_down_evidence(f)
    no_container = f.mysql is None and f.mysql_state is None
    if not lines and (not down or (no_container and f.ok(StepId.SCHEMA_NODES))):
        return None
    schema = f.availability(StepId.SCHEMA_NODES)
    if not lines and no_container and not schema.ok and schema.status != "failed":
        return None  # MySQL may live outside compose; without driver lines or a failed query, no evidence
    serving = mysql_serving(f)
    if lines and down:
        conf = 0.93
    elif down:
        conf = 0.8
    elif serving:
        conf = 0.45  # the driver lost connections but MySQL serves now: a blip (restart, failover)
    else:
        conf = 0.7
    if any(e.process == "mysqld" and e.kind != "invoked" for e in f.oom or []):
        conf = min(conf, 0.8)  # the OOM kill of mysqld is the cause; this is its effect
    ev = [*q(lines[0] if lines else None), *q(lines[-1] if len(lines) > 1 else None)]
    if len(lines) > 2:
        ev.append(f"... {len(lines)} MySQL driver error lines after the listening line")
    ev += [*down, *status_row(f)]
    if not schema.ok and schema.status != "missing":
        ev.append(f"the bot's own MySQL query failed too: {schema.describe(StepId.SCHEMA_NODES)}")
    detail = ("The proxy is still Up, but its MySQL connections die: the driver logs `closing bad idle "
              "connection`, then `lookup mysql ... no such host` every 30 s while the MySQL container is "
              "gone. Requests that need the store fail.")
    if serving and not down:
        detail += " MySQL serves again now (container healthy, the bot's query answered): it was a blip."
    return finding(CauseId.MYSQL_LOST, "MySQL lost under a running proxy", conf, ev,
                   "`docker exec <mysql> mysqladmin ping` says `mysqld is alive` and the proxy log has no "
                   "driver error after its listening line", detail)


def mysql_oom_killed(f: Facts) -> Finding | None:
    """The kernel OOM killer took mysqld in the incident window (or Docker flags MySQL OOMKilled)."""
    kills = [e for e in f.oom or [] if (e.process or "") == "mysqld" and e.kind != "invoked"]
    st = f.mysql_state
    flagged = bool(st and st.oom_killed)
    if not kills and not flagged:
        return None
    ev = [*(e.raw for e in kills[:2])]
    if flagged and st is not None:
        ev.append(f"docker inspect {st.name}: State.OOMKilled=true, ExitCode={st.exit_code}")
    ev += [x for x in [mysql_row(f)] if x]
    if f.memory is not None:
        ev.append(f.memory.evidence)
    ev += status_row(f)
    conf = 0.95 if kills else 0.85
    return finding(CauseId.MYSQL_OOM_KILLED, "MySQL killed by the host's OOM killer", conf, ev,
                   "`dmesg --time-format=iso | grep -i 'killed process'` has no `(mysqld)` line near MySQL's "
                   "FinishedAt and `docker inspect <mysql>` shows OOMKilled=false",
                   "The host ran out of memory and the kernel killed mysqld (test and prod share 2 GB); the "
                   "proxy then loses its store. Start MySQL (`up -d --no-build`) and find what used the memory.")


def disk_full_mysql_log(f: Facts) -> Finding | None:
    """MySQL's own log says the disk is full (``Disk is full writing``, errno 28)."""
    hits = ep.mysql_disk_lines(f.mysql_log or [])
    if not hits:
        return None
    full = [d for d in f.disks or [] if d.use_pct >= 95]
    ev = [*(quote(f"mysql log: {ln.raw}") for ln in hits[:2]), *[f"df: {d.raw}" for d in full]]
    ev += [x for x in [mysql_row(f)] if x] + status_row(f)
    return finding(CauseId.DISK_FULL, "Disk full (MySQL cannot write)", 0.94 if full else 0.9, ev,
                   "`df -P -k /var/lib/docker /` shows under 95 % used and MySQL's log has no "
                   "`Disk is full`/errno 28 line",
                   "MySQL stops writing when the docker root fills (binlogs, InnoDB files); free space, then "
                   "restart MySQL.")


def listen_addr_mismatch(f: Facts) -> Finding | None:
    """The proxy listens on another port than the one Docker publishes for the configured port."""
    if f.proxy_running is not True:
        return None
    want = published_container_port(f) or f.ctx.proxy_port
    run = f.run
    got = listen_port(run.listening if run else None)
    pd = proxy_detail(f)
    detail_port = pd.listen_port if pd is not None else None
    curl = f.availability(StepId.DEPLOYED_VERSION).exit_status if f.ok(StepId.DEPLOYED_VERSION) else None
    curl_note = {52: "curl exit 52 (empty reply: Docker accepted, nothing listens behind it)",
                 56: "curl exit 56 (connection reset: Docker accepted, nothing listens behind it)"}.get(curl or 0)
    ev: list[str] = []
    if got is not None and got != want:
        conf = 0.94
        ev += q(run.listening if run else None)
    elif detail_port is not None and detail_port != want:
        conf = 0.85
        ev.append(f"docker inspect {f.proxy_name}: PROXY_LISTEN_ADDR=:{detail_port}")
        got = detail_port
    elif curl_note and f.version is None:
        conf = 0.55
    else:
        return None
    if f.proxy is not None and f.proxy.ports:
        ev.append(f"docker ps: {f.proxy.name} publishes {f.proxy.ports}")
    if curl_note:
        ev.append(f"curl http://127.0.0.1:{f.ctx.proxy_port}/version: {curl_note}")
    port = f.ctx.proxy_port
    return finding(CauseId.LISTEN_ADDR_MISMATCH,
                   f"Proxy listens on :{got or '?'} but port {port} is published to :{want}", conf, ev,
                   f"The log says `listening on :{want}` and `curl http://127.0.0.1:{port}/version` answers",
                   "LISTEN_ADDR does not match the published port: the container is Up but every request to "
                   f"{port} reaches nothing. Set PROXY_LISTEN_ADDR=:{want} (or publish the port it listens on).")


def bad_data(f: Facts) -> Finding | None:
    """Start-up fails loading nodes: a row holds NULL where the code scans a string."""
    hits = f.find_lines(SCAN_RE, limit=2)
    if not hits:
        return None
    m = SCAN_RE.search(hits[0].message)
    assert m is not None
    col = m.group(2)
    ev = [*q(hits[0]), *q(f.run.prev_line if f.run and f.run.prev_line else None), *status_row(f)]
    c = next((c for c in f.schema_columns or [] if c.name.lower() == col.lower()), None)
    if c is not None:
        ev.append(f"schema_nodes: nodes.{c.name} {c.type} nullable={c.nullable}")
    conf = 0.93 if f.proxy_running is not True else 0.5
    return finding(CauseId.BAD_DATA, f"Bad data: NULL in nodes.{col} stops start-up", conf, ev,
                   f"`SELECT COUNT(*) FROM nodes WHERE {col} IS NULL` returns 0",
                   f"Loading the nodes fails on a row with NULL in `{col}` (the code reads it into a "
                   f"{m.group(3)}); the schema is fine. Back up, then "
                   f"`UPDATE nodes SET {col} = '' WHERE {col} IS NULL`, or fix the scan in the code.")


def dsn_wrong_target(f: Facts) -> Finding | None:
    """The proxy cannot reach MySQL while MySQL is healthy and answers the bot: the DSN is wrong."""
    if f.fatal is None or f.fatal_class != "mysql_unreachable" or "deadline exceeded" in f.fatal.message:
        return None
    serving = mysql_serving(f)
    if not (mysql_running(f) and mysql_health(f) == "healthy"):
        return None
    d = proxy_detail(f)
    svc = {f.ctx.mysql_service, f.mysql.name if f.mysql else "", f.ctx.mysql_container or ""} - {""}
    m = _DIAL_RE.search(f.fatal.message)
    dial_port = int(m.group(2)) if m and m.group(2) else None
    wrong = []
    if d is not None and d.dsn_port is not None and d.dsn_port != 3306:
        wrong.append(f"docker inspect {f.proxy_name}: PROXY_MYSQL_DSN points at tcp({d.dsn_host}:{d.dsn_port})")
    elif dial_port is not None and dial_port != 3306:
        wrong.append(f"the proxy dials port {dial_port}; MySQL listens on 3306 inside the network")
    if d is not None and d.dsn_host and d.dsn_host not in svc and not re.match(r"^[\d.]+$", d.dsn_host):
        wrong.append(f"docker inspect {f.proxy_name}: PROXY_MYSQL_DSN host {d.dsn_host!r} is not the MySQL "
                     f"service ({', '.join(sorted(svc))})")
    conf = 0.92 if wrong else 0.6
    return finding(CauseId.DSN_WRONG_TARGET, "DSN points at a wrong MySQL port or host (MySQL itself is healthy)",
                   conf, [*q(f.fatal), *wrong, *serving, *status_row(f)],
                   "`docker exec <proxy> printenv PROXY_MYSQL_DSN` names `tcp(mysql:3306)` and MySQL is down "
                   "or unhealthy",
                   "MySQL is Up, healthy and answers the bot's own query, yet the proxy cannot connect: the "
                   "DSN's host or port is wrong (not a MySQL outage). Fix PROXY_MYSQL_DSN and redeploy.")


def previous_image_running(f: Facts) -> Finding | None:
    """``/version`` names another commit than the checkout's HEAD: the push is not running."""
    if f.version is None or not f.version.git_commit or not f.commits or f.proxy_running is not True:
        return None  # /version of a squatter on the port is not the proxy's build
    head = f.commits[0]
    if same_commit(f.version.git_commit, head.sha):
        return None
    pos = next((i for i, c in enumerate(f.commits) if same_commit(f.version.git_commit, c.sha)), None)
    v = f.version
    ev = [f"/version: {v.version} (commit {v.git_commit}, built {v.build_date or '?'})",
          f"git log: HEAD {head.sha[:7]} {head.subject}"]
    if pos is not None:
        ev.append(f"git log: HEAD~{pos} {f.commits[pos].sha[:7]} {f.commits[pos].subject} is the running build")
    if (d := proxy_detail(f)) is not None and d.created is not None:
        ev.append(f"docker inspect {f.proxy_name}: Created {d.created:%Y-%m-%d %H:%M:%S}Z, RestartCount="
                  f"{f.restart_count}")
    conf = 0.85 if pos is not None else 0.7
    if f.ci_run is not None and f.ci_run.rollback:
        conf = 0.93
        ev.append(quote(f"CI: {f.ci_run.rollback[0]}"))
    ev += status_row(f)
    return finding(CauseId.PREVIOUS_IMAGE_RUNNING, "The push is not running: the previous image was re-upped", conf,
                   ev, "`curl -s 127.0.0.1:<port>/version` reports the checkout's HEAD commit",
                   "The running build is not the checkout's HEAD: a failed deploy build re-tagged and started "
                   "the previous image. The new commit never ran; read the deploy's build log.")


def ci_deploy(f: Facts) -> Finding | None:
    """The deploy run failed: ``port is already allocated`` (port_conflict) or health-check attempts
    that never passed while the proxy log shows no crash (deploy_health_timeout, now confirmed)."""
    ci = f.ci_run
    if ci is None or ci.conclusion != "failure":
        return None
    step = f" (step {ci.failed_step!r})" if ci.failed_step else ""
    if ci.port_allocated:
        return finding(CauseId.PORT_CONFLICT, f"Port {f.ctx.proxy_port} already allocated (deploy run log)", 0.93,
                       [quote(f"CI{step}: {ln}") for ln in ci.port_allocated[:1] + ci.errors[:1]] + status_row(f),
                       "The deploy run log has no `port is already allocated` and `docker ps -a --filter "
                       f"publish={f.ctx.proxy_port}` shows only the proxy",
                       "Docker could not publish the port because another container holds it.")
    if ci.health_attempts and not ci.health_passed and f.fatal is None:
        ev = [quote(f"CI{step}: {ln}") for ln in [*ci.health_attempts[-2:], *ci.errors[:1], *ci.rollback[:1]]]
        return finding(CauseId.DEPLOY_HEALTH_TIMEOUT, "Deploy health check timed out (deploy run log)", 0.88,
                       [*ev, *status_row(f)],
                       "The deploy run log shows the health check passing, or the proxy log a crash",
                       "The deploy's health check never passed and the proxy log shows no crash: start-up "
                       "outlasted the 12 x 5 s wait. Confirmed by the run log, not inferred.")
    return None
