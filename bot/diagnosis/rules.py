"""The ordered rule list: ``Rule = Callable[[Facts], Finding | None]``, one small function per cause.

Rules read :class:`~bot.diagnosis.facts.Facts` only and return a finding with a confidence
in 0..1, verbatim evidence, a ``rule_out`` check and a ``detail`` sentence, or None. The
engine folds over :data:`RULES` in order; on equal confidence the earlier (more specific)
rule ranks first. Log-driven crash rules live in :mod:`bot.diagnosis.crashrules`; this
module holds the container, host, deploy and health-check rules.

Reasoning follows the field notes: containers absent while a deploy/build runs is a deploy,
not a crash; health checks killed while claude/node processes pile up and host memory runs
out is an overload even when the container is Up; "Up" with every node failed is a finding,
not ``healthy``.
"""

from __future__ import annotations

from bot.diagnosis import checklist, crashrules, runningrules
from bot.diagnosis.evidence import Finding, Rule, finding, q, status_row
from bot.diagnosis.facts import Facts
from bot.models import CauseId
from bot.runbook.steps import StepId

DEPLOY_WAIT_S = 60  # deploy-server.sh polls http://127.0.0.1:<port>/ 12 x 5 s


def docker_unresponsive(f: Facts) -> Finding | None:
    """Docker commands fail with "Cannot connect to the Docker daemon" or time out."""
    if f.docker_errors:
        conf, ev = 0.92, f.docker_errors[:3]
    elif f.docker_timeouts:
        if f.ok(StepId.CONTAINER_STATUS):
            conf = 0.3  # `docker ps` answered: slow, not down
        else:
            conf = 0.55 + 0.1 * min(len(f.docker_timeouts) - 1, 2) + (0.05 if f.ok(StepId.HOST_MEMORY) else 0.0)
        ev = f.docker_timeouts[:3]
    else:
        return None
    return finding(CauseId.DOCKER_UNRESPONSIVE, "Docker daemon not answering", conf, ev,
                   "`docker info` answers within a few seconds and `systemctl is-active docker` says active",
                   "Docker commands fail or hang while the host itself answers, "
                   "so container state and logs are unknown: look at the daemon first (`journalctl -u docker`).")


def deploy_in_progress(f: Facts) -> Finding | None:
    """A deploy-server.sh / ``docker compose up --build`` process runs while the proxy is not up."""
    if not f.deploys:
        return None
    ev = [d.raw for d in f.deploys[:3]]
    status = f.proxy_status
    if f.containers is not None and f.proxy is None:
        conf = 0.9
        ev.append(f"docker ps -a (project {f.ctx.compose_project}): no {f.ctx.proxy_service} container")
    elif status in ("created", "restarting"):
        conf = 0.8
    elif status == "exited":
        conf = 0.7
    elif status == "running":
        conf = 0.35
    else:
        conf = 0.6
    return finding(CauseId.DEPLOY_IN_PROGRESS, "A deploy is running (deploy-server.sh / compose build)", conf,
                   [*ev, *status_row(f)],
                   "`ps -eo pid,etimes,args | grep deploy-server.sh` is empty and the proxy is still missing",
                   "deploy-server.sh removes both containers and then builds, so minutes without a proxy are "
                   "expected, not a crash; diagnose again when the deploy process has ended.")


def container_missing(f: Facts) -> Finding | None:
    """``docker ps -a`` ran and lists no proxy container, and no deploy is running."""
    if f.containers is None or f.proxy is not None or f.proxy_state is not None or f.deploys:
        return None
    others = [c.row for c in f.containers][:3]
    ev = [f"docker ps -a --filter label=com.docker.compose.project={f.ctx.compose_project}: "
          f"no {f.ctx.proxy_service} container" + ("" if others else " (no containers at all)"), *others]
    deploy_known = f.ok(StepId.DEPLOY_RUNNING)
    detail = "The proxy container does not exist (removed, or never created by compose)."
    if not deploy_known:
        detail += " The deploy check gave no evidence, so a deploy in progress is not ruled out."
    return finding(CauseId.CONTAINER_MISSING, "Proxy container does not exist", 0.85 if deploy_known else 0.6, ev,
                   "`docker ps -a` lists the proxy container (under another name or project)", detail)


def _port_holders(f: Facts) -> list[str]:
    port = f.ctx.proxy_port
    ev = [f"{c.row} publishes {port} ({c.ports})" for c in f.other_publishers()]
    for ln in f.port_holders():
        docker_proxy = bool(ln.processes) and all(name == "docker-proxy" for name, _ in ln.processes)
        if docker_proxy and (f.proxy_running or ev):
            continue  # the proxy's own published port, or the publisher container is already named
        ev.append(f"ss -ltnp: {ln.raw}")
    return ev


def port_conflict(f: Facts) -> Finding | None:
    """``bind: address already in use`` / ``port is already allocated`` / stuck ``Created`` with the
    port held by another process or container."""
    lines = f.find_lines(r"address already in use|port is already allocated", limit=2)
    state_err = f.proxy_state.error if f.proxy_state and "already" in f.proxy_state.error else ""
    holders = _port_holders(f)
    created = f.proxy_status == "created"
    if lines or state_err:
        conf = 0.95 if holders else 0.88
    elif created and holders:
        conf = 0.85
    elif created and not f.deploys:
        conf = 0.4
    else:
        return None
    ev = [*[x for ln in lines for x in q(ln)], *([f"docker inspect {f.proxy_name}: {state_err}"] if state_err
                                                 else []), *status_row(f), *holders]
    port = f.ctx.proxy_port
    detail = f"Port {port} is taken, so the proxy cannot listen (or Docker cannot publish it)."
    if not holders:
        detail += " Who holds it is unknown (ss/publish checks gave no holder)."
    return finding(CauseId.PORT_CONFLICT, f"Port {port} already in use", conf, ev,
                   f"`ss -ltnp 'sport = :{port}'` and `docker ps -a --filter publish={port}` show nothing but "
                   "the proxy holding the port", detail)


def disk_full(f: Facts) -> Finding | None:
    """df at 95 % or more, or ``no space left on device`` anywhere."""
    full = [d for d in f.disks or [] if d.use_pct >= 95]
    if not full and not f.no_space:
        return None
    if f.no_space:
        conf = 0.93 if full else 0.88
    elif f.proxy_running is not True:
        conf = 0.75
    else:
        conf = 0.82 if max(d.use_pct for d in full) >= 99 else 0.6  # evidence: a full disk under a live proxy
    ev = [*f.no_space[:2], *[f"df: {d.raw}" for d in full]]
    if f.proxy_running is False:
        ev += status_row(f)
    return finding(CauseId.DISK_FULL, "Disk full", conf, ev,
                   "`df -P -k /var/lib/docker /` shows under 95 % used and no `no space left on device` appears",
                   "Writes fail when the docker root fills (logs, images, MySQL data); free space before restarting.")


def startup_health_check_overload(f: Facts) -> Finding | None:
    """claude CLI health checks pile up and exhaust the host (killed checks, many workers, memory/CPU)."""
    hs, ev, kinds = f.health, [], []
    if hs.killed:
        kinds.append("killed")
        ev += [x for ln in hs.killed[:2] for x in q(ln)]
        if len(hs.killed) > 2:
            ev.append(f"... {len(hs.killed)} health checks ended with `signal: killed`")
    workers = f.processes.workers if f.processes is not None else []
    total = f.memory.total_mb if f.memory else 2048
    rss_mb = f.processes.workers_rss_mb if f.processes is not None else 0
    if len(workers) >= 4 or (workers and rss_mb >= 0.35 * total):
        kinds.append("workers")
        ev += [f"ps: {len(workers)} claude/node processes using {rss_mb} MB RSS", workers[0].evidence]
    if f.mem_exhausted and f.memory is not None:
        kinds.append("memory")
        ev.append(f.memory.evidence)
    if f.proxy_stats is not None and (f.proxy_stats.cpu_pct or 0) >= 150:
        kinds.append("cpu")
        ev.append(f"{f.proxy_stats.source}: {f.proxy_stats.raw}")
    kernel = [e for e in f.oom or [] if e.kind != "invoked"]
    if kernel:
        kinds.append("kernel_oom")  # signal kind, not a step id
        ev.append(kernel[0].raw)
    if hs.total_nodes and len(hs.threshold_nodes) >= hs.total_nodes and hs.killed:
        kinds.append("all_nodes_failed")
        ev += q(next(iter(hs.threshold_nodes.values())))
    if "killed" not in kinds and (kinds == ["workers"] or "workers" not in kinds):
        return None  # killed checks alone are a weak finding; worker counts alone are none
    conf = min(0.95, 0.45 + 0.12 * len(kinds))
    if hs.total_line is not None:
        ev += q(hs.total_line)
    up = " The proxy is still Up, but checks and requests are starved." if f.proxy_running else ""
    return finding(CauseId.STARTUP_HEALTH_CHECK_OVERLOAD, "Health-check processes exhausted the host", conf, ev,
                   "During a full health check `ps -eo comm | grep -c -E '^(claude|node)$'` stays low, "
                   "`free -m` shows memory available and no check ends with `signal: killed`",
                   "Each claude CLI health check costs 150-200 MB; from 30 s after start they pile up on the "
                   f"2 vCPU / 2 GB host (after the deploy's check passed) and get killed.{up} "
                   f"Signals: {', '.join(kinds)}.")


def deploy_health_timeout(f: Facts) -> Finding | None:
    """Start-up visible, no error, but the listening line came after the deploy's 60 s wait (or not yet)."""
    run = f.run
    if run is None or run.fatal is not None or run.version is None or run.first is None:
        return None
    port = f.ctx.proxy_port
    wait = f"deploy-server.sh polls http://127.0.0.1:{port}/ 12 x 5 s = {DEPLOY_WAIT_S} s"
    delay = run.listen_delay_s
    if run.listening is not None:
        if delay is None or delay <= DEPLOY_WAIT_S:
            return None
        conf, ev = 0.75, [*q(run.first), *q(run.listening), f"listening {delay:.0f} s after start; {wait}"]
        detail = "The proxy started slowly but without error; the deploy gave up before it listened."
    else:
        if f.proxy_running is False or run.first.ts is None:
            return None
        up_s = (f.ctx.captured_at - run.first.ts).total_seconds()
        conf = 0.68 if up_s > DEPLOY_WAIT_S else 0.5
        ev = [*q(run.first), *q(run.last), *status_row(f), f"no listening line {up_s:.0f} s after start; {wait}"]
        detail = "Start-up is still going (no error, no listening line yet); it may outlast the deploy's wait."
    return finding(CauseId.DEPLOY_HEALTH_TIMEOUT, "Slow start-up outlasted the deploy's 60 s health wait", conf, ev,
                   f"`docker logs --timestamps` shows `listening on :{port}` within {DEPLOY_WAIT_S} s of the "
                   "first start-up line", detail)


TLS_EXPIRED_RE = r"x509: certificate has expired or is not yet valid"


def tls_certificate_expired(f: Facts) -> Finding | None:
    """The proxy is Up but its upstream calls fail TLS verification with an expired (or not yet
    valid) certificate: Go prints ``x509: certificate has expired or is not yet valid: current time
    … is after …`` in the failed health check or request line."""
    if f.proxy_running is not True:
        return None
    lines = f.find_lines(TLS_EXPIRED_RE, limit=3)
    if not lines:
        return None
    failing = len(f.health.threshold_nodes) or len(f.health.failed)
    conf = 0.9 if failing else 0.75
    return finding(CauseId.TLS_CERTIFICATE_EXPIRED, "TLS certificate expired (upstream calls fail x509 verification)",
                   conf, [*status_row(f), *[x for ln in lines for x in q(ln)]],
                   "No `x509: certificate has expired` line in the log, and "
                   "`openssl s_client -connect <upstream>:443` shows a certificate valid today",
                   "The proxy runs, but every call to the upstream fails certificate verification, so the nodes "
                   "fail their health checks and requests get 503: renew the certificate (or fix the host's clock, "
                   "when `current time` in the line is wrong).")


def up_but_useless(f: Facts) -> Finding | None:
    """Container Up, but every node failed its health check (not killed: that is the overload) or 503s."""
    hs = f.health
    if f.proxy_running is not True:
        return None
    at_threshold = len(hs.threshold_nodes)
    all_failed = at_threshold > 0 and (hs.total_nodes is None or at_threshold >= hs.total_nodes)
    if not (all_failed or len(hs.unavailable) >= 3) or (hs.killed and len(hs.killed) * 2 >= len(hs.failed)):
        return None
    ev = [x for ln in list(hs.threshold_nodes.values())[:3] for x in q(ln)]
    ev += q(hs.failed[-1] if hs.failed else None) + q(hs.unavailable[-1] if hs.unavailable else None)
    n = hs.total_nodes or len(hs.threshold_nodes)
    return finding(CauseId.UNKNOWN, f"Up but not serving: {n} node(s) failed their health checks", 0.6,
                   [*status_row(f), *ev],
                   "No `reached failure threshold` lines and requests through the proxy return 200",
                   "The container is Up and listening, but every node reached the failure threshold, "
                   "so requests get 503; the reason is in the quoted health-check stderr (not a crash, not healthy).")


def healthy(f: Facts) -> Finding | None:
    """Healthy only when every checklist item is ✓ (:mod:`bot.diagnosis.checklist`).

    Any ✗ or ? vetoes it: the rule then returns ``unknown`` naming the items that are not
    proven and the check that would settle each (other rules name the cause when they can).
    A slow start-up (listening after the deploy's wait) is left to ``deploy_health_timeout``.
    When the tail begins mid-run (a long-running proxy) /version answering proves it listens.
    """
    run = f.run
    if f.proxy_running is not True or run is None or run.fatal:
        return None
    if run.listening is None and run.start_seen:
        return None  # still starting: deploy_health_timeout
    if (delay := run.listen_delay_s) is not None and delay > DEPLOY_WAIT_S:
        return None
    items = checklist.build_checklist(f)
    bad = checklist.vetoes(items)
    if bad:
        failed = [i for i in bad if i.status == "fail"]
        ev = [*status_row(f), *[f"{i.mark} {i.label}: {i.line}" for i in bad]]
        settle = "; ".join(f"{i.label}: {i.settle}" for i in bad if i.settle)
        what = ", ".join(i.label for i in bad)
        return finding(CauseId.UNKNOWN, f"Up, but health not proven ({len(bad)} checklist item(s) not ✓)",
                       0.5 if failed else 0.4, ev,
                       "Every checklist item shows ✓ (" + (settle or "re-run the diagnosis") + ")",
                       f"Not proven: {what}. The bot says healthy only on positive evidence from every item.")
    v = f.version
    assert v is not None  # version_answers is ✓
    ev = [*status_row(f), *q(run.listening),
          f"/version: {v.version} (commit {v.git_commit or '?'}, built {v.build_date or '?'})",
          f"checklist: {len(items)}/{len(items)} items ✓"]
    conf, detail = 0.85, "Every checklist item has positive evidence."
    if run.listening is None:
        conf = 0.75
        ev.append(f"listening line outside the captured log ({run.line_count} lines of this run, start not "
                  "included); /version answers, so it listens")
        detail = "A long-running proxy: its start-up lines are older than the captured tail."
    return finding(CauseId.HEALTHY, "Proxy is up and answering", conf, ev,
                   "An error after the listening line, failed health checks, or /version not answering",
                   detail)


RULES: list[Rule] = [
    docker_unresponsive,
    deploy_in_progress,
    port_conflict,
    crashrules.migration_failed,
    crashrules.mysql_access_denied,
    crashrules.config_error,
    runningrules.dsn_wrong_target,
    crashrules.mysql_unavailable,
    runningrules.bad_data,
    runningrules.mysql_oom_killed,
    runningrules.mysql_lost,
    runningrules.disk_full_mysql_log,
    disk_full,
    crashrules.panic,
    crashrules.runtime_fatal,
    startup_health_check_overload,
    crashrules.oom_killed,
    crashrules.crash_loop,
    container_missing,
    deploy_health_timeout,
    crashrules.exit_without_crash,
    tls_certificate_expired,
    up_but_useless,
    runningrules.listen_addr_mismatch,
    runningrules.previous_image_running,
    runningrules.ci_deploy,
    healthy,
]
