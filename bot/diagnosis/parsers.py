"""Pure parsers: text captured from one command in, typed model out.

Each parser names the command whose output it reads. Parsers never raise on odd
input: unparseable lines are skipped, because one strange line must not lose the
rest of a diagnosis. They tolerate ANSI codes, CRLF, blank and junk lines and U+FFFD
replacement characters. ``PARSERS`` maps the runbook's ``parser:`` names to them.

This module holds the Docker parsers (``docker ps``, ``docker inspect``, ``docker
stats``) and the registry; log parsers live in :mod:`bot.diagnosis.logparse`, host
parsers (``ss``, ``free``, ``df``, ``ps``, ``git``, ``curl``, SQL rows) in
:mod:`bot.diagnosis.hostparse`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from bot.config import EnvironmentConfig
from bot.diagnosis import evidenceparse, hostparse, logparse
from bot.diagnosis.textutil import ANSI_RE, clean_text, json_array, json_objects, parse_time
from bot.models import StepResult, StepStatus
from bot.runbook.sections import has_sections, split_sections
from bot.runbook.steps import StepId

__all__ = [
    "ANSI_RE", "PARSERS", "Container", "ContainerLog", "candidate_names", "parse_docker_log_parts",
    "resolve_names", "resolve_step_names", "ContainerState", "ContainerStats", "clean_text",
    "parse_cgroup_usage", "parse_docker_inspect", "parse_docker_ps", "parse_docker_stats",
    "parse_resource_usage", "parse_size", "pick_container", "human_bytes", "name_stats",
    "resolve_container",
]


class _ComposeLabels(BaseModel):
    """Compose labels of a container (``com.docker.compose.project`` / ``.service``)."""

    labels: dict[str, str] = Field(default_factory=dict)

    @property
    def compose_project(self) -> str | None:
        return self.labels.get("com.docker.compose.project")

    @property
    def compose_service(self) -> str | None:
        return self.labels.get("com.docker.compose.service")

    @property
    def oneoff(self) -> bool:
        """True for a ``docker compose run`` one-off container (never the service itself)."""
        return self.labels.get("com.docker.compose.oneoff", "").lower() == "true"


class Container(_ComposeLabels):
    """One row of ``docker ps -a --format '{{json .}}'``."""

    id: str = ""
    name: str
    image: str = ""
    state: str = ""  # running | exited | created | restarting | paused | dead | removing
    status: str = ""  # "Exited (1) 2 minutes ago", "Up 3 hours", "Restarting (2) 5 seconds ago"
    ports: str = ""
    created_at: str = ""

    @property
    def exit_code(self) -> int | None:
        """Exit code shown in ``status`` (``Exited (137) ...``), else None."""
        m = re.search(r"(?:Exited|Restarting) \((-?\d+)\)", self.status)
        return int(m.group(1)) if m else None

    @property
    def row(self) -> str:
        """The status row as ``docker ps`` shows it: ``qcc_test_proxy Exited (1) 2 minutes ago``."""
        return f"{self.name} {self.status or self.state}".strip()


def _parse_labels(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    if not isinstance(raw, str) or not raw:
        return out
    for part in raw.split(","):
        k, sep, v = part.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


def _state_from_status(status: str) -> str:
    s = status.lower()
    for prefix, state in (("up", "running"), ("exited", "exited"), ("created", "created"),
                          ("restarting", "restarting"), ("removal", "removing"), ("dead", "dead")):
        if s.startswith(prefix):
            return "paused" if state == "running" and "(paused)" in s else state
    return ""


def parse_docker_ps(text: str) -> list[Container]:
    """Parse ``docker ps -a --no-trunc --format '{{json .}}'`` (one JSON object per line).

    Tolerates ANSI codes, CRLF, blank lines and junk lines (skipped). ``Names`` may hold
    several comma-separated names; the first is used. Older Docker versions omit
    ``State``; it is derived from ``Status`` then.
    """
    out: list[Container] = []
    for row in json_objects(text):
        names = str(row.get("Names") or row.get("Name") or "").split(",")
        name = names[0].strip().lstrip("/")
        if not name:
            continue
        status = str(row.get("Status") or "")
        out.append(
            Container(
                id=str(row.get("ID") or ""),
                name=name,
                image=str(row.get("Image") or ""),
                state=str(row.get("State") or _state_from_status(status)).lower(),
                status=status,
                ports=str(row.get("Ports") or ""),
                labels=_parse_labels(row.get("Labels")),
                created_at=str(row.get("CreatedAt") or ""),
            )
        )
    return out


_C = TypeVar("_C", "Container", "ContainerState")


def resolve_container(containers: list[_C], project: str, service: str) -> _C | None:
    """Find the container of ``service`` in compose ``project`` (``docker ps`` rows or
    ``docker inspect`` states).

    Order: compose labels (project and service); then the fixed name ``<project>_<service>``
    (current qcc_plus); then compose's default ``<project>-<service>-1`` /
    ``<project>_<service>_1`` (older naming). Returns None when nothing matches.
    """
    containers = [c for c in containers if not c.oneoff]
    for c in containers:
        if c.compose_project == project and c.compose_service == service:
            return c
    for cand in candidate_names(project, service):
        for c in containers:
            if c.name == cand:
                return c
    return None


def candidate_names(project: str, service: str) -> tuple[str, ...]:
    """Container names compose gives ``service``: ``<project>_<service>`` (qcc_plus's fixed
    name), ``<project>-<service>-1`` (compose v2), ``<project>_<service>_1`` (compose v1)."""
    return (f"{project}_{service}", f"{project}-{service}-1", f"{project}_{service}_1")


def pick_container(containers: list[_C], explicit: str | None, project: str, service: str) -> _C | None:
    """The container named ``explicit`` when it is there, else :func:`resolve_container`
    (compose one-off ``run`` containers are never picked, not even by name: an old capture may
    hold a one-off's name as the resolved proxy)."""
    if explicit:
        hit = next((c for c in containers if c.name == explicit and not c.oneoff), None)
        if hit:
            return hit
    return resolve_container(containers, project, service)


class ContainerState(_ComposeLabels):
    """One element of ``docker inspect <ids>`` (a JSON array): the container's state.

    ``exit_code`` is None while the container never ran; ``started_at``/``finished_at``
    are None for Docker's zero time. ``memory_limit`` is in bytes (0 = no limit).
    ``dsn_configured`` tells whether ``PROXY_MYSQL_DSN`` is set and non-empty (None when
    the variable is absent); the value itself is never kept.
    """

    id: str = ""
    name: str
    image: str = ""
    status: str = ""  # created | running | restarting | exited | paused | dead | removing
    running: bool = False
    restarting: bool = False
    oom_killed: bool = False
    dead: bool = False
    pid: int = 0
    exit_code: int | None = None
    error: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    restart_count: int = 0
    restart_policy: str = ""
    memory_limit: int = 0
    dsn_configured: bool | None = None


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _section(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def parse_docker_inspect(text: str) -> list[ContainerState]:
    """Parse ``docker inspect <id>...`` (a JSON array of container objects).

    Junk before the array (``Error: No such object`` lines) is skipped; objects that are
    not containers are ignored. Never raises.
    """
    out: list[ContainerState] = []
    for obj in json_array(text):
        if not isinstance(obj, dict):
            continue
        state, config, host = _section(obj, "State"), _section(obj, "Config"), _section(obj, "HostConfig")
        name = str(obj.get("Name") or "").lstrip("/")
        if not name or not state:
            continue
        started = parse_time(state.get("StartedAt"))
        exit_code = state.get("ExitCode")
        dsn: bool | None = None
        for item in config.get("Env") or []:
            key, sep, value = str(item).partition("=")
            if sep and key == "PROXY_MYSQL_DSN":
                dsn = bool(value.strip())
        policy = _section(host, "RestartPolicy")
        status = str(state.get("Status") or "").lower()
        out.append(ContainerState(
            id=str(obj.get("Id") or ""),
            name=name,
            image=str(config.get("Image") or obj.get("Image") or ""),
            status=status,
            running=bool(state.get("Running")),
            restarting=bool(state.get("Restarting")) or status == "restarting",
            oom_killed=bool(state.get("OOMKilled")),
            dead=bool(state.get("Dead")),
            pid=_int(state.get("Pid")),
            exit_code=_int(exit_code) if (started or status != "created") and exit_code is not None else None,
            error=str(state.get("Error") or ""),
            started_at=started,
            finished_at=parse_time(state.get("FinishedAt")),
            restart_count=_int(obj.get("RestartCount")),
            restart_policy=str(policy.get("Name") or ""),
            memory_limit=_int(host.get("Memory")),
            labels=_parse_labels(config.get("Labels")),
            dsn_configured=dsn,
        ))
    return out


_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*$")
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "k": 1024, "m": 1024**2,
          "g": 1024**3}


def parse_size(value: str) -> int | None:
    """``"1.9GiB"`` → bytes (``"--"``, ``""`` and junk → None)."""
    m = _SIZE_RE.match(value or "")
    if not m:
        return None
    unit = _UNITS.get(m.group(2).lower())
    return round(float(m.group(1)) * unit) if unit is not None else None


def _pct(value: Any) -> float | None:
    m = re.match(r"^\s*([0-9]*\.?[0-9]+)\s*%?\s*$", str(value or ""))
    return float(m.group(1)) if m else None


class ContainerStats(BaseModel):
    """One container's resource usage: a row of ``docker stats --no-stream --all --format
    '{{json .}}'``, or the same figures read from the container's cgroup files
    (:func:`parse_cgroup_usage`).

    Values are None where Docker prints ``--`` (stopped containers) or junk. ``cpu_pct``
    is per core (``199.5`` = two cores busy); memory in bytes. ``source`` says which of the two
    read it; a cgroup row knows only the full container ``id`` until :meth:`named` gives it the
    name the container steps resolved.
    """

    name: str
    id: str = ""
    cpu_pct: float | None = None
    mem_usage: int | None = None
    mem_limit: int | None = None
    mem_pct: float | None = None
    pids: int | None = None
    source: str = "docker stats"  # or "cgroup files" (the evidence line names it)
    raw: str = ""  # "qcc_test_proxy CPU 199.50% MEM 1.9GiB / 1.94GiB (97.94%)"

    def named(self, name: str) -> ContainerStats:
        """A copy called ``name`` (its ``raw`` line too)."""
        detail = self.raw.split(" ", 1)[1] if " " in self.raw else self.raw
        return self.model_copy(update={"name": name, "raw": f"{name} {detail}"})

    def shown(self) -> tuple[str, str, str]:
        """``(CPU %, MEM USAGE / LIMIT, MEM %)`` as ``docker stats`` prints them, ``--`` where
        unknown: ``("198.73%", "1.402GiB / 1.921GiB", "72.98%")``."""
        cpu = f"{self.cpu_pct:.2f}%" if self.cpu_pct is not None else "--"
        mem = (f"{human_bytes(self.mem_usage)} / {human_bytes(self.mem_limit)}"
               if self.mem_usage is not None and self.mem_limit else "--")
        pct = f"{self.mem_pct:.2f}%" if self.mem_pct is not None else "--"
        return cpu, mem, pct


def name_stats(stats: list[ContainerStats], known: Iterable[Container | ContainerState]) -> list[ContainerStats]:
    """Name the rows that carry only a container id (cgroup reads) from containers ``docker ps``
    or ``docker inspect`` listed (full or short ids); an id none lists keeps its 12-character
    short id as the name. Rows that have a name are returned as they are."""
    names = {c.id: c.name for c in known if c.id}
    out = []
    for s in stats:
        if s.name:
            out.append(s)
            continue
        name = names.get(s.id) or next((n for i, n in names.items() if s.id.startswith(i)), s.id[:12])
        out.append(s.named(name))
    return out


def parse_docker_stats(text: str) -> list[ContainerStats]:
    """Parse ``docker stats --no-stream --all --format '{{json .}}'`` (one JSON object per line)."""
    out: list[ContainerStats] = []
    for row in json_objects(text):
        name = str(row.get("Name") or row.get("Container") or "").lstrip("/")
        if not name or name == "--":
            continue
        usage, _, limit = str(row.get("MemUsage") or "").partition("/")
        pids = str(row.get("PIDs") or "").strip()
        cpu = str(row.get("CPUPerc") or "--")
        mem = str(row.get("MemUsage") or "--")
        mem_pct = str(row.get("MemPerc") or "--")
        out.append(ContainerStats(
            name=name,
            id=str(row.get("ID") or ""),
            cpu_pct=_pct(cpu),
            mem_usage=parse_size(usage),
            mem_limit=parse_size(limit),
            mem_pct=_pct(mem_pct),
            pids=int(pids) if pids.isdigit() else None,
            raw=f"{name} CPU {cpu} MEM {mem} ({mem_pct})",
        ))
    return out


CGROUP_HEADER = "@@qcc-cgroup"
_CPU_HEADER = "@@qcc-cpu"
_CGROUP_ROW_RE = re.compile(r"^(mem|cpu) ([0-9a-f]{64})(?: (.*))?$")


def _digits(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _key_values(tokens: Iterable[str]) -> dict[str, str]:
    """``["usage=1", "limit=max"]`` -> ``{"usage": "1", "limit": "max"}``."""
    return dict(t.partition("=")[::2] for t in tokens)


def human_bytes(n: int) -> str:
    """Bytes the way ``docker stats`` prints them (binary units, 4 significant digits):
    ``544768`` -> ``"532KiB"``, ``25275990016`` -> ``"23.54GiB"``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.4g}{unit}"
        value /= 1024
    return f"{value:.4g}TiB"  # pragma: no cover - the loop always returns


def parse_cgroup_usage(text: str) -> list[ContainerStats]:
    """Parse the ``resource_usage`` step's cgroup read (cgroup v1 or v2, cgroupfs or systemd driver).

    The step prints ``@@qcc-cgroup memtotal_kb=N``, one ``mem <id> usage=B limit=B|max
    inactive_file=B pids=N`` line per running container, then two CPU samples, each
    ``@@qcc-cpu t=<epoch ns>`` followed by ``cpu <id> <cumulative CPU ns>`` lines. Figures match
    ``docker stats``: memory used is usage minus inactive file cache, the limit is the cgroup's
    (the host's memory when unlimited), CPU % is CPU time over wall time between the samples
    (per core, like Docker's). Rows keep the 64-hex id and no name (see
    :meth:`ContainerStats.named`). Unreadable values become None; junk lines are skipped.
    """
    memtotal: int | None = None
    mem: dict[str, dict[str, str]] = {}
    samples: list[tuple[int | None, dict[str, int]]] = []
    for line in clean_text(text).splitlines():
        line = line.strip()
        if line.startswith(CGROUP_HEADER):
            kb = _digits(_key_values(line.split()[1:]).get("memtotal_kb"))
            memtotal = kb * 1024 if kb is not None else None
            continue
        if line.startswith(_CPU_HEADER):
            samples.append((_digits(_key_values(line.split()[1:]).get("t")), {}))
            continue
        m = _CGROUP_ROW_RE.match(line)
        if not m:
            continue
        kind, cid, rest = m.group(1), m.group(2), m.group(3) or ""
        if kind == "mem":
            mem[cid] = _key_values(rest.split())
        elif samples and (ns := _digits(rest.strip())) is not None:
            samples[-1][1][cid] = ns
    cpu: dict[str, float] = {}
    if len(samples) >= 2 and samples[0][0] is not None and samples[-1][0] is not None:
        (t1, c1), (t2, c2) = samples[0], samples[-1]
        wall = t2 - t1  # type: ignore[operator]  # both checked above
        if wall > 0:
            cpu = {cid: max(0.0, (c2[cid] - c1[cid]) * 100.0 / wall) for cid in c1.keys() & c2.keys()}
    out: list[ContainerStats] = []
    for cid, f in mem.items():
        usage, inactive = _digits(f.get("usage")), _digits(f.get("inactive_file")) or 0
        used = usage - inactive if usage is not None and inactive < usage else usage
        limit = _digits(f.get("limit"))  # "max" (v2, unlimited) -> None
        if memtotal is not None and (limit is None or limit > memtotal):
            limit = memtotal
        pct = round(used * 100.0 / limit, 2) if used is not None and limit else None
        row = ContainerStats(name="", id=cid, cpu_pct=round(cpu[cid], 2) if cid in cpu else None,
                             mem_usage=used, mem_limit=limit, mem_pct=pct, pids=_digits(f.get("pids")),
                             source="cgroup files")
        shown_cpu, shown_mem, shown_pct = row.shown()
        row.raw = f"{cid[:12]} CPU {shown_cpu} MEM {shown_mem} ({shown_pct})"
        out.append(row)
    return out


def parse_resource_usage(text: str) -> list[ContainerStats]:
    """Parse the ``resource_usage`` step: its cgroup read (:func:`parse_cgroup_usage`) or, on a
    host where no container cgroup was found, ``docker stats`` (:func:`parse_docker_stats`)."""
    if CGROUP_HEADER in text:
        return parse_cgroup_usage(text)
    return parse_docker_stats(text)


class ContainerLog(BaseModel):
    """One container's ``docker logs --timestamps`` read by the ``proxy_logs`` step.

    ``name`` is the name the step asked for ("" for a single unmarked read, as older captures
    hold); ``exit_status`` is the exit status of ``docker logs`` (1: no such container);
    ``text`` is the raw output (stderr merged), ``lines`` its parsed lines.
    """

    name: str = ""
    exit_status: int | None = 0
    text: str = ""
    lines: list[logparse.LogLine] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


def parse_docker_log_parts(text: str) -> list[ContainerLog]:
    """Parse the ``proxy_logs`` step: one part per candidate container name, each between
    ``@@qcc-begin <name>`` and ``@@qcc-end <name> rc=N`` (:mod:`bot.runbook.sections`).
    Output without markers (older captures, a plain ``docker logs``) is one unnamed read."""
    if not has_sections(text):
        return [ContainerLog(text=text, lines=logparse.parse_docker_logs(text))]
    return [ContainerLog(name=name, exit_status=rc, text=body,
                         lines=logparse.parse_docker_logs(body) if rc == 0 else [])
            for name, (body, rc) in split_sections(text).items()]


def resolve_names(containers_output: str, project: str, proxy_service: str, mysql_service: str
                  ) -> dict[str, str]:
    """``{"proxy_container": ..., "mysql_container": ...}`` found in ``docker ps`` output
    (compose labels, then the candidate names); keys without a container are left out."""
    rows = parse_docker_ps(containers_output)
    out = {}
    for key, service in (("proxy_container", proxy_service), ("mysql_container", mysql_service)):
        c = resolve_container(rows, project, service)
        if c is not None:
            out[key] = c.name
    return out


def resolve_step_names(results: Mapping[str, StepResult], env: EnvironmentConfig) -> dict[str, str]:
    """The executor's :data:`~bot.runbook.executor.NameResolver`: names from the container status step."""
    status = results.get(StepId.CONTAINER_STATUS)
    if status is None or status.status != StepStatus.OK:
        return {}
    return resolve_names(status.output, env.compose_project, env.proxy_service, env.mysql_service)


Parser = Callable[..., Any]

# Every name used by the packaged runbook must exist here. A parser takes the step's text;
# one that also takes a keyword ``year`` gets the capture's year (undated journal lines).
PARSERS: dict[str, Parser] = {
    "docker_ps": parse_docker_ps,
    "docker_inspect": parse_docker_inspect,
    "docker_logs": logparse.parse_docker_logs,
    "docker_log_parts": parse_docker_log_parts,
    "log_lines": logparse.parse_log_lines,
    "schema_columns": hostparse.parse_schema_columns,
    "docker_stats": parse_docker_stats,
    "container_resources": parse_resource_usage,
    "ss_listeners": hostparse.parse_ss_listeners,
    "free": evidenceparse.parse_free_any,  # evidence: any locale (Chinese headers)
    "df": hostparse.parse_df,
    "ps": hostparse.parse_ps,
    "kernel_lines": logparse.parse_kernel_oom,
    "version_json": hostparse.parse_version_json,
    "git_log": hostparse.parse_git_log,
    "deploy_procs": hostparse.parse_deploy_procs,
    "http_code": hostparse.parse_http_code,
    # evidence (issue 10)
    "mysql_log": evidenceparse.parse_mysql_log,
    "actions_log": evidenceparse.parse_actions_log,
}
