"""Reading the proxy log the way the field notes describe it (pure).

* :func:`classify` — which kind of fatal a log message is (driver error code, network,
  DSN, bind, panic, runtime fatal, disk), or None.
* :func:`split_runs` — a restarted container's log holds every run; a run starts at the
  entrypoint banner / ``qcc_plus version:`` line.
* :func:`scan_run` — per run: the fatal line, the start-up phase (from the last phase line
  before the fatal one), the line just before it, the storage line, the listening line.
* :func:`health_signals` — health-check failures (``signal: killed``), nodes at the failure
  threshold, 503 answers.

Phases: ``none`` (no ``store:`` line: DSN malformed or not reached), ``pool_configured``
(``store: mysql pool configured``: connect/auth or DDL failed), ``migrating`` (``[migration]``
lines: DDL failed), ``mysql_storage`` (``using MySQL storage``: loading nodes failed),
``sqlite_storage`` (``using SQLite storage``: the DSN was empty), ``listening``, and
``unknown`` when the run's start is outside the captured lines.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from bot.diagnosis.logparse import LogLine

MYSQL_ERROR_RE = re.compile(r"\bError (\d{4})(?: \(([0-9A-Z]{5})\))?: (.*)")
_MIGRATION_CODES = {1054, 1060, 1061, 1064, 1067, 1068, 1091, 1146, 1215, 1265, 1406, 1824}
_ACCESS_CODES = {1044, 1045, 1142, 1143, 1227, 1370, 1698}
_UNREACHABLE_CODES = {1040, 1053, 1205, 2002, 2003, 2005, 2006, 2013}
_NET_RE = re.compile(
    r"dial tcp|connect: connection refused|no such host|i/o timeout|context deadline exceeded"
    r"|invalid connection|bad connection|unexpected EOF|connection reset by peer|server has gone away"
    r"|Can't connect to MySQL|Lost connection to MySQL",
    re.I,
)
_DSN_RE = re.compile(r"invalid DSN|default addr for network|missing the slash separating", re.I)
_NOT_FATAL_RE = re.compile(r"health check failed|\[health\]|\[HealthScheduler\]|\[proxy\]|\bGET /|\bPOST /",
                           re.I)
START_RE = re.compile(r"^(?:==> .*entrypoint|Claude Code CLI version|qcc_plus version: )")
VERSION_RE = re.compile(r"qcc_plus version: (\S+)")
LISTEN_RE = re.compile(r"listening on (\S*:\d+)", re.I)
DUMP_RE = re.compile(
    r"^(?:goroutine \d+ \[|\s|created by |\[signal |[\w./*()\[\]{}<>,-]+\(.*\)$|exit status \d|"
    r"runtime stack:|\.\.\.additional frames|\.\.\. \d+ frames elided)"
)
PHASE_MARKERS = (
    ("listening", LISTEN_RE),
    ("sqlite_storage", re.compile(r"using SQLite storage", re.I)),
    ("mysql_storage", re.compile(r"using MySQL storage", re.I)),
    ("migrating", re.compile(r"^\[migration\]", re.I)),
    ("pool_configured", re.compile(r"store: mysql pool configured", re.I)),
)

# fatal class -> cause id (used by crash_loop to name the underlying cause)
CLASS_TO_CAUSE = {
    "migration": "migration_failed",
    "access_denied": "mysql_access_denied",
    "unknown_database": "config_error",
    "mysql_unreachable": "mysql_unavailable",
    "invalid_dsn": "config_error",
    "bind": "port_conflict",
    "panic": "panic",
    "runtime_fatal": "runtime_fatal",
    "disk_full": "disk_full",
}


def classify(message: str) -> tuple[str | None, int | None]:
    """``(fatal class, MySQL error code)`` of one log message, ``(None, None)`` when harmless.

    Health-check and request lines are never fatal (their ``dial tcp`` is upstream).
    """
    if message.startswith("panic: "):
        return "panic", None
    if message.startswith("fatal error: "):
        return "runtime_fatal", None
    if _NOT_FATAL_RE.search(message):
        return None, None
    if "no space left on device" in message.lower():
        return "disk_full", None
    m = MYSQL_ERROR_RE.search(message)
    if m:
        code = int(m.group(1))
        if code in _MIGRATION_CODES:
            return "migration", code
        if code in _ACCESS_CODES:
            return "access_denied", code
        if code == 1049:
            return "unknown_database", code
        if code in _UNREACHABLE_CODES:
            return "mysql_unreachable", code
        return "mysql_error", code
    if _DSN_RE.search(message):
        return "invalid_dsn", None
    if "address already in use" in message or "port is already allocated" in message:
        return "bind", None
    if _NET_RE.search(message):
        return "mysql_unreachable", None
    if message.startswith("[migration]") and re.search(r"fail|error", message, re.I):
        return "migration", None
    return None, None


def is_dump_line(message: str) -> bool:
    """True for the lines of a goroutine dump (headers, frames, ``created by``, ``[signal ...]``)."""
    return bool(DUMP_RE.match(message))


def split_runs(lines: list[LogLine]) -> list[list[LogLine]]:
    """Split a container log into runs; a run starts at a start marker that follows other lines."""
    runs: list[list[LogLine]] = []
    current: list[LogLine] = []
    seen_body = False
    for ln in lines:
        if START_RE.match(ln.message) and seen_body:
            runs.append(current)
            current, seen_body = [], False
        current.append(ln)
        if not START_RE.match(ln.message):
            seen_body = True
    if current:
        runs.append(current)
    return runs


class RunInfo(BaseModel):
    """What one run of the proxy did (see module doc for phases)."""

    first: LogLine | None = None
    last: LogLine | None = None
    version: str | None = None
    fatal: LogLine | None = None
    fatal_class: str | None = None
    fatal_code: int | None = None
    phase: str = "none"
    prev_line: LogLine | None = None  # the line right before the fatal one
    phase_line: LogLine | None = None  # the phase marker line the phase was read from
    storage_line: LogLine | None = None
    storage: str | None = None  # mysql | sqlite
    listening: LogLine | None = None
    line_count: int = 0
    start_seen: bool = False  # the run's start (banner / version line) is in the captured lines

    @property
    def listen_delay_s(self) -> float | None:
        """Seconds from the run's first line to the listening line (docker timestamps)."""
        if self.listening and self.listening.ts and self.first and self.first.ts:
            return (self.listening.ts - self.first.ts).total_seconds()
        return None


def scan_run(run: list[LogLine], *, ended: bool | None) -> RunInfo:
    """Scan one run.

    ``ended`` True: the run is over (not the last run, or the container is not running), so
    its last error-class line is the fatal one. False: the process is known to be alive, so
    nothing in this run killed it (no fatal). None: unknown; only an error line at the very
    end (at most two ordinary lines after it) counts. The phase is ``unknown`` when the
    run's start is not in the captured lines and no phase line precedes the fatal one.
    """
    info = RunInfo(first=run[0] if run else None, last=run[-1] if run else None, line_count=len(run),
                   start_seen=bool(run) and START_RE.match(run[0].message) is not None)
    cand_idx: int | None = None
    cand: tuple[str | None, int | None] = (None, None)
    crash_idx: int | None = None
    listen_idx = -1
    for i, ln in enumerate(run):
        msg = ln.message
        if info.version is None and (m := VERSION_RE.search(msg)):
            info.version = m.group(1)
        for _name, rx in PHASE_MARKERS[:3]:
            if rx.search(msg):
                if _name == "listening" and info.listening is None:
                    info.listening, listen_idx = ln, i
                elif _name != "listening":
                    info.storage, info.storage_line = _name.split("_")[0], ln
        cls, code = classify(msg)
        if cls is not None:
            cand_idx, cand = i, (cls, code)
            if cls in ("panic", "runtime_fatal"):
                crash_idx = i
    if crash_idx is not None:
        cand_idx, cand = crash_idx, classify(run[crash_idx].message)
    if cand_idx is None or ended is False:
        return info
    after = [ln for ln in run[cand_idx + 1:]
             if not is_dump_line(ln.message) and classify(ln.message)[0] is None]
    if not (ended or cand[0] in ("panic", "runtime_fatal") or len(after) <= 2):
        return info
    if listen_idx > cand_idx and cand[0] not in ("panic", "runtime_fatal"):
        return info  # the error happened before start-up finished and did not stop it
    info.fatal, (info.fatal_class, info.fatal_code) = run[cand_idx], cand
    info.prev_line = run[cand_idx - 1] if cand_idx > 0 else None
    for ln in reversed(run[:cand_idx]):
        hit = next((name for name, rx in PHASE_MARKERS if rx.search(ln.message)), None)
        if hit:
            info.phase, info.phase_line = hit, ln
            break
    else:
        if not any(START_RE.match(ln.message) for ln in run[:cand_idx]):
            info.phase = "unknown"
    return info


class HealthSignals(BaseModel):
    """Health-check behaviour read from the log (``[HealthScheduler]``, ``[health]`` lines)."""

    failed: list[LogLine] = Field(default_factory=list)  # health check failed for node X: ...
    killed: list[LogLine] = Field(default_factory=list)  # ... signal: killed ...
    threshold_nodes: dict[str, LogLine] = Field(default_factory=dict)  # node -> threshold line
    total_nodes: int | None = None
    concurrency: str | None = None
    total_line: LogLine | None = None
    unavailable: list[LogLine] = Field(default_factory=list)  # 503 / no available node


_FAILED_RE = re.compile(r"health check failed for node (\S+?):", re.I)
_THRESHOLD_RE = re.compile(r"\[health\] node (\S+) reached failure threshold", re.I)
_TOTAL_RE = re.compile(r"total nodes to check: (\d+)(?: \((.*)\))?", re.I)
_UNAVAILABLE_RE = re.compile(r"(?:->|status=|code=|\s)503\b|no (?:available|healthy) node", re.I)


def health_signals(lines: list[LogLine]) -> HealthSignals:
    """Collect health-check signals from log lines (duplicates by raw text are ignored)."""
    hs = HealthSignals()
    seen: set[str] = set()
    for ln in lines:
        if ln.raw in seen:
            continue
        seen.add(ln.raw)
        msg = ln.message
        if _FAILED_RE.search(msg):
            hs.failed.append(ln)
            if "signal: killed" in msg:
                hs.killed.append(ln)
        elif m := _THRESHOLD_RE.search(msg):
            hs.threshold_nodes.setdefault(m.group(1), ln)
        elif m := _TOTAL_RE.search(msg):
            hs.total_nodes, hs.concurrency, hs.total_line = int(m.group(1)), m.group(2), ln
        elif _UNAVAILABLE_RE.search(msg):
            hs.unavailable.append(ln)
    return hs
