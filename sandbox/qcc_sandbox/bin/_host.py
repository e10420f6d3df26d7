"""The simulated host: containers, their logs, start/stop behaviour, processes and ports.

Stdlib only. Works on the ``state.json`` dict (see ``sandbox/qcc_sandbox/scenario.py`` for how a
scenario becomes that dict). Key shapes (times are epoch seconds):

* container: ``{"id", "name", "image", "image_id", "image_commit", "path", "args",
  "project", "service", "labels", "state", "exit_code", "oom_killed", "error", "created",
  "started", "finished", "prev_finished", "ports": [{"host_ip", "host_port",
  "container_port", "proto"}], "expose", "env", "networks", "pid", "stop_exit_code",
  "stats", "http", "http_delay_s", "comm", "cmdline", "rss_kb", "pcpu", "processes",
  "version", "logs": [{"t0", "chunks": [chunk]}]}``
* chunk: ``{"at": s after t0, "stream": "stdout|stderr", "go_prefix": bool, "lines": [str],
  "encoding": "utf-8|latin-1", "repeat": n, "interval_s": s}``; ``{go_ts}`` in a line is
  Go's ``2006/01/02 15:04:05`` stamp of that line, ``{iso_ts}`` its RFC3339 stamp with
  microseconds (MySQL's format), ``{n}`` the repetition number (1-based).
* service: ``{"template": container, "depends_on": [..], "build": bool,
  "start": {"requires": [requirement], "ok": outcome}}``
* requirement: ``{"kind": "service_running|mysql_column|marker|image_commit_not", ...,
  "marker": optional marker name that also satisfies it, "fail": outcome}``
* outcome: ``{"state": "running|exited", "exit_code", "run_s", "logs": [chunk], "stats",
  "http", "http_delay_s", "processes", "oom_killed"}``

A container whose state is ``exited`` but whose ``finished`` time is still in the future
is shown as running until then (a proxy that dies 1 s after ``restart`` looks ``Up``
for that second, as on a real host).
"""

# ruff: noqa: UP017 - runs under the host's python3, which may predate datetime.UTC (3.11)
from __future__ import annotations

import os
import sys
import time

from _sandbox import ZERO_TIME, human_duration, marker_exists, utc_iso
from _sandbox import now as clock

# copy, re, secrets, shutil and subprocess are imported by the (rare) functions that use them:
# every stand-in imports this module, and its start-up CPU is what the benchmarks measure.
_IDENT_PATTERN = r"[A-Za-z0-9_]{1,64}"
_HEX_DIGITS = frozenset("0123456789abcdef")
_HERE = os.path.dirname(os.path.abspath(__file__))

DEFAULT_MEMORY_MIB = {
    "total": 1967,
    "used": 612,
    "free": 702,
    "shared": 3,
    "buff_cache": 653,
    "available": 1187,
    "swap_total": 0,
    "swap_used": 0,
}
DEFAULT_LISTENERS: list[dict] = [
    {"addr": "0.0.0.0", "port": 22, "process": "sshd", "pid": 701, "fd": 3, "backlog": 128},
    {"addr": "[::]", "port": 22, "process": "sshd", "pid": 701, "fd": 4, "backlog": 128},
    {
        "addr": "127.0.0.53%lo",
        "port": 53,
        "process": "systemd-resolve",
        "pid": 402,
        "fd": 14,
        "backlog": 4096,
    },
]
DEFAULT_PROCESSES: list[dict] = [
    {"pid": 1, "ppid": 0, "comm": "systemd", "args": "/sbin/init", "rss_kb": 12800, "vsz_kb": 167000},
    {
        "pid": 402,
        "ppid": 1,
        "comm": "systemd-resolve",
        "args": "/lib/systemd/systemd-resolved",
        "rss_kb": 13100,
    },
    {
        "pid": 701,
        "ppid": 1,
        "comm": "sshd",
        "args": "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
        "rss_kb": 9200,
    },
    {
        "pid": 880,
        "ppid": 1,
        "comm": "containerd",
        "args": "/usr/bin/containerd",
        "rss_kb": 48200,
        "pcpu": 0.3,
        "stat": "Ssl",
    },
    {
        "pid": 912,
        "ppid": 1,
        "comm": "dockerd",
        "args": "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
        "rss_kb": 81500,
        "pcpu": 0.5,
        "stat": "Ssl",
    },
]
DEFAULT_DISKS = [
    {"filesystem": "/dev/vda1", "size_k": 41152736, "used_k": 12582912, "avail_k": 26435120, "mount": "/"},
    {"filesystem": "tmpfs", "size_k": 201420, "used_k": 1052, "avail_k": 200368, "mount": "/run"},
    {"filesystem": "tmpfs", "size_k": 1007084, "used_k": 0, "avail_k": 1007084, "mount": "/dev/shm"},
]


# ---------------------------------------------------------------------------------------
# Container state and status
# ---------------------------------------------------------------------------------------


def effective_state(c: dict, now: float) -> str:
    """The state ``docker ps`` shows now (an exit scheduled in the future is still running)."""
    state = c.get("state", "created")
    if state == "exited" and c.get("started") and c.get("finished") and c["finished"] > now:
        return "running"
    return state


def status_text(c: dict, now: float) -> str:
    """Docker's ``Status`` column: ``Up 3 minutes``, ``Exited (1) 2 minutes ago``, ``Created``."""
    state = effective_state(c, now)
    if state == "running":
        health = c.get("health")
        tag = {"healthy": " (healthy)", "unhealthy": " (unhealthy)",
               "starting": " (health: starting)"}.get(health or "", "")
        return "Up " + human_duration(now - (c.get("started") or now)) + tag
    if state == "paused":
        return "Up " + human_duration(now - (c.get("started") or now)) + " (Paused)"
    if state == "exited":
        return f"Exited ({c.get('exit_code', 0)}) {human_duration(now - (c.get('finished') or now))} ago"
    if state == "restarting":
        return f"Restarting ({c.get('exit_code', 0)}) {human_duration(now - (c.get('finished') or now))} ago"
    if state == "dead":
        return "Dead"
    if state == "removing":
        return "Removal In Progress"
    return "Created"


def has_healthcheck(c: dict) -> bool:
    """True for the MySQL service: the stack's compose file gives it a healthcheck (Status says ``(healthy)``)."""
    return c.get("service") == "mysql"


def is_running(c: dict, now: float) -> bool:
    """True when the container counts as running now."""
    return effective_state(c, now) in ("running", "paused")


def containers(state: dict) -> list[dict]:
    """All containers, newest first (``docker ps`` order)."""
    return sorted(state.get("containers") or [], key=lambda c: c.get("created", 0), reverse=True)


def find_container(state: dict, ref: str) -> dict | None:
    """A container by name (``/name`` too), full ID or unique ID prefix; None if not found."""
    ref = ref.lstrip("/")
    all_c = state.get("containers") or []
    for c in all_c:
        if c.get("name") == ref or c.get("id") == ref:
            return c
    if ref and _HEX_DIGITS.issuperset(ref):
        hits = [c for c in all_c if c.get("id", "").startswith(ref)]
        if len(hits) == 1:
            return hits[0]
    return None


def ports_text(c: dict, now: float) -> str:
    """Docker's ``Ports`` column; published ports show only while running."""
    parts = []
    running = is_running(c, now)
    for p in c.get("ports") or []:
        if running:
            parts.append(f"0.0.0.0:{p['host_port']}->{p['container_port']}/{p.get('proto', 'tcp')}")
            parts.append(f":::{p['host_port']}->{p['container_port']}/{p.get('proto', 'tcp')}")
    for port in c.get("expose") or []:
        parts.append(f"{port}/tcp")
    return ", ".join(parts)


def docker_time(ts: float | None) -> str:
    """RFC3339Nano as Docker prints it (9 digits), or Go's zero time for None."""
    return utc_iso(ts, 9) if ts else ZERO_TIME


def created_at_text(ts: float) -> str:
    """``docker ps``'s ``CreatedAt``: ``2025-12-10 06:10:01 +0000 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(int(ts)))


# ---------------------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------------------


def _chunk_total(ch: dict) -> int:
    return len(ch.get("lines") or []) * max(1, int(ch.get("repeat", 1)))


def _visible_count(t_start: float, ch: dict, now: float) -> int:
    total = _chunk_total(ch)
    if total == 0 or t_start > now:
        return 0
    iv = float(ch.get("interval_s", 0.0) or 0.0)
    if iv <= 0:
        return total
    return min(total, int((now - t_start) / iv) + 1)


def log_plan(c: dict, now: float) -> list[tuple[float, dict, int]]:
    """``(chunk start time, chunk, visible record count)`` for every chunk, in order."""
    plan = []
    for seg in c.get("logs") or []:
        t0 = float(seg.get("t0") or 0)
        for ch in seg.get("chunks") or []:
            start = t0 + float(ch.get("at", 0.0))
            plan.append((start, ch, _visible_count(start, ch, now)))
    return plan


class _Renderer:
    """Renders records of one chunk; caches Go's per-second stamp."""

    def __init__(self) -> None:
        self._sec = -1
        self._go = ""

    def go_ts(self, t: float) -> str:
        sec = int(t)
        if sec != self._sec:
            self._sec = sec
            self._go = time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(sec))
        return self._go

    def line(self, ch: dict, idx: int, t: float) -> bytes:
        lines = ch["lines"]
        rep, i = divmod(idx, len(lines))
        text = lines[i]
        if "{n}" in text:
            text = text.replace("{n}", str(rep + 1))
        if ch.get("go_prefix"):
            text = self.go_ts(t) + " " + text
        if "{go_ts}" in text:
            text = text.replace("{go_ts}", self.go_ts(t))
        if "{iso_ts}" in text:
            text = text.replace("{iso_ts}", utc_iso(t, 6))
        enc = ch.get("encoding") or "utf-8"
        return text.encode(enc, "replace" if enc != "utf-8" else "surrogateescape")


def iter_log(
    c: dict, now: float, *, tail: int | None = None, since: float | None = None, until: float | None = None
):
    """Yield ``(time, stream, line_bytes)`` of the visible log, oldest first.

    ``tail`` keeps the last N records (computed without generating the skipped ones, so a
    50 MB log costs nothing to tail); ``since``/``until`` bound the record time.
    """
    plan = log_plan(c, now)
    total = sum(n for _, _, n in plan)
    skip = 0 if tail is None else max(0, total - max(0, tail))
    render = _Renderer()
    for start, ch, count in plan:
        if skip >= count:
            skip -= count
            continue
        iv = float(ch.get("interval_s", 0.0) or 0.0)
        stream = ch.get("stream", "stderr")
        for idx in range(skip, count):
            t = start + idx * iv
            if since is not None and t < since:
                continue
            if until is not None and t > until:
                return
            yield t, stream, render.line(ch, idx, t)
        skip = 0


def stream_logs(
    c: dict,
    now: float,
    *,
    tail: int | None,
    timestamps: bool,
    since: float | None = None,
    until: float | None = None,
    prefix: bytes = b"",
) -> None:
    """Write ``c``'s log: its stdout records to our stdout, stderr records to our stderr."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    bufs: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    sizes = {"stdout": 0, "stderr": 0}
    current = None

    def flush(stream: str) -> None:
        if bufs[stream]:
            target = out if stream == "stdout" else err
            target.write(b"".join(bufs[stream]))
            target.flush()
            bufs[stream].clear()
            sizes[stream] = 0

    for t, stream, line in iter_log(c, now, tail=tail, since=since, until=until):
        stream = "stdout" if stream == "stdout" else "stderr"
        if current is not None and stream != current:
            flush(current)
        current = stream
        data = prefix + ((docker_time(t) + " ").encode() if timestamps else b"") + line + b"\n"
        bufs[stream].append(data)
        sizes[stream] += len(data)
        if sizes[stream] > 65536:
            flush(stream)
    if current is not None:
        flush(current)


# ---------------------------------------------------------------------------------------
# Ports, listeners and processes
# ---------------------------------------------------------------------------------------


def host_listeners(state: dict, now: float) -> list[dict]:
    """Every TCP listener: host processes from the scenario plus docker-proxy per published port.

    Item: ``{"proto", "addr", "port", "process", "pid", "fd", "owner": container|None,
    "http", "http_delay_s"}``.
    """
    out = []
    for entry in state["listeners"] if "listeners" in state else DEFAULT_LISTENERS:
        item = dict(entry)
        item.setdefault("proto", "tcp")
        item.setdefault("addr", "0.0.0.0")
        item.setdefault("fd", 3)
        item["owner"] = None
        out.append(item)
    for c in containers(state):
        if not is_running(c, now):
            continue
        for k, p in enumerate(c.get("ports") or []):
            base = int(c.get("pid") or 1000) - 2 - 2 * k
            for addr, pid in (("0.0.0.0", base), ("[::]", base - 1)):
                out.append(
                    {
                        "proto": p.get("proto", "tcp"),
                        "addr": addr,
                        "port": int(p["host_port"]),
                        "process": "docker-proxy",
                        "pid": pid,
                        "fd": 4,
                        "owner": c,
                        "http": c.get("http") or {},
                        "http_delay_s": c.get("http_delay_s", 0),
                    }
                )
    return out


def port_holder(state: dict, port: int, now: float, exclude: dict | None = None) -> dict | None:
    """The listener holding TCP ``port`` (not counting ``exclude``'s own), or None."""
    for item in host_listeners(state, now):
        if int(item["port"]) != int(port) or item.get("proto", "tcp") != "tcp":
            continue
        if exclude is not None and item.get("owner") is exclude:
            continue
        return item
    return None


def processes(state: dict, now: float) -> list[dict]:
    """Every process ``ps -e`` shows: host processes, container shims, PID 1s and children.

    Item: ``{"pid", "ppid", "user", "comm", "args", "rss_kb", "vsz_kb", "pcpu", "start",
    "stat", "tty"}``.
    """
    base = state["processes"] if "processes" in state else DEFAULT_PROCESSES
    boot = float((state.get("host") or {}).get("boot_time") or now - 86400 * 12)
    out = []
    for p in base:
        item: dict = {"user": "root", "rss_kb": 0, "vsz_kb": 0, "pcpu": 0.0, "stat": "Ss", "start": boot}
        item.update(p)
        if "started_ago_s" in p:
            item["start"] = now - float(p["started_ago_s"])
        item.setdefault("comm", (item.get("args") or "?").split()[0].rsplit("/", 1)[-1][:15])
        item.setdefault("args", item["comm"])
        out.append(item)
    for c in containers(state):
        if not is_running(c, now):
            continue
        pid = int(c.get("pid") or 0)
        if not pid:
            continue
        started = c.get("started") or now
        short = c["id"][:64]
        out.append(
            {
                "pid": pid - 1,
                "ppid": 1,
                "user": "root",
                "comm": "containerd-shim",
                "args": f"/usr/bin/containerd-shim-runc-v2 -namespace moby -id {short} "
                "-address /run/containerd/containerd.sock",
                "rss_kb": 11264,
                "vsz_kb": 1238400,
                "pcpu": 0.0,
                "start": started,
                "stat": "Sl",
            }
        )
        out.append(
            {
                "pid": pid,
                "ppid": pid - 1,
                "user": c.get("user", "root"),
                "comm": c.get("comm") or os.path.basename(c.get("path") or "sh")[:15],
                "args": c.get("cmdline") or " ".join([c.get("path", ""), *c.get("args", [])]).strip(),
                "rss_kb": int(c.get("rss_kb", 20480)),
                "vsz_kb": int(c.get("rss_kb", 20480)) * 4,
                "pcpu": float(c.get("pcpu", 0.3)),
                "start": started,
                "stat": "Ssl",
            }
        )
        for k, p in enumerate(c.get("ports") or []):
            base = pid - 2 - 2 * k
            for addr, ppid in (("0.0.0.0", base), ("::", base - 1)):
                out.append(
                    {
                        "pid": ppid,
                        "ppid": 1,
                        "user": "root",
                        "comm": "docker-proxy",
                        "args": f"/usr/bin/docker-proxy -proto tcp -host-ip {addr} -host-port "
                        f"{p['host_port']} -container-ip 172.18.0.3 -container-port "
                        f"{p['container_port']}",
                        "rss_kb": 3968,
                        "vsz_kb": 1745000,
                        "pcpu": 0.0,
                        "start": started,
                        "stat": "Sl",
                    }
                )
        for i, child in enumerate(c.get("processes") or []):
            item = {
                "pid": pid + 1 + i,
                "ppid": pid,
                "user": "root",
                "rss_kb": 0,
                "vsz_kb": 0,
                "pcpu": 0.0,
                "stat": "Sl",
                "start": started,
            }
            item.update(child)
            item.setdefault("comm", str(item.get("args") or "?").split()[0][:15])
            item.setdefault("args", item["comm"])
            if "started_ago_s" in child:
                item["start"] = now - float(child["started_ago_s"])
            out.append(item)
    return out


BOOT_LINES = [
    (
        0.0,
        "Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0) "
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)",
    ),
    (0.0, "Command line: BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-amd64 root=/dev/vda1 ro console=ttyS0"),
    (1.52, "EXT4-fs (vda1): mounted filesystem with ordered data mode. Quota mode: none."),
    (6.91, "docker0: port 1(veth3c1d2e4) entered forwarding state"),
]


def kernel_lines(state: dict) -> list[tuple[float, str]]:
    """``(epoch, text)`` of every kernel line, oldest first."""
    boot = float((state.get("host") or {}).get("boot_time") or clock() - 86400 * 12)
    lines = [(boot + off, text) for off, text in BOOT_LINES]
    lines += [(float(k["t"]), str(k["text"])) for k in state.get("kernel") or []]
    return sorted(lines, key=lambda x: x[0])


def memory(state: dict) -> dict:
    """Host memory in MiB (``total, used, free, shared, buff_cache, available, swap_*``)."""
    mem = dict(DEFAULT_MEMORY_MIB)
    mem.update(state.get("memory") or {})
    return mem


def disks(state: dict) -> list[dict]:
    """Mounted filesystems (``filesystem, size_k, used_k, avail_k, mount``)."""
    return list(state.get("disks") or DEFAULT_DISKS)


# ---------------------------------------------------------------------------------------
# Start / stop behaviour
# ---------------------------------------------------------------------------------------


def next_pid(state: dict) -> int:
    """A fresh PID block (processes of one container use pid-9 .. pid+99)."""
    pid = int(state.get("next_pid", 5000)) + 137
    state["next_pid"] = pid + 100
    return pid


def mysql_client_command(client: str, database: dict) -> tuple[list[str], dict[str, str]]:
    """The real mysql client's argv (TCP, host, port, user) and an environment carrying the
    password as ``MYSQL_PWD``, so it never appears on a command line. Raises ValueError for a
    non-numeric port."""
    env = dict(os.environ)
    env["MYSQL_PWD"] = str(database.get("password") or "")
    argv = [
        client,
        "--protocol=TCP",
        "-h",
        str(database.get("host", "127.0.0.1")),
        "-P",
        str(int(database.get("port", 3306))),
        "-u",
        str(database.get("user", "root")),
    ]
    return argv, env


def _mysql_client() -> str | None:
    import shutil

    path = os.environ.get("PATH", "")
    dirs = [d for d in path.split(os.pathsep) if d and os.path.abspath(d) != _HERE]
    for name in ("mariadb", "mysql"):
        found = shutil.which(name, path=os.pathsep.join(dirs + ["/usr/bin", "/usr/local/bin"]))
        if found:
            return found
    return None


def mysql_column_exists(database: dict | None, table: str, column: str) -> bool:
    """Ask the real MySQL/MariaDB behind the scenario whether ``table.column`` exists.

    ``database`` is ``state["database"]`` (``host, port, user, password, database``). Any
    failure (no client, unreachable, bad identifiers) counts as "no": a proxy that cannot
    read its schema does not start either.
    """
    if not database:
        return False
    db = str(database.get("database", ""))
    import re
    import subprocess

    if not all(re.fullmatch(_IDENT_PATTERN, x) for x in (db, table, column)):
        return False
    client = _mysql_client()
    if client is None:
        return False
    sql = (
        "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE "
        f"TABLE_SCHEMA='{db}' AND TABLE_NAME='{table}' AND COLUMN_NAME='{column}'"
    )
    try:
        argv, env = mysql_client_command(client, database)
        res = subprocess.run(
            [*argv, "--connect-timeout=3", "-N", "-B", "-e", sql],
            capture_output=True,
            timeout=8,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return False
    return res.returncode == 0 and res.stdout.strip() not in (b"", b"0")


def requirement_met(state: dict, c: dict, req: dict, directory: str, now: float) -> bool:
    """Whether one start requirement of ``c``'s service holds now."""
    if req.get("marker") and marker_exists(directory, req["marker"]):
        return True
    kind = req.get("kind")
    if kind == "service_running":
        return any(
            x.get("project") == c.get("project")
            and x.get("service") == req.get("service")
            and is_running(x, now)
            for x in state.get("containers") or []
        )
    if kind == "mysql_column":
        return mysql_column_exists(state.get("database"), req.get("table", "nodes"), req.get("column", ""))
    if kind == "marker":
        return False  # only the marker (checked above) satisfies it
    if kind == "image_commit_not":
        return c.get("image_commit") not in (req.get("commits") or [])
    return True


def _endpoint_id() -> str:
    import secrets

    return secrets.token_hex(32)


def start_container(state: dict, c: dict, directory: str, now: float) -> str | None:
    """Start ``c`` the way dockerd would; returns an error text (``Error response ...``) or None.

    Order: a published port held by someone else fails the start (the container keeps its
    state, ``created`` for a new one); then the service's requirements pick the outcome
    (the first unmet requirement's ``fail`` outcome, else ``ok``).
    """
    if is_running(c, now):
        return None
    for p in c.get("ports") or []:
        holder = port_holder(state, int(p["host_port"]), now, exclude=c)
        if holder is None:
            continue
        if holder.get("owner") is not None:
            msg = (
                f"driver failed programming external connectivity on endpoint {c['name']} "
                f"({_endpoint_id()}): Bind for 0.0.0.0:{p['host_port']} failed: port is already allocated"
            )
        else:
            msg = (
                f"driver failed programming external connectivity on endpoint {c['name']} "
                f"({_endpoint_id()}): failed to bind port 0.0.0.0:{p['host_port']}/tcp: Error starting "
                f"userland proxy: listen tcp4 0.0.0.0:{p['host_port']}: bind: address already in use"
            )
        c["error"] = msg
        return "Error response from daemon: " + msg
    service = (state.get("services") or {}).get(c.get("service") or "") or {}
    start = service.get("start") or {}
    outcome = start.get("ok") or {"state": "running", "logs": []}
    for req in start.get("requires") or []:
        if not requirement_met(state, c, req, directory, now):
            outcome = req.get("fail") or {"state": "exited", "exit_code": 1, "logs": []}
            break
    apply_outcome(state, c, outcome, now)
    return None


def apply_outcome(state: dict, c: dict, outcome: dict, now: float) -> None:
    """Record one run of ``c`` starting ``now`` with ``outcome`` (logs appended)."""
    import copy

    c["prev_finished"] = c.get("finished")
    c["started"] = now
    c["pid"] = next_pid(state)
    c["error"] = ""
    c["oom_killed"] = bool(outcome.get("oom_killed", False))
    if outcome.get("state", "running") == "exited":
        c["state"] = "exited"
        c["exit_code"] = int(outcome.get("exit_code", 1))
        c["finished"] = now + float(outcome.get("run_s", 0.5))
    else:
        c["state"] = "running"
        c["exit_code"] = 0
    c.setdefault("logs", []).append({"t0": now, "chunks": copy.deepcopy(outcome.get("logs") or [])})
    for key in ("stats", "http", "http_delay_s", "processes", "rss_kb", "pcpu"):
        if key in outcome:
            c[key] = copy.deepcopy(outcome[key])


def stop_container(c: dict, now: float, *, exit_code: int | None = None) -> bool:
    """Stop ``c`` if it runs (exit code: ``exit_code`` or the service's stop code). True if it ran."""
    if not is_running(c, now):
        return False
    c["state"] = "exited"
    c["exit_code"] = int(c.get("stop_exit_code", 0) if exit_code is None else exit_code)
    c["finished"] = now
    return True


def create_from_service(state: dict, name: str, now: float, *, image_commit: str | None = None) -> dict:
    """A new ``created`` container of service ``name`` from its template (new ID), added to state."""
    import copy
    import secrets

    svc = state["services"][name]
    c = copy.deepcopy(svc["template"])
    c.update(
        {
            "id": secrets.token_hex(32),
            "created": now,
            "state": "created",
            "started": None,
            "finished": None,
            "prev_finished": None,
            "exit_code": 0,
            "error": "",
            "logs": [],
            "pid": 0,
            "oom_killed": False,
        }
    )
    if image_commit is not None:
        c["image_commit"] = image_commit
        c["image_id"] = "sha256:" + secrets.token_hex(32)
    state.setdefault("containers", []).append(c)
    return c


def remove_container(state: dict, c: dict) -> None:
    """Forget ``c`` (its logs go with it, as with ``docker rm``)."""
    state["containers"] = [x for x in state.get("containers") or [] if x is not c]
