"""Sandbox scenarios: what the simulated qcc_plus host looks like, validated, and turned into state.

A scenario is a YAML file in ``sandbox/qcc_sandbox/scenarios/`` (``<name>.yaml``). It *extends*
another one (default ``_base``, the healthy host): the two are deep-merged (mappings merge
key by key, lists and scalars replace, ``null`` deletes a key), then validated by
:class:`Scenario`. :func:`qcc_sandbox.state.build_state` converts it into the
``state.json`` dict that the stand-ins in ``sandbox/qcc_sandbox/bin/`` read (absolute epoch times,
container IDs, PIDs, resolved log chunks). Shape, in short::

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
import json
import os
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
    at: float | None = Field(default=None, ge=0)  # seconds after the container started
    gap_s: float = Field(default=0.002, ge=0)  # pause after the previous chunk when `at` is not given
    stream: Literal["stdout", "stderr"] = "stderr"
    go_prefix: bool = True  # Go's `2006/01/02 15:04:05 ` before each line
    text: str = ""
    encoding: Literal["utf-8", "latin-1"] = "utf-8"  # latin-1: U+0080..U+00FF become raw bytes
    repeat: int = Field(default=1, ge=1)
    repeat_bytes: int | None = Field(default=None, ge=1)  # repeat until about this many bytes
    interval_s: float = Field(default=0.0005, ge=0)  # time between consecutive lines


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
    rss_kb: int = Field(default=0, ge=0)
    vsz_kb: int | None = None
    pcpu: float = Field(default=0.0, ge=0)
    started_ago_s: float = Field(default=3600.0, ge=0)
    stat: str = "S"
    count: int = Field(default=1, ge=1, le=500)


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
    run_s: float = Field(default=0.5, ge=0)
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
    table: str = Field(default="nodes", pattern=r"^[A-Za-z0-9_]{1,64}$")
    column: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]{1,64}$")
    commits: list[str] = Field(default_factory=list)
    marker: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
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
    ok: Outcome = Field(default_factory=lambda: Outcome())


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
    health: Literal["healthy", "unhealthy", "starting"] | None = None  # evidence: a Docker healthcheck
    version: dict[str, str] | None = None  # /version JSON (git_commit follows the image's commit)

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[str] | None) -> list[str] | None:
        for p in v or []:
            parse_port(p)
        return v


class Service(_ContainerFields):
    """A compose service (``container_name`` None means compose's ``<project>-<service>-1``)."""

    container_name: str | None = Field(default=None, pattern=_NAME_RE)
    depends_on: list[str] = Field(default_factory=list)
    build: bool = False  # `up --build` rebuilds it from the checkout's HEAD
    start: StartSpec = Field(default_factory=StartSpec)


class ContainerSpec(_ContainerFields):
    """A container as the bot finds it. ``service`` (default: the key, if it names a service)
    gives the template; a container outside compose needs ``name``."""

    service: str | None = None
    name: str | None = Field(default=None, pattern=_NAME_RE)
    project: str | None = None  # compose project label; default: the scenario's for services
    state: Literal["created", "running", "exited", "restarting", "paused", "dead"] = "running"
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    created_ago_s: float | None = Field(default=None, ge=0)
    started_ago_s: float = Field(default=3600.0, ge=0)
    finished_ago_s: float | None = Field(default=None, ge=0)
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
    container_database: str = Field(default="qcc_proxy", pattern=r"^[A-Za-z0-9_]{1,64}$")


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
    delay_s: float = Field(default=0.0, ge=0)
    times: int | None = Field(default=None, ge=1)


class Compose(_Model):
    """The compose project and file of the environment."""

    project: str = Field(default="qcc_test", pattern=_NAME_RE)
    file: str = Field(default="docker-compose.test.yml", pattern=r"^[A-Za-z0-9_.-]{1,100}$")


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
    compose: Compose = Compose()
    database: Database = Database()
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
            out += [
                (f"services.{name}.start.requires.{i}.fail.logs", r.fail.logs)
                for i, r in enumerate(s.start.requires)
            ]
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
        known = sorted(p.stem for p in path.parent.glob("*.yaml") if not p.stem.startswith("_"))
        raise ScenarioError(f"no such scenario: {path.stem} (known: {', '.join(known)})") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: the top level must be a mapping")
    return data


def resolve_extends(
    path: Path, *, default_parent: str | None = BASE_SCENARIO, seen: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The mapping in the YAML file ``path`` with its ``extends:`` chain deep-merged in (see :func:`deep_merge`).

    ``extends: NAME`` names ``NAME.yaml`` next to ``path`` (or a path when it holds a ``/``);
    a file without ``extends`` gets ``default_parent`` (None: it stands alone). Shared by the
    sandbox scenarios (default ``_base``) and the diagnosis suite's scenarios (no default).
    Raises :class:`ScenarioError` for a missing or unreadable file or an ``extends`` loop.
    """
    data = _read_yaml(path)
    parent = data.pop("extends", default_parent if path.stem != default_parent else None)
    if parent is None:
        return data
    if parent in seen or parent == path.stem:
        raise ScenarioError(f"{path}: `extends` loops through {parent!r}")
    base = resolve_extends(
        path.with_name(f"{parent}.yaml") if "/" not in parent else Path(parent),
        default_parent=default_parent, seen=(*seen, path.stem),
    )
    return deep_merge(base, data)


def scenario_from_dict(data: dict[str, Any], *, extends: str | None = BASE_SCENARIO) -> Scenario:
    """Validate ``data`` (merged onto the packaged scenario ``extends`` unless None)."""
    if extends:
        data = deep_merge(resolve_extends(SCENARIO_DIR / f"{extends}.yaml"), data)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()
        ]
        raise ScenarioError(f"invalid scenario {data.get('name', '?')!r}", problems) from None


def load_scenario(name_or_path: str | os.PathLike[str]) -> Scenario:
    """Load a packaged scenario by name (``migration_failed``) or a YAML file by path.

    Raises :class:`ScenarioError` for an unknown name, unreadable YAML or invalid content.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = SCENARIO_DIR / f"{path}.yaml"
    raw = resolve_extends(path)
    raw.setdefault("name", path.stem)
    return scenario_from_dict(raw, extends=None)


def parse_port(spec: str) -> dict[str, Any]:
    """``"8001:8001"``/``"127.0.0.1:3308:3306"``/``"8001:8001/tcp"`` as a port dict. Raises ValueError."""
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
    return {
        "host_ip": host_ip,
        "host_port": int(host_port),
        "container_port": int(cport),
        "proto": proto or "tcp",
    }
