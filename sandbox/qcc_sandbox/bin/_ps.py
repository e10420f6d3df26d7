"""ps stand-in: the simulated host's processes (procps-ng layout).

Supports ``-e``/``-A``, ``-f``, ``-o LIST`` (repeatable; pid ppid user rss vsz pcpu pmem
etimes etime comm args cmd command stat tty time start), ``--sort=[+-]KEY[,...]``,
``--no-headers``, ``-p PIDS``, ``-C NAME`` and BSD ``aux``. Processes: the scenario's host
processes, each running container's shim, PID 1 and children, docker-proxy per published
port, and this ``ps`` itself.
"""

# ruff: noqa: UP017 - runs under the host's python3, which may predate datetime.UTC (3.11)
from __future__ import annotations

import os
import time

import _host as host
from _sandbox import Exit, write_out
from _sandbox import now as clock

HEADERS = {
    "pid": "PID",
    "ppid": "PPID",
    "user": "USER",
    "uid": "UID",
    "rss": "RSS",
    "rssize": "RSS",
    "vsz": "VSZ",
    "pcpu": "%CPU",
    "%cpu": "%CPU",
    "pmem": "%MEM",
    "%mem": "%MEM",
    "etimes": "ELAPSED",
    "etime": "ELAPSED",
    "comm": "COMMAND",
    "ucmd": "CMD",
    "args": "COMMAND",
    "cmd": "CMD",
    "command": "COMMAND",
    "stat": "STAT",
    "tty": "TT",
    "time": "TIME",
    "start": "START",
    "stime": "STIME",
    "c": "C",
}
NUMERIC = {
    "pid",
    "ppid",
    "rss",
    "rssize",
    "vsz",
    "pcpu",
    "%cpu",
    "pmem",
    "%mem",
    "etimes",
    "etime",
    "c",
    "uid",
    "time",
}
ARGS_LIKE = {"args", "cmd", "command"}


def _etime(seconds: int) -> str:
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    text = f"{minutes:02d}:{secs:02d}"
    if hours or days:
        text = f"{hours:02d}:{text}"
    if days:
        text = f"{days}-{text}"
    return text


def value(p: dict, key: str, now: float, total_kib: float) -> str:
    """One cell of the output for process ``p``."""
    elapsed = max(0, int(now - float(p.get("start", now))))
    if key in ("pid", "ppid"):
        return str(int(p[key]))
    if key in ("rss", "rssize"):
        return str(int(p.get("rss_kb", 0)))
    if key == "vsz":
        return str(int(p.get("vsz_kb", 0) or int(p.get("rss_kb", 0)) * 3))
    if key in ("pcpu", "%cpu", "c"):
        return f"{float(p.get('pcpu', 0.0)):.1f}" if key != "c" else str(int(float(p.get("pcpu", 0))))
    if key in ("pmem", "%mem"):
        return f"{100.0 * float(p.get('rss_kb', 0)) / total_kib:.1f}"
    if key == "etimes":
        return str(elapsed)
    if key == "etime":
        return _etime(elapsed)
    if key in ("comm", "ucmd"):
        return str(p.get("comm", "?"))[:15]
    if key in ARGS_LIKE:
        return str(p.get("args") or p.get("comm", "?"))
    if key in ("user", "uid"):
        return str(p.get("user", "root")) if key == "user" else "0"
    if key == "stat":
        return str(p.get("stat", "S"))
    if key == "tty":
        return str(p.get("tty", "?"))
    if key == "time":
        cpu = int(float(p.get("pcpu", 0)) / 100.0 * elapsed)
        return f"{cpu // 3600:02d}:{cpu // 60 % 60:02d}:{cpu % 60:02d}"
    if key in ("start", "stime"):
        return time.strftime("%H:%M", time.gmtime(float(p.get("start", now))))
    return "-"


def sort_key(key: str):
    """A sort function for ``--sort`` key ``key`` (numeric where ps sorts numerically)."""

    def fn(row: dict) -> object:
        v = row["cells"][key]
        if key == "etime":
            return row["elapsed"]
        if key in NUMERIC:
            try:
                return float(v)
            except ValueError:
                return 0.0
        return v

    return fn


def main(argv: list[str], directory: str, state: dict) -> int:
    """Print the process table."""
    columns: list[str] = []
    sorts: list[str] = []
    headers = True
    pids: set[int] = set()
    names: set[str] = set()
    bsd = False

    def add_columns(spec: str) -> None:
        for item in spec.replace(" ", ",").split(","):
            name = item.split("=")[0].strip().lower()
            if not name:
                continue
            if name not in HEADERS:
                raise Exit(1, f'error: unknown user-defined format specifier "{name}"\n')
            columns.append(name)

    def take(i: int, rest: str, what: str) -> tuple[str, int]:
        if rest:
            return rest, i
        if i + 1 >= len(argv):
            raise Exit(1, f"error: {what} must follow\n")
        return argv[i + 1], i + 1

    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            name, eq, val = arg.partition("=")
            if name == "--sort":
                val, i = take(i, val, "sort specification")
                sorts.extend(x for x in val.split(",") if x)
            elif name == "--format":
                val, i = take(i, val, "format specification")
                add_columns(val)
            elif name in ("--no-headers", "--no-heading"):
                headers = False
            elif name == "--pid":
                val, i = take(i, val, "process ID list")
                pids.update(int(x) for x in val.split(",") if x.strip().isdigit())
            elif name in ("--cols", "--columns", "--width", "--forest"):
                pass
            else:
                raise Exit(
                    1, f"error: unknown gnu long option\n\nUsage:\n ps [options]\n (sandbox: {arg!r})\n"
                )
        elif arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                ch = arg[j]
                rest = arg[j + 1 :]
                if ch in "eAaxwHlj":
                    j += 1
                elif ch == "f":
                    columns = columns or ["user", "pid", "ppid", "c", "stime", "tty", "time", "cmd"]
                    j += 1
                elif ch == "u" and not rest and not columns:
                    bsd = True
                    j += 1
                elif ch in "oO":
                    spec, i = take(i, rest, "format specification")
                    add_columns(spec)
                    break
                elif ch == "p":
                    spec, i = take(i, rest, "process ID list")
                    pids.update(int(x) for x in spec.split(",") if x.strip().isdigit())
                    break
                elif ch == "C":
                    spec, i = take(i, rest, "command name list")
                    names.update(spec.split(","))
                    break
                else:
                    raise Exit(
                        1, f"error: unsupported SysV option\n\nUsage:\n ps [options]\n (sandbox: {arg!r})\n"
                    )
        elif arg in ("aux", "auxww", "auxf", "axu"):
            bsd = True
        elif arg in ("ax", "h"):
            headers = headers and arg != "h"
        else:
            raise Exit(
                1, f"error: unsupported option (BSD syntax)\n\nUsage:\n ps [options]\n (sandbox: {arg!r})\n"
            )
        i += 1
    if bsd and not columns:
        columns = ["user", "pid", "pcpu", "pmem", "vsz", "rss", "tty", "stat", "start", "time", "command"]
    if not columns:
        columns = ["pid", "tty", "time", "cmd"]
    now = clock()
    procs = host.processes(state, now)
    procs.append(
        {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "user": "root",
            "comm": "ps",
            "args": " ".join(["ps", *argv]),
            "rss_kb": 3900,
            "vsz_kb": 11200,
            "pcpu": 0.0,
            "start": now,
            "stat": "R+",
            "tty": "?",
        }
    )
    if pids:
        procs = [p for p in procs if int(p["pid"]) in pids]
    if names:
        procs = [p for p in procs if p.get("comm") in names]
    total_kib = float(host.memory(state)["total"]) * 1024
    rows = [
        {
            "cells": {c: value(p, c, now, total_kib) for c in set(columns) | {s.lstrip("+-") for s in sorts}},
            "pid": int(p["pid"]),
            "elapsed": now - float(p.get("start", now)),
        }
        for p in procs
    ]
    rows.sort(key=lambda r: r["pid"])
    for spec in reversed(sorts):
        key = spec.lstrip("+-")
        if key not in HEADERS:
            raise Exit(1, "error: unknown sort specifier\n")
        rows.sort(key=sort_key(key), reverse=spec.startswith("-"))
    widths = {c: max([len(HEADERS[c])] + [len(r["cells"][c]) for r in rows]) for c in columns}
    widths.update({c: max(widths[c], 15) for c in columns if c in ("comm", "ucmd")})
    out = []

    def line(cells: dict) -> str:
        parts = []
        for k, c in enumerate(columns):
            text = cells[c]
            if k == len(columns) - 1:
                parts.append(text)
            elif c in NUMERIC:
                parts.append(text.rjust(widths[c]))
            else:
                parts.append(text.ljust(widths[c]))
        return " ".join(parts).rstrip()

    if headers:
        out.append(line({c: HEADERS[c] for c in columns}))
    out.extend(line(r["cells"]) for r in rows)
    write_out("".join(x + "\n" for x in out))
    return 0

