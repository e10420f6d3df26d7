"""Locale-robust and running-system parsers (pure, never raise) for the evidence rules.

* :func:`parse_free_any` — ``free -m`` in any language (Chinese ``总计 已用 … 可用`` / ``内存：``),
  old and new procps; delegates to :func:`bot.diagnosis.hostparse.parse_free` after
  translating the header words and row labels.
* :func:`parse_kernel_events` — kernel OOM lines of ``dmesg -T`` (English or Chinese dates),
  ``dmesg --time-format=iso``, ``journalctl -k`` (classic and ``-o short-iso``); each event's
  ``when`` and whether that time carries a zone (``zoned``).
* :func:`parse_inspect_details` — what the evidence rules read from ``docker inspect`` beyond
  :class:`~bot.diagnosis.parsers.ContainerState`: health status, creation time, the
  ``PROXY_LISTEN_ADDR`` port and the DSN's host and port (never its user or password).
* :func:`parse_mysql_log` — the MySQL container's ``docker logs --tail N --timestamps`` lines.
* :func:`parse_actions_log` — a GitHub Actions run log (``gh run view --log``): conclusion,
  the failed step and its health-check / ``port is already allocated`` / rollback lines.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from pydantic import BaseModel, Field

from bot.diagnosis import hostparse as hp
from bot.diagnosis.logparse import LogLine, OomEvent, parse_docker_logs, parse_kernel_oom
from bot.diagnosis.textutil import clean_line, clean_text, iter_lines, json_array, parse_time

# ---------------------------------------------------------------- free -m in any language
_FREE_WORDS = {
    "总计": "total", "总量": "total", "已用": "used", "空闲": "free", "共享": "shared",
    "缓冲/缓存": "buff/cache", "缓存": "cached", "缓冲": "buffers", "可用": "available",
    "總計": "total", "已使用": "used", "可用的": "available",
}
_FREE_ROWS = (("内存", "Mem:"), ("記憶體", "Mem:"), ("交换", "Swap:"), ("交換", "Swap:"))


def parse_free_any(text: str) -> hp.Memory | None:
    """``free -m`` in English or Chinese; None without a memory row.

    ``内存：        1987   1890   40   2   57   35`` is read as the ``Mem:`` row and the
    Chinese header words map to ``total used free shared buff/cache available``.
    """
    out = []
    for line in clean_text(text or "").split("\n"):
        stripped = line.strip()
        for word, label in _FREE_ROWS:
            if stripped.startswith(word):
                stripped = label + " " + re.sub(r"^\S*?[:：]", "", stripped).strip()
                break
        else:
            if not re.match(r"^[A-Za-z]", stripped) and any(w in stripped for w in _FREE_WORDS):
                stripped = " ".join(_FREE_WORDS.get(w, w) for w in stripped.split())
        out.append(stripped)
    return hp.parse_free("\n".join(out))


# ---------------------------------------------------------------- kernel OOM lines, any format
class KernelEvent(BaseModel):
    """A kernel OOM event with its time: ``zoned`` True when the time carries a UTC offset
    (ISO formats), False for local times without a zone (``dmesg -T``, classic journal)."""

    event: OomEvent
    when: datetime | None = None
    zoned: bool = False


_ISO_RE = re.compile(r"^\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:[.,](\d+))?([+-]\d{2}:?\d{2}|Z)?\]?\s")
_ZH_DMESG_RE = re.compile(r"^\[\S+\s+(\d{1,2})月\s*(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})\s+(\d{4})\]")
_EN_DMESG_RE = re.compile(r"^\[(\w{3} \w{3} +\d{1,2} \d{2}:\d{2}:\d{2} \d{4})\]")
_JOURNAL_RE = re.compile(r"^(\w{3} +\d{1,2} \d{2}:\d{2}:\d{2}) ")
_ZH_JOURNAL_RE = re.compile(r"^(\d{1,2})月\s*(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2}) ")


def _tz(text: str | None) -> timezone | None:
    if not text:
        return None
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4])))


def event_time(raw: str, year: int) -> tuple[datetime | None, bool]:
    """``(when, zoned)`` of one kernel line; ``(None, False)`` when it carries no date.

    Zone-less local times are returned as if UTC (the host zone is unknown)."""
    try:
        if m := _ISO_RE.match(raw):
            base = datetime.strptime(m.group(1).replace(" ", "T"), "%Y-%m-%dT%H:%M:%S")
            tz = _tz(m.group(3))
            return base.replace(tzinfo=tz or UTC).astimezone(UTC), tz is not None
        if m := _ZH_DMESG_RE.match(raw):
            mo, d, hh, mi, ss, y = (int(x) for x in m.groups())
            return datetime(y, mo, d, hh, mi, ss, tzinfo=UTC), False
        if m := _EN_DMESG_RE.match(raw):
            return datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC), False
        if m := _ZH_JOURNAL_RE.match(raw):
            mo, d, hh, mi, ss = (int(x) for x in m.groups())
            return datetime(year, mo, d, hh, mi, ss, tzinfo=UTC), False
        if m := _JOURNAL_RE.match(raw):
            when = datetime.strptime(f"{year} {' '.join(m.group(1).split())}", "%Y %b %d %H:%M:%S")
            return when.replace(tzinfo=UTC), False
    except ValueError:
        return None, False
    return None, False


def kernel_events_from(events: list[OomEvent], *, year: int) -> list[KernelEvent]:
    """Each parsed OOM event with its time (read again from its raw line) and whether it is zoned."""
    out = []
    for ev in events:
        when, zoned = event_time(ev.raw, year)
        out.append(KernelEvent(event=ev.model_copy(update={"when": when}), when=when, zoned=zoned))
    return out


def parse_kernel_events(text: str, *, year: int) -> list[KernelEvent]:
    """Kernel OOM events of ``dmesg``/``journalctl -k`` output in any of the formats above."""
    return kernel_events_from(parse_kernel_oom(text, year=year), year=year)


# ---------------------------------------------------------------- docker inspect extras
class ContainerDetail(BaseModel):
    """Evidence-rule fields of one ``docker inspect`` object (no secrets kept)."""

    name: str
    created: datetime | None = None
    health: str | None = None  # healthy | unhealthy | starting | None (no healthcheck)
    health_log: str = ""  # the last healthcheck output line
    listen_port: int | None = None  # from PROXY_LISTEN_ADDR=:8001
    dsn_host: str | None = None
    dsn_port: int | None = None
    oneoff: bool = False
    oom_killed: bool = False
    exit_code: int | None = None
    finished_at: datetime | None = None
    started_at: datetime | None = None


_DSN_ADDR_RE = re.compile(r"@tcp\(([^:)]+)(?::(\d+))?\)")


def parse_inspect_details(text: str) -> dict[str, ContainerDetail]:
    """``docker inspect <ids>`` → container name → :class:`ContainerDetail`."""
    out: dict[str, ContainerDetail] = {}
    for obj in (o for o in json_array(text) if isinstance(o, dict)):
        state = obj.get("State") if isinstance(obj.get("State"), dict) else {}
        config = obj.get("Config") if isinstance(obj.get("Config"), dict) else {}
        assert isinstance(state, dict) and isinstance(config, dict)
        name = str(obj.get("Name") or "").lstrip("/")
        if not name:
            continue
        d = ContainerDetail(name=name, created=parse_time(str(obj.get("Created") or "")),
                            oom_killed=bool(state.get("OOMKilled")),
                            started_at=parse_time(str(state.get("StartedAt") or "")),
                            finished_at=parse_time(str(state.get("FinishedAt") or "")))
        code = state.get("ExitCode")
        d.exit_code = code if isinstance(code, int) else None
        health = state.get("Health")
        if isinstance(health, dict):
            d.health = str(health.get("Status") or "") or None
            log = health.get("Log")
            if isinstance(log, list) and log and isinstance(log[-1], dict):
                d.health_log = str(log[-1].get("Output") or "").strip().split("\n")[0][:200]
        for item in config.get("Env") or []:
            key, _, value = str(item).partition("=")
            if key == "PROXY_LISTEN_ADDR" and (m := re.search(r":(\d+)$", value.strip())):
                d.listen_port = int(m.group(1))
            elif key == "PROXY_MYSQL_DSN" and (m := _DSN_ADDR_RE.search(value)):
                d.dsn_host, d.dsn_port = m.group(1), int(m.group(2) or 3306)
        labels = config.get("Labels")
        if isinstance(labels, dict):
            d.oneoff = str(labels.get("com.docker.compose.oneoff", "")).lower() == "true"
        out[name] = d
    return out


def ps_health(status: str) -> str | None:
    """``Up 3 days (healthy)`` → ``healthy``; ``(unhealthy)``, ``(health: starting)`` → ``starting``."""
    m = re.search(r"\((healthy|unhealthy|health: starting)\)", status or "")
    if not m:
        return None
    return "starting" if m.group(1).startswith("health:") else m.group(1)


# ---------------------------------------------------------------- MySQL container log
_MYSQL_DISK_RE = re.compile(r"no space left on device|disk is full|errcode: 28|os errno 28|"
                            r"error number 28|\bENOSPC\b", re.I)


def parse_mysql_log(text: str) -> list[LogLine]:
    """``docker logs --tail N --timestamps <mysql> 2>&1`` (one :class:`LogLine` per line)."""
    return parse_docker_logs(text)


def mysql_disk_lines(lines: list[LogLine]) -> list[LogLine]:
    """MySQL log lines saying the disk is full (``[ERROR] ... Disk is full writing``, errno 28)."""
    return [ln for ln in lines if _MYSQL_DISK_RE.search(ln.message)]


# ---------------------------------------------------------------- GitHub Actions run log
class CiRun(BaseModel):
    """A GitHub Actions deploy run read from its log.

    ``conclusion`` is ``success|failure|cancelled|None``; ``failed_step`` the step whose
    ``##[error]`` ended it; ``health_attempts`` the deploy script's health-poll lines;
    ``port_allocated``/``rollback`` the lines that say so. ``lines`` are the deciding lines.
    """

    conclusion: str | None = None
    failed_step: str | None = None
    health_attempts: list[str] = Field(default_factory=list)
    health_passed: bool = False
    port_allocated: list[str] = Field(default_factory=list)
    rollback: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    lines: list[str] = Field(default_factory=list)


_CI_STEP_RE = re.compile(r"^(?:([^\t]+)\t([^\t]+)\t)?(\d{4}-\d{2}-\d{2}T[\d:.]+Z\s)?(.*)$")
_CI_HEALTH_RE = re.compile(r"health.?check|waiting for .*(?:8001|8000|proxy)|attempt \d+\s*/\s*\d+|"
                           r"curl.*127\.0\.0\.1:\d+", re.I)
_CI_HEALTH_OK_RE = re.compile(r"health.?check (?:passed|ok|succeeded)|service is (?:up|healthy)", re.I)
_CI_ROLLBACK_RE = re.compile(r"roll(?:ing)?[ -]?back|re-?tag(?:ging)? .*previous|previous image", re.I)
_CI_CONCLUSION_RE = re.compile(r"(?:conclusion|status)[:=]\s*(success|failure|cancelled|timed_out)", re.I)


def parse_actions_log(text: str) -> CiRun | None:
    """Parse ``gh run view <id> --log`` (``job<TAB>step<TAB>time line``) or a raw run log.

    None when the text holds no run-log line (``job<TAB>step<TAB>`` or a leading ISO time).
    The conclusion is ``failure`` when a ``##[error]`` line or ``Process completed with exit
    code N`` (N != 0) appears, ``success`` when the log ends without one,
    unless a ``conclusion: X`` line says otherwise.
    """
    run = CiRun()
    seen_any = False
    for raw in iter_lines(text or ""):
        line = clean_line(raw).strip()
        if not line:
            continue
        m = _CI_STEP_RE.match(line)
        if m is None or not (m.group(2) or m.group(3)):
            continue  # not a run-log line (e.g. the step's `CI run log: not configured` note)
        step = m.group(2) or None
        body = m.group(4).strip()
        seen_any = True
        if c := _CI_CONCLUSION_RE.search(body):
            run.conclusion = c.group(1).lower()
        if "##[error]" in body or re.search(r"Process completed with exit code [1-9]", body):
            run.errors.append(body)
            run.failed_step = run.failed_step or step
            if run.conclusion is None:
                run.conclusion = "failure"
        if "port is already allocated" in body:
            run.port_allocated.append(body)
        if _CI_HEALTH_OK_RE.search(body):
            run.health_passed = True
            run.health_attempts.append(body)
        elif _CI_HEALTH_RE.search(body):
            run.health_attempts.append(body)
        if _CI_ROLLBACK_RE.search(body):
            run.rollback.append(body)
    if not seen_any:
        return None
    if run.conclusion is None:
        run.conclusion = "success"
    run.lines = list(dict.fromkeys([*run.errors[:2], *run.port_allocated[:1], *run.health_attempts[-2:],
                                    *run.rollback[:1]]))
    return run
