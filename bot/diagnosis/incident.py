"""Which evidence belongs to this incident: the time window and the pid rule (pure).

The incident window is the proxy run's life with a margin of :data:`WINDOW` minutes on each
side: ``[StartedAt - W, (FinishedAt, or the capture time while it runs) + W]``, plus
``FinishedAt ± W`` of the MySQL container when it stopped. Without a proxy state the
window is the last :data:`FALLBACK` before the capture.

A kernel event counts when

* it has a date (an undated event is never "recent"),
* its time falls in the window — exactly for zoned times (``dmesg --time-format=iso``,
  ``journalctl -o short-iso``); for local times without a zone (``dmesg -T``, classic
  journal) the window is widened by :data:`ZONE_SLACK` each side, since the host's zone is
  unknown, and
* when it names a pid and the process is the proxy's (``ccproxy``/``cccli``) or MySQL's
  (``mysqld``) while that container's pid is known (non-zero), the pid is that container's
  (test and prod share one host: the other environment's ``ccproxy`` is not this one).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from bot.diagnosis.evidenceparse import KernelEvent
from bot.diagnosis.logparse import OomEvent

WINDOW = timedelta(minutes=10)
ZONE_SLACK = timedelta(hours=14)
FALLBACK = timedelta(days=1)
PROXY_PROCS = ("ccproxy", "cccli")
MYSQL_PROCS = ("mysqld",)


class Window(BaseModel):
    """One time span ``[start, end]`` (aware datetimes) and what it is around."""

    start: datetime
    end: datetime
    about: str

    def contains(self, when: datetime, zoned: bool) -> bool:
        slack = timedelta(0) if zoned else ZONE_SLACK
        return self.start - slack <= when <= self.end + slack


def incident_windows(*, captured_at: datetime, proxy_started: datetime | None, proxy_finished: datetime | None,
                     proxy_running: bool | None, mysql_finished: datetime | None) -> list[Window]:
    """The windows of this incident (see module doc)."""
    out: list[Window] = []
    if proxy_started is not None:
        end = captured_at if proxy_running or proxy_finished is None else proxy_finished
        out.append(Window(start=proxy_started - WINDOW, end=end + WINDOW, about="the proxy's run"))
    elif proxy_finished is not None:
        out.append(Window(start=proxy_finished - WINDOW, end=proxy_finished + WINDOW, about="the proxy's exit"))
    if mysql_finished is not None:
        out.append(Window(start=mysql_finished - WINDOW, end=mysql_finished + WINDOW, about="MySQL's exit"))
    if not out:
        out.append(Window(start=captured_at - FALLBACK, end=captured_at + WINDOW, about="the last day"))
    return out


def relevant_events(events: list[KernelEvent], windows: list[Window], *, proxy_pid: int = 0,
                    mysql_pid: int = 0) -> list[OomEvent]:
    """The events of this incident (see module doc), as :class:`OomEvent` with ``when`` set."""
    out = []
    for ke in events:
        ev = ke.event
        if ke.when is None or not any(w.contains(ke.when, ke.zoned) for w in windows):
            continue
        proc = (ev.process or "").lower()
        if ev.pid and proc in PROXY_PROCS and proxy_pid and ev.pid != proxy_pid:
            continue
        if ev.pid and proc in MYSQL_PROCS and mysql_pid and ev.pid != mysql_pid:
            continue
        out.append(ev)
    return out
