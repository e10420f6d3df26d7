"""The health checklist: ``healthy`` is a conclusion drawn only from positive evidence. Pure.

``build_checklist(facts) -> list[CheckItem]``, in this order (MySQL items only when the
environment has MySQL):

1. ``proxy_running`` — the proxy container is running, not restarting, no unexplained restarts;
2. ``listening_port`` — its listening line names the configured (published) port;
3. ``version_answers`` — ``/version`` answers on that port (and says which build);
4. ``storage`` — the run uses MySQL (not the silent SQLite fallback);
5. ``mysql_healthy`` — the MySQL container runs and its Docker healthcheck says ``healthy``;
6. ``schema_answered`` — the bot's own schema query answered;
7. ``disk`` / ``memory`` — below :data:`DISK_PCT` used / above the available-memory floor;
8. ``no_error_after_listen`` — no error line after the listening line (this run);
9. ``health_checks`` — no killed health checks, no node at its failure threshold;
10. ``no_kernel_kill`` — no kernel OOM kill of a relevant process in the incident window;
11. ``running_build`` — the running build is the checkout's HEAD (only when both are known).

Each item is ``ok`` (✓), ``fail`` (✗) or ``unknown`` (?) with the deciding line and, for
``unknown``, the check that would settle it. :func:`vetoes` lists the items that are not ✓.
"""

from __future__ import annotations

from bot.diagnosis import evidenceparse as ep
from bot.diagnosis import runningrules as rr
from bot.diagnosis.evidence import quote
from bot.diagnosis.facts import Facts, same_commit
from bot.models import CheckItem
from bot.runbook.steps import StepId

DISK_PCT = 90


def _item(id_: str, label: str, status: str, line: str = "", settle: str = "") -> CheckItem:
    return CheckItem(id=id_, label=label, status=status, line=quote(line) if line else "",
                     settle=settle)


def _proxy_running(f: Facts) -> CheckItem:
    label = "proxy container running, no unexplained restarts"
    settle = f"`docker inspect -f '{{{{.State.Status}}}} {{{{.RestartCount}}}}' {f.proxy_name}`"
    status = f.proxy_status
    if status is None:
        why = "; ".join(f.missing(StepId.CONTAINER_STATUS, StepId.CONTAINER_INSPECT)) or "no proxy container"
        return _item("proxy_running", label, "unknown", why, settle)
    row = f.proxy_row or f.proxy_name
    if status != "running":
        return _item("proxy_running", label, "fail", row, settle)
    d = rr.proxy_detail(f)
    health = (d.health if d else None) or (ep.ps_health(f.proxy.status) if f.proxy else None)
    if health == "unhealthy":
        return _item("proxy_running", label, "fail", f"{row}; Health.Status=unhealthy", settle)
    current_crashed = f.run is not None and f.run.fatal is not None
    if f.restart_count > 0 or current_crashed:
        why = f"RestartCount={f.restart_count}" if f.restart_count else \
            f"{len(f.crashed_runs)} crashed run(s) in the log"
        return _item("proxy_running", label, "fail", f"{row}; {why}", settle)
    if f.proxy_state is None:
        return _item("proxy_running", label, "unknown", f"{row} (restart count unknown: "
                     f"{f.availability(StepId.CONTAINER_INSPECT).describe(StepId.CONTAINER_INSPECT)})", settle)
    # Runs that crashed *before* the current one, with RestartCount=0: no restart policy
    # restarted them (the compose file has none); someone started the proxy again (the fix's
    # restart, a deploy), and this run is the one being judged. Shown, not failed.
    earlier = [r for r in f.crashed_runs if r is not f.run]
    if earlier and f.run is not None and f.run.first is not None:
        return _item("proxy_running", label, "ok", f"{row}; RestartCount=0; {len(earlier)} earlier run(s) "
                     f"crashed before this run started at "
                     f"{f.run.first.ts.strftime('%Y-%m-%d %H:%M:%S') if f.run.first.ts else '?'}")
    return _item("proxy_running", label, "ok", f"{row}; RestartCount=0")


def _listening(f: Facts) -> CheckItem:
    want = rr.published_container_port(f) or f.ctx.proxy_port
    label = f"listening line names port {want}"
    settle = f"`docker logs {f.proxy_name} 2>&1 | grep 'listening on'`"
    run = f.run
    if run is None:
        why = "no proxy log" if f.log is None else "empty proxy log"
        return _item("listening_port", label, "unknown",
                     f"{why} ({f.availability(StepId.PROXY_LOGS).describe(StepId.PROXY_LOGS)})", settle)
    if run.listening is not None:
        got = rr.listen_port(run.listening)
        return _item("listening_port", label, "ok" if got == want else "fail", run.listening.raw, settle)
    d = rr.proxy_detail(f)
    if not run.start_seen and f.version is not None:
        env = f"PROXY_LISTEN_ADDR=:{d.listen_port}; " if d and d.listen_port else ""
        if d and d.listen_port and d.listen_port != want:
            return _item("listening_port", label, "fail", f"docker inspect: PROXY_LISTEN_ADDR=:{d.listen_port}",
                         settle)
        return _item("listening_port", label, "ok",
                     f"listening line older than the captured tail; {env}/version answered on {f.ctx.proxy_port}")
    return _item("listening_port", label, "unknown" if run.fatal is None else "fail",
                 f"no listening line in this run (last line: {run.last.raw if run.last else '-'})", settle)


def _version(f: Facts) -> CheckItem:
    label = f"/version answers on port {f.ctx.proxy_port}"
    settle = f"`curl -s -m 5 http://127.0.0.1:{f.ctx.proxy_port}/version`"
    if f.version is not None:
        v = f.version
        return _item("version_answers", label, "ok", f"/version: {v.version} (commit {v.git_commit or '?'}, "
                                                     f"built {v.build_date or '?'})")
    a = f.availability(StepId.DEPLOYED_VERSION)
    if a.ok:
        return _item("version_answers", label, "fail", f"curl exit {a.exit_status}: no JSON from /version", settle)
    return _item("version_answers", label, "unknown", a.describe(StepId.DEPLOYED_VERSION), settle)


def _storage(f: Facts) -> CheckItem | None:
    run = f.run
    if run is None or run.storage is None:
        return None
    if run.storage == "sqlite":
        return _item("storage", "storage is MySQL", "fail", run.storage_line.raw if run.storage_line else "sqlite")
    return _item("storage", "storage is MySQL", "ok", run.storage_line.raw if run.storage_line else "mysql")


def _mysql(f: Facts) -> CheckItem:
    label = "MySQL container running and healthy"
    name = f.mysql.name if f.mysql else f.ctx.mysql_container or f"{f.ctx.compose_project}_{f.ctx.mysql_service}"
    settle = f"`docker inspect -f '{{{{.State.Status}}}} {{{{.State.Health.Status}}}}' {name}`"
    running, health, row = rr.mysql_running(f), rr.mysql_health(f), rr.mysql_row(f)
    if running is None:
        return _item("mysql_healthy", label, "unknown", "; ".join(f.missing(StepId.CONTAINER_STATUS)) or "not seen",
                     settle)
    if running is False:
        return _item("mysql_healthy", label, "fail", row or f"no {f.ctx.mysql_service} container", settle)
    if health == "healthy":
        return _item("mysql_healthy", label, "ok", f"{row}; Health.Status=healthy")
    if health == "unhealthy":
        return _item("mysql_healthy", label, "fail", f"{row}; Health.Status=unhealthy", settle)
    return _item("mysql_healthy", label, "unknown", f"{row}; Health.Status={health or 'none'}", settle)


def _schema(f: Facts) -> CheckItem:
    label = "the bot's own schema query answered"
    settle = "re-run the diagnosis with the MySQL tunnel up (`schema_nodes`)"
    a = f.availability(StepId.SCHEMA_NODES)
    if a.ok and f.schema_columns:
        return _item("schema_answered", label, "ok", f"schema_nodes: {len(f.schema_columns)} columns of nodes")
    if a.ok:
        return _item("schema_answered", label, "fail", "schema_nodes: table nodes has no columns", settle)
    if a.status in ("failed", "error", "timeout"):
        return _item("schema_answered", label, "fail", a.describe(StepId.SCHEMA_NODES), settle)
    return _item("schema_answered", label, "unknown", a.describe(StepId.SCHEMA_NODES), settle)


def _disk(f: Facts) -> CheckItem:
    label = f"disk below {DISK_PCT} % used, no `no space left`"
    settle = "`df -P -k /var/lib/docker /`"
    if f.no_space:
        return _item("disk", label, "fail", f.no_space[0], settle)
    if f.disks is None or not f.disks:
        return _item("disk", label, "unknown", f.availability(StepId.HOST_DISK).describe(StepId.HOST_DISK), settle)
    worst = max(f.disks, key=lambda d: d.use_pct)
    return _item("disk", label, "ok" if worst.use_pct < DISK_PCT else "fail", f"df: {worst.raw}", settle)


def _memory(f: Facts) -> CheckItem:
    label = "host memory available"
    settle = "`LC_ALL=C free -m`"
    exhausted = f.mem_exhausted
    if exhausted is None or f.memory is None:
        return _item("memory", label, "unknown", f.availability(StepId.HOST_MEMORY).describe(StepId.HOST_MEMORY)
                     + ("" if not f.ok(StepId.HOST_MEMORY) else " (no `Mem:` row understood)"), settle)
    return _item("memory", label, "fail" if exhausted else "ok", f.memory.evidence, settle)


def _errors(f: Facts) -> CheckItem:
    label = "no error line after the listening line"
    settle = f"`docker logs --since 30m {f.proxy_name} 2>&1 | grep -i error`"
    lines = rr.after_listening(f)
    if lines is None:
        return _item("no_error_after_listen", label, "unknown",
                     f.availability(StepId.PROXY_LOGS).describe(StepId.PROXY_LOGS), settle)
    if f.run is not None and f.run.listening is None and f.run.start_seen:
        return _item("no_error_after_listen", label, "unknown", "no listening line in this run", settle)
    bad = [ln for ln in lines if rr.is_error_line(ln)]
    if bad:
        return _item("no_error_after_listen", label, "fail", bad[0].raw, settle)
    return _item("no_error_after_listen", label, "ok", f"no error in the {len(lines)} line(s) after it")


def _health_checks(f: Facts) -> CheckItem:
    label = "node health checks not killed or failing"
    hs = f.health
    if hs.killed:
        return _item("health_checks", label, "fail", hs.killed[0].raw)
    if hs.threshold_nodes:
        return _item("health_checks", label, "fail", next(iter(hs.threshold_nodes.values())).raw)
    if len(hs.unavailable) >= 3:
        return _item("health_checks", label, "fail", hs.unavailable[-1].raw)
    if f.log is None and not any(f.grep.values()):
        return _item("health_checks", label, "unknown", "no proxy log",
                     f"`docker logs {f.proxy_name} 2>&1 | grep -i HealthScheduler`")
    return _item("health_checks", label, "ok", f"{len(hs.failed)} failed check(s), none killed, no node at threshold")


def _kernel(f: Facts) -> CheckItem:
    label = "no kernel OOM kill in the incident window"
    settle = "`sudo dmesg --time-format=iso | grep -i -E 'killed process|oom-kill'`"
    if f.oom is None:
        why = f.availability(StepId.KERNEL_OOM).describe(StepId.KERNEL_OOM)
        return _item("no_kernel_kill", label, "unknown", why, settle)
    kills = [e for e in f.oom if e.kind != "invoked"]
    if kills:
        return _item("no_kernel_kill", label, "fail", kills[0].raw, settle)
    ignored = len([e for e in f.kernel_events or [] if e.event.kind != "invoked"])
    note = f" ({ignored} older, undated or other-pid event(s) ignored)" if ignored else ""
    return _item("no_kernel_kill", label, "ok", f"kernel_oom: no kill in the window{note}")


def _build(f: Facts) -> CheckItem | None:
    if f.version is None or not f.version.git_commit or not f.commits:
        return None
    head = f.commits[0]
    same = same_commit(f.version.git_commit, head.sha)
    line = f"/version commit {f.version.git_commit} vs HEAD {head.sha[:7]} {head.subject}"
    return _item("running_build", "running build is the checkout's HEAD", "ok" if same else "fail", line,
                 f"`git -C {f.ctx.workdir} log -3 --oneline` and `curl -s 127.0.0.1:{f.ctx.proxy_port}/version`")


def build_checklist(f: Facts) -> list[CheckItem]:
    """The checklist (see module doc); never raises on thin facts."""
    items: list[CheckItem | None] = [_proxy_running(f), _listening(f), _version(f), _storage(f)]
    if f.expects_mysql:
        items += [_mysql(f), _schema(f)]
    items += [_disk(f), _memory(f), _errors(f), _health_checks(f), _kernel(f), _build(f)]
    return [i for i in items if i is not None]


def vetoes(items: list[CheckItem]) -> list[CheckItem]:
    """The items that are not ✓ (each one vetoes ``healthy``)."""
    return [i for i in items if i.status != "ok"]
