"""Scenario -> ``state.json``: the dict the stand-ins in ``sandbox/qcc_sandbox/bin/`` read.

:func:`build_state` resolves a validated :class:`~qcc_sandbox.scenario.Scenario` into
absolute epoch times (from ``now``), container IDs, PIDs, compose labels and log chunks with
explicit start offsets (snippets spliced in). The shapes are documented in
``sandbox/qcc_sandbox/bin/_host.py``.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from qcc_sandbox.scenario import (
    ContainerSpec,
    LogChunk,
    Outcome,
    Proc,
    Scenario,
    ScenarioError,
    Service,
    Stats,
    parse_port,
)


class _Builder:
    """Stateful helper of :func:`build_state` (PID allocation, snippet expansion)."""

    def __init__(self, sc: Scenario, now: float) -> None:
        self.sc = sc
        self.now = now
        self.pid = 2000

    def next_pid(self, block: int = 100) -> int:
        self.pid += block + 37
        return self.pid

    def expand(self, chunks: list[LogChunk], depth: int = 0) -> list[LogChunk]:
        out: list[LogChunk] = []
        for ch in chunks:
            if ch.use:
                if depth > 8:
                    raise ScenarioError(f"snippet {ch.use!r} nests too deep")
                inner = self.expand(self.sc.snippets[ch.use], depth + 1)
                if inner and ch.at is not None:
                    inner[0] = inner[0].model_copy(update={"at": ch.at})
                out.extend(inner)
            else:
                out.append(ch)
        return out

    def chunks(self, chunks: list[LogChunk]) -> tuple[list[dict[str, Any]], float]:
        """Resolved chunk dicts (explicit ``at``) and the time of the last line.

        A chunk starts at its ``at`` or ``gap_s`` after the previous chunk's last line. A log
        is written in time order, so a chunk starting before the previous one ended is an
        error (:class:`ScenarioError`).
        """
        out: list[dict[str, Any]] = []
        end = 0.0
        for ch in self.expand(chunks):
            lines = ch.text[:-1].split("\n") if ch.text.endswith("\n") else ch.text.split("\n")
            start = ch.at if ch.at is not None else (end + ch.gap_s if out else ch.gap_s)
            if out and start < end:
                raise ScenarioError(
                    f"scenario {self.sc.name!r}: log chunk {lines[0][:60]!r} starts at "
                    f"{start:g}s, before the previous chunk ends ({end:g}s)"
                )
            repeat = ch.repeat
            if ch.repeat_bytes:
                per = sum(len(line.encode("utf-8")) + 1 + (20 if ch.go_prefix else 0) for line in lines)
                repeat = max(1, math.ceil(ch.repeat_bytes / max(1, per)))
            count = len(lines) * repeat
            out.append(
                {
                    "at": round(start, 6),
                    "stream": ch.stream,
                    "go_prefix": ch.go_prefix,
                    "lines": lines,
                    "encoding": ch.encoding,
                    "repeat": repeat,
                    "interval_s": ch.interval_s,
                }
            )
            end = start + (count - 1) * ch.interval_s
        return out, end

    def outcome(self, o: Outcome, svc: Service) -> dict[str, Any]:
        chunks, end = self.chunks(o.logs)
        out: dict[str, Any] = {
            "state": o.state,
            "exit_code": o.exit_code,
            "run_s": max(o.run_s, end + 0.01) if o.state == "exited" else o.run_s,
            "oom_killed": o.oom_killed,
            "logs": chunks,
        }
        if o.stats is not None:
            out["stats"] = _stats(o.stats)
        if o.http is not None:
            out["http"] = {k: v.model_dump() for k, v in o.http.items()}
        if o.http_delay_s is not None:
            out["http_delay_s"] = o.http_delay_s
        if o.processes is not None:
            out["processes"] = self.procs(o.processes, child=True)
        elif o.state == "running":
            out["processes"] = self.procs(svc.processes or [], child=True)
        return out

    def procs(self, procs: list[Proc], *, child: bool = False) -> list[dict[str, Any]]:
        out = []
        for p in procs:
            for i in range(p.count):
                item: dict[str, Any] = {
                    "ppid": p.ppid,
                    "user": p.user,
                    "args": p.args.replace("{i}", str(i + 1)),
                    "rss_kb": p.rss_kb + (i * 7919) % 40000 if p.count > 1 and p.rss_kb else p.rss_kb,
                    "vsz_kb": p.vsz_kb or p.rss_kb * 4,
                    "pcpu": p.pcpu,
                    "stat": p.stat,
                    "started_ago_s": max(0.0, p.started_ago_s - i * 0.7),
                }
                item["comm"] = (p.comm or item["args"].split()[0].rsplit("/", 1)[-1])[:15]
                if child:
                    item.pop("ppid")
                else:
                    item["pid"] = (p.pid + i) if p.pid else self.next_pid(1)
                out.append(item)
        return out


def _stats(s: Stats) -> dict[str, Any]:
    return {
        "cpu": s.cpu,
        "mem_usage": s.mem_usage,
        "mem_perc": s.mem_perc,
        "net_io": s.net_io,
        "block_io": s.block_io,
        "pids": s.pids,
    }


def _pick(c: ContainerSpec | None, svc: Service | None, field: str, default: Any = None) -> Any:
    for src in (c, svc):
        if src is not None and getattr(src, field) is not None:
            return getattr(src, field)
    return default


def _http(c: ContainerSpec | None, svc: Service | None) -> dict[str, Any]:
    routes = {k: v.model_dump() for k, v in (_pick(c, svc, "http") or {}).items()}
    return routes


def _template(
    b: _Builder, key: str, c: ContainerSpec | None, svc_name: str | None, svc: Service | None, workdir: str
) -> dict[str, Any]:
    sc = b.sc
    project = c.project if c and c.project else (sc.compose.project if svc_name else None)
    if c is not None and c.name:
        name = c.name
    elif svc is not None and svc.container_name:
        name = svc.container_name
    else:
        name = f"{project}-{svc_name}-1"
    labels: dict[str, str] = {}
    if svc_name and project:
        labels.update(
            {
                "com.docker.compose.project": project,
                "com.docker.compose.service": svc_name,
                "com.docker.compose.container-number": "1",
                "com.docker.compose.oneoff": "False",
                "com.docker.compose.project.config_files": f"{workdir}/{sc.compose.file}",
                "com.docker.compose.project.working_dir": workdir,
                "com.docker.compose.version": "2.29.7",
                "com.docker.compose.config-hash": hashlib.sha256(f"{sc.name}/{name}".encode()).hexdigest(),
                "com.docker.compose.image": "sha256:" + hashlib.sha256(f"img/{name}".encode()).hexdigest(),
            }
        )
        if svc and svc.depends_on:
            labels["com.docker.compose.depends_on"] = ",".join(
                f"{d}:service_started:false" for d in svc.depends_on
            )
    labels.update(_pick(c, svc, "labels") or {})
    path = _pick(c, svc, "path", "/bin/sh")
    args = list(_pick(c, svc, "args", []) or [])
    networks = {f"{project}_default" if project else "bridge": {"ip": _pick(c, svc, "ip", "172.18.0.3")}}
    return {
        "name": name,
        "image": _pick(c, svc, "image", "busybox"),
        "image_id": "sha256:" + hashlib.sha256(f"{sc.name}/{name}/image".encode()).hexdigest(),
        "path": path,
        "args": args,
        "comm": _pick(c, svc, "comm") or (args[0] if args else path.rsplit("/", 1)[-1])[:15],
        "cmdline": _pick(c, svc, "cmdline") or " ".join([path, *args]),
        "project": project,
        "service": svc_name,
        "labels": labels,
        "ports": [parse_port(p) for p in _pick(c, svc, "ports", []) or []],
        "expose": list(_pick(c, svc, "expose", []) or []),
        "env": [f"{k}={v}" for k, v in (_pick(c, svc, "env", {}) or {}).items()],
        "networks": networks,
        "mounts": [m.model_dump() for m in _pick(c, svc, "mounts", []) or []],
        "stats": _stats(_pick(c, svc, "stats", Stats())),
        "http": _http(c, svc),
        "http_delay_s": _pick(c, svc, "http_delay_s", 0.0),
        "version": _pick(c, svc, "version"),
        "rss_kb": _pick(c, svc, "rss_kb", 20480),
        "pcpu": _pick(c, svc, "pcpu", 0.3),
        "stop_exit_code": _pick(c, svc, "stop_exit_code", 0),
        "health": _pick(c, svc, "health", None),  # evidence: Docker healthcheck status while running
        "processes": b.procs(_pick(c, svc, "processes", []) or [], child=True),
        "image_commit": None,
        "restart_count": 0,
    }


def build_state(
    sc: Scenario, *, checkout: Path, now: float, database: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``state.json`` dict for ``sc``: absolute times from ``now`` (epoch seconds).

    ``checkout`` is the directory playing ``/opt/qcc_plus`` (git ``-C`` target, compose file
    location); ``database`` (``host, port, user, password, database``) is where
    ``mysql_column`` requirements and ``docker exec ... mysql`` go, or None.
    """
    b = _Builder(sc, now)
    workdir = str(checkout)
    head = sc.git.head or sc.git.commits[0].sha
    services: dict[str, Any] = {}
    for name, svc in sc.services.items():
        tmpl = _template(b, name, None, name, svc, workdir)
        tmpl["image_commit"] = head if svc.build else None
        services[name] = {
            "template": tmpl,
            "depends_on": list(svc.depends_on),
            "build": svc.build,
            "start": {
                "requires": [
                    {**r.model_dump(exclude={"fail"}), "fail": b.outcome(r.fail, svc)}
                    for r in svc.start.requires
                ],
                "ok": b.outcome(svc.start.ok, svc),
            },
        }
    containers = []
    for key, c in sc.containers.items():
        svc_name = c.service or (key if key in sc.services else None)
        container_svc = sc.services.get(svc_name) if svc_name else None
        item = _template(b, key, c, svc_name, container_svc, workdir)
        chunks, end = b.chunks(c.logs)
        started = now - c.started_ago_s
        created = now - (c.created_ago_s if c.created_ago_s is not None else c.started_ago_s + 2.0)
        finished = None
        if c.state in ("exited", "restarting", "dead"):
            finished = (
                now - c.finished_ago_s if c.finished_ago_s is not None else min(now, started + end + 0.01)
            )
        never_started = c.state == "created"
        item.update(
            {
                "id": hashlib.sha256(f"{sc.name}/{key}/{item['name']}".encode()).hexdigest(),
                "state": c.state,
                "exit_code": c.exit_code,
                "oom_killed": c.oom_killed,
                "error": c.error,
                "created": created,
                "started": None if never_started else started,
                "finished": finished,
                "prev_finished": None,
                "pid": 0 if never_started else b.next_pid(),
                "image_commit": c.image_commit
                or (head if container_svc is not None and container_svc.build else None),
                "logs": [] if never_started and not chunks else [{"t0": started, "chunks": chunks}],
            }
        )
        containers.append(item)
    return {
        "version": 1,
        "scenario": sc.name,
        "loaded_at": now,
        "host": {"hostname": sc.host.hostname, "boot_time": now - sc.host.uptime_s},
        "compose": {"project": sc.compose.project, "file": sc.compose.file, "workdir": workdir},
        "services": services,
        "containers": containers,
        "processes": b.procs([*sc.processes, *sc.extra_processes]),
        "listeners": [
            dict(
                listener.model_dump(exclude={"http"}),
                http={k: v.model_dump() for k, v in (listener.http or {}).items()},
            )
            for listener in [*sc.listeners, *sc.extra_listeners]
        ],
        "memory": sc.memory.model_dump(),
        "disks": [d.model_dump() for d in sc.disks] if sc.disks else None,
        "kernel": [{"t": now - k.ago_s, "text": k.text} for k in sc.kernel],
        "git": {
            "workdir": workdir,
            "branch": sc.git.branch,
            "head": head,
            "detached": False,
            "commits": [
                {
                    "sha": c.sha,
                    "ct": int(now - c.ago_s),
                    "subject": c.subject,
                    "author": c.author,
                    "email": f"{c.author}@example.invalid",
                }
                for c in sc.git.commits
            ],
        },
        "database": database,
        "faults": [f.model_dump() for f in sc.faults],
        "fault_hits": {},
        "next_pid": b.pid + 1000,
    }
