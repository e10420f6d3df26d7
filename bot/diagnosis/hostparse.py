"""Parsers for host-level evidence: sockets, memory, disk, processes, build and schema.

Each function names the command it reads; all are pure and never raise.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from bot.diagnosis.textutil import clean_text


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in clean_text(text or "").split("\n") if ln.strip()]


# ---------------------------------------------------------------- schema (SQL step)
class Column(BaseModel):
    """One column of table ``nodes`` (information_schema.COLUMNS or ``DESCRIBE``)."""

    name: str
    type: str = ""
    nullable: str = ""
    default_value: str | None = None


def _col_from_row(row: dict[str, Any]) -> Column | None:
    low = {str(k).lower(): v for k, v in row.items()}
    name = low.get("name") or low.get("column_name") or low.get("field")
    if not name:
        return None
    default = low.get("default_value", low.get("column_default", low.get("default")))
    return Column(name=str(name), type=str(low.get("type") or low.get("column_type") or ""),
                  nullable=str(low.get("nullable") or low.get("is_nullable") or low.get("null") or ""),
                  default_value=None if default is None else str(default))


def parse_schema_columns(text: str) -> list[Column]:
    """Parse the ``schema_nodes`` SQL step: ``json.dumps(rows)`` of
    ``SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE AS nullable,
    COLUMN_DEFAULT AS default_value FROM information_schema.COLUMNS ...``.

    Also accepts rows with ``COLUMN_NAME``/``Field`` keys and the tab-separated text of
    ``mysql -e 'DESCRIBE nodes'``. An empty list means the table has no columns (it does
    not exist in that database).
    """
    body = clean_text(text or "").strip()
    try:
        rows = json.loads(body) if body else []
    except json.JSONDecodeError:
        rows = None
    out: list[Column] = []
    if isinstance(rows, list):
        for row in rows:
            col = _col_from_row(row) if isinstance(row, dict) else None
            if col is not None:
                out.append(col)
        return out
    for line in _lines(body):  # DESCRIBE nodes: Field Type Null Key Default Extra
        parts = re.split(r"\t+|\s{2,}", line)
        if len(parts) >= 2 and parts[0] != "Field" and re.match(r"^\w+$", parts[0]):
            default = parts[4] if len(parts) > 4 and parts[4] != "NULL" else None
            out.append(Column(name=parts[0], type=parts[1], nullable=parts[2] if len(parts) > 2 else "",
                              default_value=default))
    return out


# ---------------------------------------------------------------- ss -ltnp
class Listener(BaseModel):
    """One listening TCP socket of ``ss -ltnp``; ``processes`` are ``(name, pid)`` pairs."""

    address: str
    port: int
    processes: list[tuple[str, int]] = Field(default_factory=list)
    raw: str = ""

    @property
    def holder(self) -> str:
        """``docker-proxy (pid 2211)``, or ``unknown process`` when ss could not see it (not root)."""
        if not self.processes:
            return "unknown process"
        return ", ".join(f"{n} (pid {p})" for n, p in self.processes)


_SS_ADDR_RE = re.compile(r"(\S+):(\d+)\s+\S+:(?:\*|\d+)")
_SS_USER_RE = re.compile(r'\("([^"]*)",pid=(\d+)')


def parse_ss_listeners(text: str) -> list[Listener]:
    """Parse ``ss -ltnp``: ``LISTEN 0 4096 0.0.0.0:8001 0.0.0.0:* users:(("docker-proxy",pid=2211,fd=4))``.

    Works with and without the ``State`` column, IPv6 (``[::]:8001``, ``*:8001``) and
    without the ``users:`` part (not root).
    """
    out: list[Listener] = []
    for line in _lines(text):
        if line.startswith(("State", "Netid", "Recv-Q")):
            continue
        m = _SS_ADDR_RE.search(line)
        if not m:
            continue
        procs = [(n, int(p)) for n, p in _SS_USER_RE.findall(line)]
        out.append(Listener(address=m.group(1), port=int(m.group(2)), processes=procs, raw=line))
    return out


# ---------------------------------------------------------------- free -m
class Memory(BaseModel):
    """Host memory from ``free -m`` (MiB). ``available_mb`` is estimated from the
    ``-/+ buffers/cache`` line on old procps."""

    total_mb: int
    used_mb: int = 0
    free_mb: int = 0
    available_mb: int | None = None
    swap_total_mb: int = 0
    swap_used_mb: int = 0
    raw: str = ""  # the "Mem:" line

    @property
    def available_pct(self) -> float | None:
        if self.available_mb is None or self.total_mb <= 0:
            return None
        return 100.0 * self.available_mb / self.total_mb

    @property
    def evidence(self) -> str:
        """The quoted ``Mem:`` line and what its columns say:
        ``free -m: Mem: 1967 1918 28 1 21 11  (available 11 of 1967 MiB, used 1918)``."""
        avail = f"available {self.available_mb} of {self.total_mb} MiB" if self.available_mb is not None \
            else f"free {self.free_mb} of {self.total_mb} MiB"
        return f"free -m: {self.raw}  ({avail}, used {self.used_mb})"


def _ints(line: str) -> list[int]:
    return [int(x) for x in re.findall(r"(?<![\w.])-?\d+(?![\w.])", line)]


def parse_free(text: str) -> Memory | None:
    """Parse ``free -m`` in the new (``total used free shared buff/cache available``) and old
    (``... buffers cached`` plus ``-/+ buffers/cache:``) procps formats. None if no ``Mem:`` line."""
    header: list[str] = []
    mem: list[int] | None = None
    raw = ""
    plus: list[int] | None = None
    swap: list[int] = []
    for line in _lines(text):
        low = line.lower()
        if low.startswith("total") or ("total" in low and "used" in low and ":" not in low):
            header = low.split()
        elif low.startswith("mem:"):
            mem, raw = _ints(line), line
        elif low.startswith("-/+"):
            plus = _ints(line)
        elif low.startswith("swap:"):
            swap = _ints(line)
    if not mem:
        return None
    col = {name: mem[i] for i, name in enumerate(header) if i < len(mem)}
    total = col.get("total", mem[0])
    used = col.get("used", mem[1] if len(mem) > 1 else 0)
    free = col.get("free", mem[2] if len(mem) > 2 else 0)
    if "available" in col:
        available: int | None = col["available"]
    elif plus and len(plus) >= 2:
        available = plus[1]
    elif "buffers" in col and "cached" in col:
        available = free + col["buffers"] + col["cached"]
    elif len(mem) >= 6 and not header:
        available = mem[5]
    else:
        available = None
    return Memory(total_mb=total, used_mb=used, free_mb=free, available_mb=available,
                  swap_total_mb=swap[0] if swap else 0, swap_used_mb=swap[1] if len(swap) > 1 else 0, raw=raw)


# ---------------------------------------------------------------- df -P -k
class Filesystem(BaseModel):
    """One row of ``df -P -k`` (sizes in KiB)."""

    device: str
    size_kb: int
    used_kb: int
    avail_kb: int
    use_pct: int
    mount: str
    raw: str = ""


_DF_RE = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%\s+(.+)$")


def parse_df(text: str) -> list[Filesystem]:
    """Parse ``df -P -k <docker_root> /`` (POSIX format); the same filesystem listed twice is kept once."""
    out: list[Filesystem] = []
    seen: set[tuple[str, str]] = set()
    for line in _lines(text):
        m = _DF_RE.match(line)
        if not m or (m.group(1), m.group(6)) in seen:
            continue
        seen.add((m.group(1), m.group(6)))
        out.append(Filesystem(device=m.group(1), size_kb=int(m.group(2)), used_kb=int(m.group(3)),
                              avail_kb=int(m.group(4)), use_pct=int(m.group(5)), mount=m.group(6), raw=line))
    return out


# ---------------------------------------------------------------- ps
class Process(BaseModel):
    """One row of ``ps -eo pid,ppid,rss,pcpu,etimes,comm,args`` (RSS in KiB, elapsed in seconds)."""

    pid: int
    ppid: int
    rss_kb: int
    cpu_pct: float
    elapsed_s: int
    comm: str
    args: str
    raw: str = ""

    @property
    def evidence(self) -> str:
        """The quoted ``ps`` row and what its columns say:
        ``ps: 2280 2274 205595 11.8 44 claude ...  (pid 2280, RSS 201 MB, CPU 11.8 %, up 44 s)``."""
        return (f"ps: {self.raw}  (pid {self.pid}, RSS {self.rss_kb // 1024} MB, CPU {self.cpu_pct:g} %, "
                f"up {self.elapsed_s} s)")

    @property
    def is_health_worker(self) -> bool:
        """A ``claude`` CLI health check (``claude`` or ``node .../claude``) or another ``node`` process."""
        first = self.args.split()[:2]
        return self.comm in ("claude", "node") or any(t.rsplit("/", 1)[-1] == "claude" for t in first)


class ProcessTable(BaseModel):
    """Host processes, biggest RSS first; ``workers`` are the claude/node health-check processes."""

    processes: list[Process] = Field(default_factory=list)

    @property
    def workers(self) -> list[Process]:
        return [p for p in self.processes if p.is_health_worker]

    @property
    def workers_rss_mb(self) -> int:
        return sum(p.rss_kb for p in self.workers) // 1024

    def find(self, comm: str) -> list[Process]:
        return [p for p in self.processes if p.comm == comm]


_PS_RE = re.compile(r"^(\d+)\s+(\d+)\s+(\d+)\s+(\d+(?:[.,]\d+)?)\s+(\d+)\s+(\S+)\s*(.*)$")


def parse_ps(text: str) -> ProcessTable:
    """Parse ``ps -eo pid,ppid,rss,pcpu,etimes,comm,args --sort=-rss | head -n 400``."""
    procs = []
    for line in _lines(text):
        m = _PS_RE.match(line)
        if m:
            procs.append(Process(pid=int(m.group(1)), ppid=int(m.group(2)), rss_kb=int(m.group(3)),
                                 cpu_pct=float(m.group(4).replace(",", ".")), elapsed_s=int(m.group(5)),
                                 comm=m.group(6), args=m.group(7) or m.group(6), raw=line))
    return ProcessTable(processes=procs)


# ---------------------------------------------------------------- curl /version
class VersionInfo(BaseModel):
    """The running build from ``curl -s http://127.0.0.1:<port>/version``."""

    version: str = ""
    git_commit: str = ""
    build_date: str = ""


def parse_version_json(text: str) -> VersionInfo | None:
    """Parse ``curl -s -m 5 http://127.0.0.1:<port>/version`` (``{"version","git_commit","build_date"}``).

    Empty output (connection refused), HTML (the admin SPA of an older build) or junk → None.
    """
    body = clean_text(text or "").strip()
    start = body.find("{")
    if start < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(body, start)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not any(k in obj for k in ("version", "git_commit")):
        return None
    return VersionInfo(version=str(obj.get("version") or ""), git_commit=str(obj.get("git_commit") or ""),
                       build_date=str(obj.get("build_date") or ""))


# ---------------------------------------------------------------- git log
class Commit(BaseModel):
    """One commit of ``git log -3 --format='%H%x09%ct%x09%s'``."""

    sha: str
    committed_at: datetime | None = None
    subject: str = ""


def parse_git_log(text: str) -> list[Commit]:
    """Parse ``git -C <workdir> log -3 --format='%H%x09%ct%x09%s'`` (newest first)."""
    out = []
    for line in _lines(text):
        parts = line.split("\t", 2) if "\t" in line else line.split(None, 2)
        if not parts or not re.fullmatch(r"[0-9a-f]{7,64}", parts[0]):
            continue
        when = None
        if len(parts) > 1 and parts[1].isdigit():
            when = datetime.fromtimestamp(int(parts[1]), tz=UTC)
        out.append(Commit(sha=parts[0], committed_at=when, subject=parts[2] if len(parts) > 2 else ""))
    return out


# ---------------------------------------------------------------- deploy processes
class DeployProc(BaseModel):
    """A running deploy/build process: ``kind`` is ``deploy_script``, ``compose`` or ``build``."""

    pid: int
    elapsed_s: int
    args: str
    kind: str
    raw: str = ""


_DEPLOY_RE = re.compile(r"^(\d+)\s+(\d+)\s+(.+)$")


def parse_deploy_procs(text: str) -> list[DeployProc]:
    """Parse the deploy processes of the ``host_facts`` step: the lines of its one ``ps -eo
    pid,ppid,rss,pcpu,etimes,comm,args`` read that match ``deploy-server\\.sh|docker[- ]compose
    .*(up|build)|docker(-buildx)? build`` (older captures: ``ps -eo pid,etimes,args | grep``).

    Lines of a grep pipeline and of ``ps`` itself are ignored.
    """
    out = []
    for line in _lines(text):
        if wide := _PS_RE.match(line):
            pid, elapsed, args = wide.group(1), wide.group(5), wide.group(7) or wide.group(6)
        elif m := _DEPLOY_RE.match(line):
            pid, elapsed, args = m.group(1), m.group(2), m.group(3)
        else:
            continue
        if "grep" in args or "ps -eo" in args:
            continue
        if "deploy-server.sh" in args:
            kind = "deploy_script"
        elif re.search(r"docker[- ]compose\b.*\b(up|build)\b", args):
            kind = "compose"
        elif re.search(r"docker-buildx|\bdocker\b.*\bbuild\b|buildkit", args):
            kind = "build"
        else:
            continue
        out.append(DeployProc(pid=int(pid), elapsed_s=int(elapsed), args=args, kind=kind, raw=line))
    return out


_HTTP_CODE = re.compile(r"(\d{3})\s*$")


def parse_http_code(text: str) -> int | None:
    """``curl -s -o /dev/null -w '%{http_code}'`` output -> the HTTP status; ``0`` when nothing
    answered (curl prints ``000``); None for output that is no status at all."""
    m = _HTTP_CODE.search((text or "").strip())
    return int(m.group(1)) if m else None
