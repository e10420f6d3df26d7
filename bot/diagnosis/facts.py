"""Facts: every step's output parsed once, plus what the rules need to reason (pure).

``collect_facts(steps, ctx) -> Facts``. A field is None when its step gave **no
evidence** (missing, failed, timed out, errored, skipped) and an empty list/False when
the step ran and showed **evidence of absence** — rules must tell the two apart.
``Facts.steps`` keeps each step's availability (``ok|failed|timeout|error|skipped|missing``).

The proxy container is resolved like the executor does (compose labels, then
``<project>_<service>``, then ``<project>-<service>-1``), or taken from the context.
The log is split into runs (a restarted container keeps every run's lines); ``run`` is
the run that matters: the last one that crashed (unless a later run came up), else the last.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from functools import cached_property
from typing import Any

from pydantic import BaseModel, Field

from bot.diagnosis import evidenceparse as ep
from bot.diagnosis import hostparse as hp
from bot.diagnosis import incident
from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.logparse import LogLine, OomEvent
from bot.diagnosis.logscan import HealthSignals, RunInfo, health_signals, scan_run, split_runs
from bot.diagnosis.parsers import (
    PARSERS,
    Container,
    ContainerLog,
    ContainerState,
    ContainerStats,
    name_stats,
    pick_container,
)
from bot.models import StepResult, StepStatus
from bot.runbook.loader import default_runbook
from bot.runbook.models import Runbook
from bot.runbook.steps import StepId

log = logging.getLogger(__name__)

DOCKER_STEPS = (StepId.CONTAINER_STATUS, StepId.CONTAINER_INSPECT, StepId.RESOURCE_USAGE, StepId.PORT_PUBLISHERS,
                StepId.PROXY_LOGS, StepId.GREP_MIGRATION, StepId.GREP_HEALTH_SCHEDULER, StepId.GREP_PANIC)
DAEMON_RE = re.compile(r"Cannot connect to the Docker daemon|Is the docker daemon running|error during "
                       r"connect"
                       r"|docker daemon is not running|dial unix [^ ]*docker\.sock", re.I)
NO_SPACE_RE = re.compile(r"no space left on device", re.I)
HEALTH_COLUMN = "health_check_model"
OOM_WINDOW = incident.FALLBACK  # kept for callers; the rule is bot.diagnosis.incident


class StepAvailability(BaseModel):
    """Whether a step produced evidence: ``status`` is a StepStatus value or ``missing``."""

    status: str
    error: str | None = None
    exit_status: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == StepStatus.OK.value

    def describe(self, step_id: str) -> str:
        """``proxy_logs: skipped (proxy_container not found)``."""
        return f"{step_id}: {self.status}" + (f" ({self.error})" if self.error else "")


class Facts(BaseModel):
    """Parsed evidence of one diagnosis run (see module doc for None vs empty)."""

    ctx: AnalysisContext
    steps: dict[str, StepAvailability] = Field(default_factory=dict)
    texts: dict[str, str] = Field(default_factory=dict)  # step id -> output + stderr + error
    containers: list[Container] | None = None
    proxy: Container | None = None
    mysql: Container | None = None
    inspect: list[ContainerState] | None = None
    proxy_state: ContainerState | None = None
    mysql_state: ContainerState | None = None
    log: list[LogLine] | None = None  # proxy_logs (or merged grep lines when the tail is unavailable)
    log_source: str = "none"  # proxy_logs | grep | none
    log_text: str | None = None  # the raw text of the proxy's log read (for the log summary)
    container_logs: list[ContainerLog] | None = None  # proxy_logs: one read per candidate name
    grep: dict[str, list[LogLine]] = Field(default_factory=dict)
    runs: list[RunInfo] = Field(default_factory=list)
    run: RunInfo | None = None
    crashed_runs: list[RunInfo] = Field(default_factory=list)
    health: HealthSignals = Field(default_factory=HealthSignals)
    schema_columns: list[hp.Column] | None = None
    stats: list[ContainerStats] | None = None
    proxy_stats: ContainerStats | None = None
    listeners: list[hp.Listener] | None = None
    publishers: list[Container] | None = None
    memory: hp.Memory | None = None
    disks: list[hp.Filesystem] | None = None
    processes: hp.ProcessTable | None = None
    oom: list[OomEvent] | None = None
    version: hp.VersionInfo | None = None
    commits: list[hp.Commit] | None = None
    root_status: int | None = None  # HTTP status of GET / on the proxy port (0: no answer)
    deploys: list[hp.DeployProc] | None = None
    docker_errors: list[str] = Field(default_factory=list)
    docker_timeouts: list[str] = Field(default_factory=list)
    no_space: list[str] = Field(default_factory=list)
    # evidence: inspect details, the MySQL log, the CI run log and every kernel event (issue 10)
    details: dict[str, ep.ContainerDetail] = Field(default_factory=dict)
    mysql_log: list[LogLine] | None = None
    ci_run: ep.CiRun | None = None
    kernel_events: list[ep.KernelEvent] | None = None  # every parsed kernel OOM event, dated or not

    # ---- availability
    def ok(self, step_id: str) -> bool:
        """True when the step ran and its output is evidence."""
        a = self.steps.get(step_id)
        return bool(a and a.ok)

    def availability(self, step_id: str) -> StepAvailability:
        return self.steps.get(step_id) or StepAvailability(status="missing")

    def missing(self, *step_ids: str) -> list[str]:
        """``describe()`` of each step among ``step_ids`` that gave no evidence."""
        return [self.availability(s).describe(s) for s in step_ids if not self.ok(s)]

    # ---- proxy container
    @property
    def proxy_name(self) -> str:
        """The proxy's container name: resolved, else configured, else ``<project>_<service>``."""
        if self.proxy:
            return self.proxy.name
        if self.proxy_state:
            return self.proxy_state.name
        return self.ctx.proxy_container or f"{self.ctx.compose_project}_{self.ctx.proxy_service}"

    @property
    def proxy_status(self) -> str | None:
        """``running|exited|created|restarting|dead|paused`` or None when unknown."""
        if self.proxy_state and self.proxy_state.status:
            return "restarting" if self.proxy_state.restarting else self.proxy_state.status
        if self.proxy and self.proxy.state:
            return self.proxy.state
        return None

    @property
    def proxy_running(self) -> bool | None:
        status = self.proxy_status
        return None if status is None else status == "running"

    @property
    def proxy_row(self) -> str | None:
        """The status row as quoted evidence: ``qcc_test_proxy Exited (1) 2 minutes ago``."""
        if self.proxy:
            return self.proxy.row
        if self.proxy_state:
            st = self.proxy_state
            code = f" ({st.exit_code})" if st.exit_code is not None and st.status == "exited" else ""
            return f"{st.name} {st.status}{code} (docker inspect)"
        return None

    @property
    def exit_code(self) -> int | None:
        if self.proxy_state and self.proxy_state.status in ("exited", "restarting", "dead") \
                and self.proxy_state.exit_code is not None:
            return self.proxy_state.exit_code
        return self.proxy.exit_code if self.proxy else None

    @property
    def restart_count(self) -> int:
        return self.proxy_state.restart_count if self.proxy_state else 0

    # ---- log
    @property
    def fatal(self) -> LogLine | None:
        return self.run.fatal if self.run else None

    @property
    def fatal_class(self) -> str | None:
        return self.run.fatal_class if self.run else None

    @cached_property
    def _all_lines(self) -> list[LogLine]:
        out = list(self.log or [])
        seen = {ln.raw for ln in out}
        for lines in self.grep.values():
            for ln in lines:
                if ln.raw not in seen:
                    seen.add(ln.raw)
                    out.append(ln)
        return out

    def all_lines(self) -> list[LogLine]:
        """The log plus every grep step's lines (the greps read the whole log, not the tail).
        Computed once, after the log steps are parsed."""
        return self._all_lines

    def find_lines(self, pattern: str | re.Pattern[str], limit: int = 3) -> list[LogLine]:
        """Log lines (log first, then greps) whose message matches ``pattern``."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        return [ln for ln in self.all_lines() if rx.search(ln.message)][:limit]

    @property
    def logs_empty(self) -> bool:
        """True when every log step gave no lines (whatever its status)."""
        return not self.log and not any(self.grep.values())

    # ---- schema, resources, build
    def schema_has(self, column: str = HEALTH_COLUMN) -> bool | None:
        """Whether table ``nodes`` has ``column``; None when the schema step gave no evidence
        or returned no rows for ``nodes`` (table absent: a different fault)."""
        if not self.schema_columns:
            return None
        return any(c.name.lower() == column.lower() for c in self.schema_columns)

    @property
    def mem_exhausted(self) -> bool | None:
        """Host available memory near zero (< max(150 MiB, 8 %)); None without ``free`` output."""
        m = self.memory
        if m is None or m.available_mb is None:
            return None
        return m.available_mb < max(150, int(0.08 * m.total_mb))

    @property
    def expects_mysql(self) -> bool:
        return self.ctx.has_mysql or self.mysql is not None or self.mysql_state is not None

    def port_holders(self) -> list[hp.Listener]:
        return [ln for ln in self.listeners or [] if ln.port == self.ctx.proxy_port]

    def other_publishers(self) -> list[Container]:
        """Containers publishing the proxy port that are not the proxy itself."""
        return [c for c in self.publishers or [] if c.name != self.proxy_name]

    def summary(self) -> dict[str, Any]:
        """Notable facts for display (``Diagnosis.facts``)."""
        run = self.run
        out: dict[str, Any] = {
            "proxy_container": (self.proxy.name if self.proxy else None)
            or (self.proxy_state.name if self.proxy_state else None),
            "proxy_status": self.proxy_row,
            "exit_code": self.exit_code,
            "oom_killed": self.proxy_state.oom_killed if self.proxy_state else None,
            "restart_count": self.restart_count,
            "started_at": self.proxy_state.started_at.isoformat()
            if self.proxy_state and self.proxy_state.started_at else None,
            "runs_in_log": len(self.runs),
            "phase": run.phase if run and run.fatal else None,
            "fatal_line": run.fatal.raw if run and run.fatal else None,
            "line_before_fatal": run.prev_line.raw if run and run.prev_line else None,
            "deployed_version": self.version.version if self.version else None,  # display key, not a step id
            "deployed_commit": self.version.git_commit if self.version else None,
            "head_commit": self.commits[0].sha if self.commits else None,
            "head_subject": self.commits[0].subject if self.commits else None,
            "host_available_mb": self.memory.available_mb if self.memory else None,
            "health_workers": len(self.processes.workers) if self.processes else None,
            "health_workers_rss_mb": self.processes.workers_rss_mb if self.processes else None,
            "disk_max_use_pct": max((d.use_pct for d in self.disks), default=None) if self.disks else None,
            "deploy_running": bool(self.deploys) if self.deploys is not None else None,  # display key, not a step id
        }
        if self.version and self.commits:
            out["deployed_is_head"] = same_commit(self.version.git_commit, self.commits[0].sha)
        if run and run.fatal and run.fatal.ts and self.proxy_state and self.proxy_state.started_at:
            out["first_error_after_start_s"] = round(
                (run.fatal.ts - self.proxy_state.started_at).total_seconds(), 1)
        return {k: v for k, v in out.items() if v is not None}


def same_commit(a: str, b: str) -> bool:
    """True when two (possibly abbreviated) SHAs name the same commit."""
    a, b = a.strip().lower(), b.strip().lower()
    return bool(a and b) and (a.startswith(b) or b.startswith(a))


def _ts_key(ln: LogLine) -> tuple[bool, float]:
    return ln.ts is None, ln.ts.timestamp() if ln.ts else 0.0


def _text(step: StepResult) -> str:
    return "\n".join(x for x in (step.output, step.stderr, step.error or "") if x)


def collect_facts(steps: list[StepResult], ctx: AnalysisContext, runbook: Runbook | None = None, *,
                  strict: bool = False) -> Facts:
    """Parse every step into :class:`Facts`, as the runbook says. Never raises on odd output.

    One loop: each step (or part) of ``runbook`` (default: the packaged one) whose result is
    ``ok`` is read by its registered ``parser`` into its ``fact`` field (a ``dict`` field
    collects one entry per step id); then :func:`_derive` picks the proxy, its log and state.
    A parser that raises is logged and its fact left unset (``strict``: the error propagates).
    """
    runbook = runbook or default_runbook()
    by_id = {s.id: s for s in steps}
    f = Facts(ctx=ctx)
    for s in steps:
        f.steps[s.id] = StepAvailability(status=s.status.value, error=s.error, exit_status=s.exit_status)
        f.texts[s.id] = _text(s)
    for step in runbook.steps:
        for step_id, parser_name, fact in step.leaves:
            result = by_id.get(step_id)
            if result is None or result.status != StepStatus.OK:
                continue
            parser = PARSERS[parser_name]
            try:
                value = parser(result.output, year=ctx.captured_at.year) if _takes_year(parser) \
                    else parser(result.output)
            except Exception:  # parsers never raise; one odd output must not lose the rest
                if strict:
                    raise
                log.exception("parser %s failed on step %s", parser_name, step_id)
                continue
            current = getattr(f, fact)
            if isinstance(current, dict):
                current[step_id] = value
            else:
                setattr(f, fact, value)
    _derive(f, by_id)
    return f


def _takes_year(parser: Callable[..., object]) -> bool:
    return "year" in inspect.signature(parser).parameters


def _derive(f: Facts, by_id: dict[str, StepResult]) -> None:
    """Facts computed from other facts: the proxy and MySQL containers and states, the proxy's
    log (from the read of the right container, else the greps), runs, stats, recent OOM kills."""
    ctx = f.ctx
    if f.containers is not None:
        f.proxy = pick_container(f.containers, ctx.proxy_container, ctx.compose_project, ctx.proxy_service)
        f.mysql = pick_container(f.containers, ctx.mysql_container, ctx.compose_project, ctx.mysql_service)
    if f.inspect is not None:
        f.proxy_state = _pick_state(f.inspect, f.proxy, ctx.proxy_container, ctx.compose_project,
                                    ctx.proxy_service)
        f.mysql_state = _pick_state(f.inspect, f.mysql, ctx.mysql_container, ctx.compose_project,
                                    ctx.mysql_service)
    if f.container_logs is not None:
        read = _pick_log(f.container_logs, f)
        if read is not None:
            f.log, f.log_text, f.log_source = read.lines, read.text, "proxy_logs"  # log source name, not a step id
    if not f.log and any(f.grep.values()):
        merged = {ln.raw: ln for lines in f.grep.values() for ln in lines}
        f.log, f.log_source = sorted(merged.values(), key=_ts_key), "grep"
    _scan_log(f)
    if f.stats is not None:
        f.stats = name_stats(f.stats, [*(f.containers or []), *(f.inspect or [])])
        f.proxy_stats = next((s for s in f.stats if s.name == f.proxy_name), None)
    # evidence: issue 10 facts (inspect details, every kernel event dated, the incident window)
    inspect_step = by_id.get(StepId.CONTAINER_INSPECT)
    if inspect_step is not None and inspect_step.status == StepStatus.OK:
        f.details = ep.parse_inspect_details(inspect_step.output)
    if f.oom is not None:
        f.kernel_events = ep.kernel_events_from(f.oom, year=ctx.captured_at.year)
        f.oom = _recent(f.kernel_events, f)
    _docker_health(f, by_id)


def _pick_log(reads: list[ContainerLog], f: Facts) -> ContainerLog | None:
    """The read of the proxy's container: the one named like the resolved proxy, else the
    only unnamed read (older captures), else the first that succeeded."""
    ok = [r for r in reads if r.ok]
    named = f.proxy.name if f.proxy else (f.proxy_state.name if f.proxy_state else None)
    return next((r for r in ok if r.name == named), None) or next(iter(ok), None)


def _pick_state(states: list[ContainerState], row: Container | None, explicit: str | None, project: str,
                service: str) -> ContainerState | None:
    """The inspected state of ``docker ps`` row ``row`` (by name), else picked like a row."""
    if row is not None and row.name:
        hit = next((s for s in states if s.name == row.name), None)
        if hit:
            return hit
    return pick_container(states, explicit, project, service)


def _recent(events: list[ep.KernelEvent], f: Facts) -> list[OomEvent]:
    """Kernel events of this incident (:mod:`bot.diagnosis.incident`): dated, inside the
    window around the proxy's run and MySQL's exit, and of the container's own pid."""
    st, ms = f.proxy_state, f.mysql_state
    windows = incident.incident_windows(
        captured_at=f.ctx.captured_at, proxy_started=st.started_at if st else None,
        proxy_finished=st.finished_at if st else None, proxy_running=f.proxy_running,
        mysql_finished=ms.finished_at if ms and not ms.running else None)
    return incident.relevant_events(events, windows, proxy_pid=st.pid if st else 0,
                                    mysql_pid=ms.pid if ms else 0)


def _scan_log(f: Facts) -> None:
    lines = f.log or []
    f.health = health_signals(f.all_lines())
    if not lines:
        return
    runs = split_runs(lines)
    running = f.proxy_running
    last_ended = None if running is None else not running
    infos = [scan_run(r, ended=True if i < len(runs) - 1 else last_ended) for i, r in enumerate(runs)]
    f.runs = infos
    f.crashed_runs = [r for r in infos if r.fatal]
    f.run = infos[-1]
    for i in range(len(infos) - 1, -1, -1):
        if infos[i].fatal:
            if not any(r.listening and not r.fatal for r in infos[i + 1:]):
                f.run = infos[i]
            break


def _docker_health(f: Facts, by_id: dict[str, StepResult]) -> None:
    for step_id in DOCKER_STEPS:
        s = by_id.get(step_id)
        if s is None:
            continue
        if s.status == StepStatus.TIMEOUT:
            f.docker_timeouts.append(f"{step_id}: {s.error or 'timed out'}")
        if s.status != StepStatus.OK or step_id in (StepId.CONTAINER_STATUS, StepId.CONTAINER_INSPECT):
            for line in _text(s).split("\n"):
                if DAEMON_RE.search(line) and "permission denied" not in line:
                    f.docker_errors.append(f"{step_id}: {line.strip()}")
                    break
    for sid, text in f.texts.items():
        for line in text.split("\n"):
            if NO_SPACE_RE.search(line) and sid != StepId.HOST_DISK:
                f.no_space.append(line.strip())
    for st in f.inspect or []:
        if NO_SPACE_RE.search(st.error):
            f.no_space.append(f"{st.name}: {st.error}")
    f.no_space = list(dict.fromkeys(f.no_space))[:5]
