"""Parsers for log text: the proxy's ``docker logs`` and the kernel's OOM-killer lines.

* :func:`parse_docker_logs` reads ``docker logs --tail N --timestamps <proxy>`` (stderr merged).
* :func:`parse_log_lines` reads the same format filtered by ``grep -A``, whose ``--``
  group separators are dropped.
* :func:`parse_kernel_oom` reads ``dmesg -T`` / ``journalctl -k`` lines grepped for the OOM killer.

A proxy log line is ``<docker RFC3339Nano timestamp> <Go log line>`` where the Go line is
``2006/01/02 15:04:05 message``, a driver line ``[mysql] 2006/01/02 15:04:05 file.go:58 msg``,
or a bare line without Go prefix (``panic: ...``, ``goroutine 1 [running]:``, frames, the
entrypoint banner).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import BaseModel

from bot.diagnosis.textutil import clean_line, iter_lines, split_docker_ts

GO_PREFIX_RE = re.compile(r"^(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) ")
DRIVER_PREFIX_RE = re.compile(r"^\[(mysql)\] (\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) ")


class LogLine(BaseModel):
    """One proxy log line.

    ``raw`` is the line as captured (ANSI and CR stripped, docker timestamp kept) — what
    evidence quotes. ``message`` is the text after the docker and Go prefixes.
    ``kind`` is ``go`` (Go ``log`` prefix), ``driver`` (``[mysql]`` prefix) or ``bare``.
    """

    raw: str
    ts: datetime | None = None
    go_time: str | None = None
    message: str
    kind: str = "bare"


def parse_log_line(line: str) -> LogLine | None:
    """Parse one captured line; None for blank lines and grep's ``--`` separators."""
    raw = clean_line(line)
    if not raw.strip() or raw.strip() == "--":
        return None
    ts, rest = split_docker_ts(raw)
    if not rest.strip():
        return None
    m = GO_PREFIX_RE.match(rest)
    if m:
        return LogLine(raw=raw, ts=ts, go_time=m.group(1), message=rest[m.end():], kind="go")
    m = DRIVER_PREFIX_RE.match(rest)
    if m:
        return LogLine(raw=raw, ts=ts, go_time=m.group(2), message=f"[mysql] {rest[m.end():]}",
                       kind="driver")
    return LogLine(raw=raw, ts=ts, message=rest, kind="bare")


def parse_docker_logs(text: str) -> list[LogLine]:
    """Parse ``docker logs --tail N --timestamps <proxy> 2>&1``: one :class:`LogLine` per non-blank line.

    Lines without the docker timestamp (``--timestamps`` missing, or a wrapped line) are
    kept with ``ts=None``. Never raises.
    """
    out: list[LogLine] = []
    for line in iter_lines(text or ""):
        parsed = parse_log_line(line)
        if parsed is not None:
            out.append(parsed)
    return out


def parse_log_lines(text: str) -> list[LogLine]:
    """Parse grep output of ``docker logs --timestamps <proxy> 2>&1 | grep -i -E ... [-A 12]``.

    Same line format as :func:`parse_docker_logs`; grep's ``--`` separators are dropped.
    """
    return parse_docker_logs(text)


class OomEvent(BaseModel):
    """One kernel OOM-killer event.

    ``kind`` is ``killed`` (``Out of memory: Killed process 1234 (node)``, also the older
    ``Kill process ... score ... or sacrifice child``), ``oom_kill`` (the
    ``oom-kill:...,task=node,pid=1234`` summary) or ``invoked`` (``node invoked oom-killer``).
    ``cgroup`` is True for ``Memory cgroup out of memory`` (a container memory limit).
    """

    raw: str
    kind: str
    process: str | None = None
    pid: int | None = None
    cgroup: bool = False
    when: datetime | None = None  # host local time read as UTC (dmesg -T / journal prefix); None if absent


_DMESG_TIME_RE = re.compile(r"^\[(\w{3} \w{3} +\d{1,2} \d{2}:\d{2}:\d{2} \d{4})\]")
_JOURNAL_TIME_RE = re.compile(r"^(\w{3} +\d{1,2} \d{2}:\d{2}:\d{2}) ")


_ISO_TIME_RE = re.compile(r"^\[?(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:[.,]\d+)?(Z|[+-]\d{2}:?\d{2})?")


def _event_time(raw: str, year: int) -> datetime | None:
    try:
        if m := _ISO_TIME_RE.match(raw):  # dmesg --time-format=iso, journalctl -o short-iso
            zone = (m.group(2) or "+00:00").replace("Z", "+00:00")
            if ":" not in zone:
                zone = zone[:3] + ":" + zone[3:]
            return datetime.fromisoformat(m.group(1) + zone).astimezone(UTC)
        if m := _DMESG_TIME_RE.match(raw):
            return datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
        if m := _JOURNAL_TIME_RE.match(raw):
            text = f"{year} {' '.join(m.group(1).split())}"
            return datetime.strptime(text, "%Y %b %d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return None


_KILLED_RE = re.compile(r"Kill(?:ed)? process (\d+) \(([^)]*)\)", re.I)
_OOMKILL_RE = re.compile(r"oom-kill:.*?task=([^,\s]+),pid=(\d+)", re.I)
_INVOKED_RE = re.compile(r"(\S+) invoked oom-killer", re.I)


def parse_kernel_oom(text: str, *, year: int | None = None) -> list[OomEvent]:
    """Parse ``dmesg -T`` or ``journalctl -k`` output grepped for ``out of memory|oom-kill|killed process``.

    Formats: ``2025-12-10T06:20:11,123456+00:00 Out of memory: ...`` (``dmesg --time-format=iso``;
    ``journalctl -k -o short-iso`` prints ``2025-12-10T06:20:11+0000 host kernel: ...``),
    ``[Wed Dec 10 06:20:11 2025] Out of memory: Killed process 1234 (node) total-vm:...``,
    ``Dec 10 06:20:11 host kernel: Memory cgroup out of memory: Killed process 1234 (ccproxy) ...``,
    ``[ 812.345] oom-kill:constraint=CONSTRAINT_NONE,...,task=node,pid=1234,uid=0``.
    An ``oom-kill:`` summary of a pid also reported as ``Killed process`` is dropped. ``when`` is
    read from the dmesg ``-T`` / journal prefix (the journal has no year: ``year``, default now).
    """
    year = year or datetime.now(UTC).year
    out: list[OomEvent] = []
    for line in iter_lines(text or ""):
        raw = clean_line(line).strip()
        if not raw:
            continue
        cgroup = "memory cgroup out of memory" in raw.lower()
        m = _KILLED_RE.search(raw)
        if m:
            out.append(OomEvent(raw=raw, kind="killed", process=m.group(2), pid=int(m.group(1)),
                                cgroup=cgroup, when=_event_time(raw, year)))
            continue
        m = _OOMKILL_RE.search(raw)
        if m:
            out.append(OomEvent(raw=raw, kind="oom_kill", process=m.group(1), pid=int(m.group(2)),
                                cgroup="oom_memcg" in raw or cgroup, when=_event_time(raw, year)))
            continue
        m = _INVOKED_RE.search(raw)
        if m:
            out.append(OomEvent(raw=raw, kind="invoked", process=m.group(1), when=_event_time(raw, year)))
    killed = {e.pid for e in out if e.kind == "killed"}
    return [e for e in out if not (e.kind == "oom_kill" and e.pid in killed)]
