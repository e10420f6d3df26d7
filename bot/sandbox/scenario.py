"""Sandbox scenarios: what the simulated qcc_plus host looks like, validated, and turned into state.

A scenario is a YAML file in ``bot/sandbox/scenarios/`` (``<name>.yaml``). It *extends*
another one (default ``_base``, the healthy host): the two are deep-merged (mappings merge
key by key, lists and scalars replace, ``null`` deletes a key), then validated by
:class:`Scenario`. :func:`build_state` converts it into the ``state.json`` dict that the
stand-ins in ``bot/sandbox/bin/`` read (absolute epoch times, container IDs, PIDs,
resolved log chunks). Shape, in short::

    name: migration_failed
    title: ...
    expect: {top_cause: migration_failed}     # what the diagnosis should say
    compose: {project: qcc_test, file: docker-compose.test.yml}
    database: {nodes_has_health_check_model: false, reachable: true, container_database: qcc_proxy}
    git: {branch: test, commits: [{sha, ago_s, subject}]}          # newest first
    services:                                  # the compose model (used by restart / up)
      proxy: {container_name, image, path, args, ports: ["8001:8001"], env, depends_on, build,
              version, stats, start: {requires: [{kind, ..., fail: OUTCOME}], ok: OUTCOME}}
    containers:                                # what `docker ps -a` shows now (null = absent)
      proxy: {state: exited, exit_code: 1, started_ago_s: 180, logs: [CHUNK, ...]}
    processes / extra_processes / listeners / extra_listeners / memory / disks / kernel / faults
    snippets: {name: [CHUNK, ...]}             # reusable log blocks, used as {use: name}

A log CHUNK is ``{text, stream: stderr|stdout, go_prefix: true, at | gap_s, repeat,
repeat_bytes, interval_s, encoding: utf-8|latin-1}``; ``{n}`` in a line is the repetition
number, ``{go_ts}``/``{iso_ts}`` the line's own time. Errors: :class:`ScenarioError`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.errors import UserError
from bot.models import CauseId

SCENARIO_DIR = Path(__file__).with_name("scenarios")
BASE_SCENARIO = "_base"
_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ScenarioError(UserError, ValueError):
    """A scenario file is missing, unreadable or invalid (``problems`` lists each issue)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        super().__init__(message + ("".join(f"\n  {p}" for p in self.problems)))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogChunk(_Model):
    """A block of log lines of one container run (see the module docstring)."""

    use: str | None = None  # splice in a snippet's chunks here
    at: float | None = Field(None, ge=0)  # seconds after the container started
    gap_s: float = Field(0.002, ge=0)  # pause after the previous chunk when `at` is not given
    stream: Literal["stdout", "stderr"] = "stderr"
    go_prefix: bool = True  # Go's `2006/01/02 15:04:05 ` before each line
    text: str = ""
    encoding: Literal["utf-8", "latin-1"] = "utf-8"  # latin-1: U+0080..U+00FF become raw bytes
    repeat: int = Field(1, ge=1)
    repeat_bytes: int | None = Field(None, ge=1)  # repeat until about this many bytes
    interval_s: float = Field(0.0005, ge=0)  # time between consecutive lines


class HttpRoute(_Model):
    """One HTTP answer of a port holder (what ``curl`` prints)."""

    status: int = 200
    body: str = ""
    content_type: str = "application/json"


class Stats(_Model):
    """``docker stats`` figures of a running container (strings as docker prints them)."""

    cpu: str = "0.12%"
    mem_usage: str = "18.4MiB / 1.921GiB"
    mem_perc: str = "0.94%"
    net_io: str = "1.45kB / 0B"
    block_io: str = "0B / 0B"
    pids: int = 9


class Proc(_Model):
    """A process (``count`` > 1 makes that many, ``{i}`` in ``args`` numbering them from 1)."""

    pid: int | None = None
    ppid: int = 1
    user: str = "root"
    comm: str | None = None
    args: str
    rss_kb: int = Field(0, ge=0)
    vsz_kb: int | None = None
    pcpu: float = Field(0.0, ge=0)
    started_ago_s: float = Field(3600.0, ge=0)
    stat: str = "S"
    count: int = Field(1, ge=1, le=500)


class Listener(_Model):
    """A host process listening on a TCP port (shown by ``ss``; answers ``curl`` if ``http``)."""

    addr: str = "0.0.0.0"
    port: int = Field(ge=1, le=65535)
    process: str
    pid: int
    fd: int = 3
    backlog: int = 4096
    http: dict[str, HttpRoute] | None = None
    http_delay_s: float = 0.0


class Mount(_Model):
    """A container mount."""

    type: Literal["volume", "bind"] = "volume"
    name: str = ""
    source: str = ""
    destination: str


class Outcome(_Model):
    """What one start of a container does: keeps running, or exits after ``run_s`` seconds."""

    state: Literal["running", "exited"] = "running"
    exit_code: int = 0
    run_s: float = Field(0.5, ge=0)
    oom_killed: bool = False
    logs: list[LogChunk] = Field(default_factory=list)
    stats: Stats | None = None
    http: dict[str, HttpRoute] | None = None
    http_delay_s: float | None = None
    processes: list[Proc] | None = None


class Requirement(_Model):
    """A condition for a healthy start; when unmet, the start follows ``fail``.

    ``kind``: ``service_running`` (``service``), ``mysql_column`` (``table``, ``column``: asks
    the real database), ``marker`` (only the marker satisfies it), ``image_commit_not``
    (``commits``: the image must not be built from these). ``marker`` names a file in
    ``<sandbox>/markers/`` that also satisfies it (tests use it to say "fixed").
    """

    kind: Literal["service_running", "mysql_column", "marker", "image_commit_not"]
    service: str | None = None
    table: str = Field("nodes", pattern=r"^[A-Za-z0-9_]{1,64}$")
    column: str | None = Field(None, pattern=r"^[A-Za-z0-9_]{1,64}$")
    commits: list[str] = Field(default_factory=list)
    marker: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    fail: Outcome

    @model_validator(mode="after")
    def _fields(self) -> Requirement:
        if self.kind == "service_running" and not self.service:
            raise ValueError("service_running needs `service`")
        if self.kind == "mysql_column" and not self.column:
            raise ValueError("mysql_column needs `column`")
        if self.kind == "marker" and not self.marker:
            raise ValueError("marker needs `marker`")
        return self


class StartSpec(_Model):
    """How a service behaves when started: requirements in order, then the healthy outcome."""

    requires: list[Requirement] = Field(default_factory=list)
    ok: Outcome = Field(default_factory=Outcome)


class _ContainerFields(_Model):
    """Fields shared by a service template and a container override (None = inherit)."""

    image: str | None = None
    path: str | None = None
    args: list[str] | None = None
    comm: str | None = None
    cmdline: str | None = None
    ports: list[str] | None = None  # "8001:8001", "127.0.0.1:3308:3306", "8001:8001/tcp"
    expose: list[int] | None = None
    env: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    mounts: list[Mount] | None = None
    ip: str | None = None
    stats: Stats | None = None
    http: dict[str, HttpRoute] | None = None
    http_delay_s: float | None = None
    processes: list[Proc] | None = None
    rss_kb: int | None = None
    pcpu: float | None = None
    stop_exit_code: int | None = None
    version: dict[str, str] | None = None  # /version JSON (git_commit follows the image's commit)

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[str] | None) -> list[str] | None:
        for p in v or []:
            _parse_port(p)
        return v


class Service(_ContainerFields):
    """A compose service (``container_name`` None means compose's ``<project>-<service>-1``)."""

    container_name: str | None = Field(None, pattern=_NAME_RE)
    depends_on: list[str] = Field(default_factory=list)
    build: bool = False  # `up --build` rebuilds it from the checkout's HEAD
    start: StartSpec = Field(default_factory=StartSpec)


class ContainerSpec(_ContainerFields):
    """A container as the bot finds it. ``service`` (default: the key, if it names a service)
    gives the template; a container outside compose needs ``name``."""

    service: str | None = None
    name: str | None = Field(None, pattern=_NAME_RE)
    project: str | None = None  # compose project label; default: the scenario's for services
    state: Literal["created", "running", "exited", "restarting", "paused", "dead"] = "running"
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    created_ago_s: float | None = Field(None, ge=0)
    started_ago_s: float = Field(3600.0, ge=0)
    finished_ago_s: float | None = Field(None, ge=0)
    image_commit: str | None = None
    logs: list[LogChunk] = Field(default_factory=list)


class Commit(_Model):
    """A commit of the checkout."""

    sha: str = Field(pattern=r"^[0-9a-f]{40}$")
    ago_s: float = Field(ge=0)
    subject: str
    author: str = "qcc-dev"


class Git(_Model):
    """The checkout's history (newest first) and where HEAD is."""

    branch: str = "test"
    commits: list[Commit] = Field(min_length=1)
    head: str | None = None  # default: the newest commit

    @model_validator(mode="after")
    def _head(self) -> Git:
        if self.head and self.head not in {c.sha for c in self.commits}:
            raise ValueError("git.head must be one of git.commits")
        return self


class Database(_Model):
    """The MySQL schema the scenario expects (``prepare_mysql`` creates it)."""

    nodes_has_health_check_model: bool = True
    reachable: bool = True  # False: the demo points the bot's MySQL at a closed port
    container_database: str = Field("qcc_proxy", pattern=r"^[A-Za-z0-9_]{1,64}$")


class Memory(_Model):
    """Host memory in MiB (``free -m``)."""

    total: int = 1967
    used: int = 612
    free: int = 702
    shared: int = 3
    buff_cache: int = 653
    available: int = 1187
    swap_total: int = 0
    swap_used: int = 0


class Disk(_Model):
    """A mounted filesystem (KiB)."""

    filesystem: str
    size_k: int
    used_k: int
    avail_k: int
    mount: str


class KernelLine(_Model):
    """A kernel ring-buffer line, ``ago_s`` seconds ago."""

    ago_s: float = Field(ge=0)
    text: str


class Fault(_Model):
    """Make a stand-in misbehave when all ``args`` tokens appear in its argv (see ``_sandbox.py``)."""

    program: str
    args: list[str] = Field(default_factory=list)
    mode: Literal["hang", "fail", "delay"] = "fail"
    exit_code: int = 1
    stdout: str = ""
    stderr: str = ""
    stdout_b64: str = ""
    delay_s: float = Field(0.0, ge=0)
    times: int | None = Field(None, ge=1)


class Compose(_Model):
    """The compose project and file of the environment."""

    project: str = Field("qcc_test", pattern=_NAME_RE)
    file: str = Field("docker-compose.test.yml", pattern=r"^[A-Za-z0-9_.-]{1,100}$")


class HostInfo(_Model):
    """Host identity."""

    hostname: str = "qcc-sandbox"
    uptime_s: float = 12 * 86400


class Expect(_Model):
    """What a correct diagnosis of this scenario says."""

    top_cause: CauseId | None = None
    causes_include: list[CauseId] = Field(default_factory=list)


class Scenario(_Model):
    """One simulated host (see the module docstring)."""

    name: str = Field(pattern=_NAME_RE)
    title: str = ""
    description: str = ""
    expect: Expect = Field(default_factory=Expect)
    compose: Compose = Field(default_factory=Compose)
    database: Database = Field(default_factory=Database)
    git: Git
    host: HostInfo = Field(default_factory=HostInfo)
    services: dict[str, Service] = Field(default_factory=dict)
    containers: dict[str, ContainerSpec] = Field(default_factory=dict)
    processes: list[Proc] = Field(default_factory=list)
    extra_processes: list[Proc] = Field(default_factory=list)  # added to `processes` (lists replace)
    listeners: list[Listener] = Field(default_factory=list)
    extra_listeners: list[Listener] = Field(default_factory=list)
    memory: Memory = Field(default_factory=Memory)
    disks: list[Disk] = Field(default_factory=list)
    kernel: list[KernelLine] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)
    snippets: dict[str, list[LogChunk]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        problems: list[str] = []
        for key, c in self.containers.items():
            svc = c.service or (key if key in self.services else None)
            if c.service and c.service not in self.services:
                problems.append(f"containers.{key}.service: no service {c.service!r}")
            if svc is None and not (c.name and c.image):
                problems.append(f"containers.{key}: a container outside compose needs `name` and `image`")
        for name, s in self.services.items():
            for dep in s.depends_on:
                if dep not in self.services:
                    problems.append(f"services.{name}.depends_on: no service {dep!r}")
            for i, req in enumerate(s.start.requires):
                if req.service and req.service not in self.services:
                    problems.append(f"services.{name}.start.requires.{i}.service: no service {req.service!r}")
        for where, chunks in self._all_chunks():
            for ch in chunks:
                if ch.use and ch.use not in self.snippets:
                    problems.append(f"{where}: unknown snippet {ch.use!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _all_chunks(self) -> list[tuple[str, list[LogChunk]]]:
        out = [(f"containers.{k}.logs", c.logs) for k, c in self.containers.items()]
        for name, s in self.services.items():
            out.append((f"services.{name}.start.ok.logs", s.start.ok.logs))
            out += [(f"services.{name}.start.requires.{i}.fail.logs", r.fail.logs)
                    for i, r in enumerate(s.start.requires)]
        out += [(f"snippets.{k}", v) for k, v in self.snippets.items()]
        return out

    def secrets(self) -> list[str]:
        """Every secret-looking value the scenario plants (tests assert none is ever shown)."""
        found: set[str] = set()
        text = json.dumps(self.model_dump(mode="json"))
        for token in text.replace('"', " ").replace("\\n", " ").split():
            if "REDACTME" in token:
                found.add(token.strip(",.;:()[]{}'"))
        return sorted(found)


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Merge ``over`` onto ``base``: mappings recursively, other values replace, ``None`` deletes."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def scenario_names() -> list[str]:
    """Names of the packaged scenarios (files not starting with ``_``), sorted."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"no such scenario: {path.stem} (known: {', '.join(scenario_names())})") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: the top level must be a mapping")
    return data


def _resolve_raw(path: Path, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    data = _read_yaml(path)
    parent = data.pop("extends", BASE_SCENARIO if path.stem != BASE_SCENARIO else None)
    if parent is None:
        return data
    if parent in seen or parent == path.stem:
        raise ScenarioError(f"{path}: `extends` loops through {parent!r}")
    base = _resolve_raw(path.with_name(f"{parent}.yaml") if "/" not in parent else Path(parent),
                        (*seen, path.stem))
    return deep_merge(base, data)


def scenario_from_dict(data: dict[str, Any], *, extends: str | None = BASE_SCENARIO) -> Scenario:
    """Validate ``data`` (merged onto the packaged scenario ``extends`` unless None)."""
    if extends:
        data = deep_merge(_resolve_raw(SCENARIO_DIR / f"{extends}.yaml"), data)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()]
        raise ScenarioError(f"invalid scenario {data.get('name', '?')!r}", problems) from None


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a packaged scenario by name (``migration_failed``) or a YAML file by path.

    Raises :class:`ScenarioError` for an unknown name, unreadable YAML or invalid content.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
    raw = _resolve_raw(path)
    raw.setdefault("name", path.stem)
    return scenario_from_dict(raw, extends=None)


# ---------------------------------------------------------------------------------------
# Scenario -> state.json
# ---------------------------------------------------------------------------------------


def _parse_port(spec: str) -> dict[str, Any]:
    body, _, proto = spec.partition("/")
    parts = body.split(":")
    if len(parts) == 2:
        host_ip, host_port, cport = "0.0.0.0", parts[0], parts[1]
    elif len(parts) == 3:
        host_ip, host_port, cport = parts
    else:
        raise ValueError(f"bad port {spec!r} (want HOST:CONTAINER)")
    if not (host_port.isdigit() and cport.isdigit()):
        raise ValueError(f"bad port {spec!r}")
    return {"host_ip": host_ip, "host_port": int(host_port), "container_port": int(cport), "proto": proto or "tcp"}


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
                raise ScenarioError(f"scenario {self.sc.name!r}: log chunk {lines[0][:60]!r} starts at "
                                    f"{start:g}s, before the previous chunk ends ({end:g}s)")
            repeat = ch.repeat
            if ch.repeat_bytes:
                per = sum(len(line.encode("utf-8")) + 1 + (20 if ch.go_prefix else 0) for line in lines)
                repeat = max(1, math.ceil(ch.repeat_bytes / max(1, per)))
            count = len(lines) * repeat
            out.append({"at": round(start, 6), "stream": ch.stream, "go_prefix": ch.go_prefix, "lines": lines,
                        "encoding": ch.encoding, "repeat": repeat, "interval_s": ch.interval_s})
            end = start + (count - 1) * ch.interval_s
        return out, end

    def outcome(self, o: Outcome, svc: Service) -> dict[str, Any]:
        chunks, end = self.chunks(o.logs)
        out: dict[str, Any] = {"state": o.state, "exit_code": o.exit_code, "run_s": max(o.run_s, end + 0.01)
                               if o.state == "exited" else o.run_s, "oom_killed": o.oom_killed, "logs": chunks}
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
                    "ppid": p.ppid, "user": p.user, "args": p.args.replace("{i}", str(i + 1)),
                    "rss_kb": p.rss_kb + (i * 7919) % 40000 if p.count > 1 and p.rss_kb else p.rss_kb,
                    "vsz_kb": p.vsz_kb or p.rss_kb * 4, "pcpu": p.pcpu, "stat": p.stat,
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
    return {"cpu": s.cpu, "mem_usage": s.mem_usage, "mem_perc": s.mem_perc, "net_io": s.net_io,
            "block_io": s.block_io, "pids": s.pids}


def _pick(c: ContainerSpec | None, svc: Service | None, field: str, default: Any = None) -> Any:
    for src in (c, svc):
        if src is not None and getattr(src, field) is not None:
            return getattr(src, field)
    return default


def _http(c: ContainerSpec | None, svc: Service | None) -> dict[str, Any]:
    routes = {k: v.model_dump() for k, v in (_pick(c, svc, "http") or {}).items()}
    return routes


def _template(b: _Builder, key: str, c: ContainerSpec | None, svc_name: str | None, svc: Service | None,
              workdir: str) -> dict[str, Any]:
    sc = b.sc
    project = (c.project if c and c.project else (sc.compose.project if svc_name else None))
    if c is not None and c.name:
        name = c.name
    elif svc is not None and svc.container_name:
        name = svc.container_name
    else:
        name = f"{project}-{svc_name}-1"
    labels: dict[str, str] = {}
    if svc_name and project:
        labels.update({
            "com.docker.compose.project": project,
            "com.docker.compose.service": svc_name,
            "com.docker.compose.container-number": "1",
            "com.docker.compose.oneoff": "False",
            "com.docker.compose.project.config_files": f"{workdir}/{sc.compose.file}",
            "com.docker.compose.project.working_dir": workdir,
            "com.docker.compose.version": "2.29.7",
            "com.docker.compose.config-hash": hashlib.sha256(f"{sc.name}/{name}".encode()).hexdigest(),
            "com.docker.compose.image": "sha256:" + hashlib.sha256(f"img/{name}".encode()).hexdigest(),
        })
        if svc and svc.depends_on:
            labels["com.docker.compose.depends_on"] = ",".join(f"{d}:service_started:false" for d in svc.depends_on)
    labels.update(_pick(c, svc, "labels") or {})
    path = _pick(c, svc, "path", "/bin/sh")
    args = list(_pick(c, svc, "args", []) or [])
    networks = {f"{project}_default" if project else "bridge": {"ip": _pick(c, svc, "ip", "172.18.0.3")}}
    return {
        "name": name, "image": _pick(c, svc, "image", "busybox"),
        "image_id": "sha256:" + hashlib.sha256(f"{sc.name}/{name}/image".encode()).hexdigest(),
        "path": path, "args": args,
        "comm": _pick(c, svc, "comm") or (args[0] if args else path.rsplit("/", 1)[-1])[:15],
        "cmdline": _pick(c, svc, "cmdline") or " ".join([path, *args]),
        "project": project, "service": svc_name, "labels": labels,
        "ports": [_parse_port(p) for p in _pick(c, svc, "ports", []) or []],
        "expose": list(_pick(c, svc, "expose", []) or []),
        "env": [f"{k}={v}" for k, v in (_pick(c, svc, "env", {}) or {}).items()],
        "networks": networks,
        "mounts": [m.model_dump() for m in _pick(c, svc, "mounts", []) or []],
        "stats": _stats(_pick(c, svc, "stats", Stats())),
        "http": _http(c, svc), "http_delay_s": _pick(c, svc, "http_delay_s", 0.0),
        "version": _pick(c, svc, "version"),
        "rss_kb": _pick(c, svc, "rss_kb", 20480), "pcpu": _pick(c, svc, "pcpu", 0.3),
        "stop_exit_code": _pick(c, svc, "stop_exit_code", 0),
        "processes": b.procs(_pick(c, svc, "processes", []) or [], child=True),
        "image_commit": None, "restart_count": 0,
    }


def build_state(sc: Scenario, *, checkout: Path, now: float, database: dict[str, Any] | None = None) -> dict[str, Any]:
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
            "template": tmpl, "depends_on": list(svc.depends_on), "build": svc.build,
            "start": {
                "requires": [{**r.model_dump(exclude={"fail"}), "fail": b.outcome(r.fail, svc)}
                             for r in svc.start.requires],
                "ok": b.outcome(svc.start.ok, svc),
            },
        }
    containers = []
    for key, c in sc.containers.items():
        svc_name = c.service or (key if key in sc.services else None)
        svc = sc.services.get(svc_name) if svc_name else None
        item = _template(b, key, c, svc_name, svc, workdir)
        chunks, end = b.chunks(c.logs)
        started = now - c.started_ago_s
        created = now - (c.created_ago_s if c.created_ago_s is not None else c.started_ago_s + 2.0)
        finished = None
        if c.state in ("exited", "restarting", "dead"):
            finished = now - c.finished_ago_s if c.finished_ago_s is not None else min(now, started + end + 0.01)
        never_started = c.state == "created"
        item.update({
            "id": hashlib.sha256(f"{sc.name}/{key}/{item['name']}".encode()).hexdigest(),
            "state": c.state, "exit_code": c.exit_code, "oom_killed": c.oom_killed, "error": c.error,
            "created": created, "started": None if never_started else started, "finished": finished,
            "prev_finished": None, "pid": 0 if never_started else b.next_pid(),
            "image_commit": c.image_commit or (head if svc is not None and svc.build else None),
            "logs": [] if never_started and not chunks else [{"t0": started, "chunks": chunks}],
        })
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
        "listeners": [dict(listener.model_dump(exclude={"http"}),
                           http={k: v.model_dump() for k, v in (listener.http or {}).items()})
                      for listener in [*sc.listeners, *sc.extra_listeners]],
        "memory": sc.memory.model_dump(),
        "disks": [d.model_dump() for d in sc.disks] if sc.disks else None,
        "kernel": [{"t": now - k.ago_s, "text": k.text} for k in sc.kernel],
        "git": {"workdir": workdir, "branch": sc.git.branch, "head": head, "detached": False,
                "commits": [{"sha": c.sha, "ct": int(now - c.ago_s), "subject": c.subject, "author": c.author,
                             "email": f"{c.author}@example.invalid"} for c in sc.git.commits]},
        "database": database,
        "faults": [f.model_dump() for f in sc.faults],
        "fault_hits": {},
        "next_pid": b.pid + 1000,
    }
