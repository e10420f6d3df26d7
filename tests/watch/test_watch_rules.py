"""The pure parts of the watch: step output -> sample, sample -> reasons, the running figures,
and the loop with a scripted probe and an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.config import WatchSettings
from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.hostparse import parse_http_code
from bot.models import StepResult, StepStatus
from bot.watch import (
    WatchProgress,
    WatchSample,
    WatchVerdict,
    assess,
    fold,
    run_watch,
    sample_from_steps,
    summary_line,
)

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CTX = AnalysisContext(environment="test", compose_project="qcc_test", compose_file="docker-compose.test.yml",
                      workdir="/opt/qcc_plus", proxy_service="proxy", mysql_service="mysql", proxy_port=8001)
LIMITS = WatchSettings()

PS_JSON = ('{"ID":"ab12","Names":"qcc_test_proxy","Image":"qcc_plus-proxy","State":"running","Status":"Up 3 minutes",'
           '"Labels":"com.docker.compose.project=qcc_test,com.docker.compose.service=proxy"}')
INSPECT = ('[{"Id":"ab12","Name":"/qcc_test_proxy","RestartCount":1,"State":{"Status":"running","Running":true,'
           '"StartedAt":"2026-12-01T09:57:00.000000000Z","ExitCode":0},"Config":{"Labels":'
           '{"com.docker.compose.project":"qcc_test","com.docker.compose.service":"proxy"}}}]')
FREE = """              total        used        free      shared  buff/cache   available
Mem:           1967        1918          28           1          21          11
Swap:             0           0           0
"""
PS = """  PID  PPID   RSS %CPU ELAPSED COMMAND         COMMAND
40112     1 166000 11.8    48 claude          claude -p --model claude-haiku-4-5-20251001 ping
40113     1 166000 11.8    48 claude          claude -p --model claude-haiku-4-5-20251001 ping
48213     1 152000  9.2    47 node            node /usr/local/lib/node_modules/@anthropic-ai/claude-code/cli.js -p
  912     1  81500  0.5 1036760 dockerd       /usr/bin/dockerd -H fd://
"""


def step(sid: str, output: str, status: StepStatus = StepStatus.OK, error: str | None = None) -> StepResult:
    return StepResult(id=sid, title=sid, status=status, output=output, error=error)


def test_sample_from_captured_output():
    """Container state and restart count, /version, /, free and ps are read by the runbook's parsers."""
    steps = [step("container_status", PS_JSON), step("container_inspect", INSPECT), step("host_memory", FREE),
             step("host_processes", PS),
             step("deployed_version", '{"version":"v1.9.4","git_commit":"0a8a22f","build_date":"x"}'),
             step("proxy_root", "200")]
    s = sample_from_steps(steps, CTX, T0)
    assert (s.proxy_state, s.proxy_restarts, s.version_commit, s.version_ok) == ("running", 1, "0a8a22f", True)
    assert (s.root_status, s.available_mb, s.workers) == (200, 11, 3)
    assert s.proxy_started_at == datetime(2026, 12, 1, 9, 57, tzinfo=UTC)


def test_sample_when_the_host_cannot_be_reached():
    """Failed steps leave the figures unknown and name the error; assess calls it degraded."""
    err = "ssh: connection refused (127.0.0.1:2222)"
    steps = [step(sid, "", StepStatus.ERROR, err) for sid in ("container_status", "host_memory")]
    s = sample_from_steps(steps, CTX, T0)
    assert s.proxy_state is None and s.available_mb is None and s.unreachable
    assert assess(s, WatchProgress(), LIMITS) == [f"the host could not be checked (container_status: {err})"]


@pytest.mark.parametrize(("text", "code"), [("200", 200), ("000", 0), ("", None), ("HTTP 503", 503), ("junk", None)])
def test_parse_http_code(text, code):
    """curl's `%{http_code}`: 000 means no answer; output that is no status tells nothing (None)."""
    assert parse_http_code(text) == code


HEALTHY = WatchSample(at=T0, proxy_state="running", proxy_restarts=0, proxy_started_at=T0, version_ok=True,
                      version_commit="0a8a22f", root_status=200, available_mb=1098, workers=0)


@pytest.mark.parametrize(("change", "reason"), [
    ({}, None),
    ({"proxy_state": "exited"}, "the proxy container is exited"),
    ({"version_ok": False}, "/version does not answer"),
    ({"root_status": 0}, "/ does not answer"),
    ({"root_status": 502}, "/ answers HTTP 502"),
    ({"available_mb": 150}, "host memory available 150 MB, below 200 MB"),
    ({"workers": 7}, "7 health-check workers (claude/node), more than 6"),
    ({"workers": 6, "available_mb": 200}, None),  # the limits themselves are fine
])
def test_assess_each_threshold(change, reason):
    """One reason per crossed threshold; the thresholds are inclusive limits."""
    baseline = fold(WatchProgress(), HEALTHY, [])
    got = assess(HEALTHY.model_copy(update=change), baseline, LIMITS)
    assert got == ([reason] if reason else [])


def test_restarts_and_recreation_count_from_the_first_poll():
    """A higher restart count, or a new start time (compose recreated it), is a restart."""
    p = fold(WatchProgress(), HEALTHY.model_copy(update={"proxy_restarts": 3}), [])
    assert assess(HEALTHY.model_copy(update={"proxy_restarts": 3}), p, LIMITS) == []
    assert assess(HEALTHY.model_copy(update={"proxy_restarts": 4}), p, LIMITS) == [
        "the proxy restarted 1 time(s) during the watch"]
    moved = HEALTHY.model_copy(update={"proxy_restarts": 3, "proxy_started_at": T0 + timedelta(minutes=1)})
    assert assess(moved, p, LIMITS) == ["the proxy restarted 1 time(s) during the watch"]
    assert assess(moved, p, LIMITS.model_copy(update={"max_new_restarts": 1})) == []


def test_fold_keeps_the_figures_of_the_summary_line():
    """Minimum memory, maximum workers, new restarts and the latest commit over the window."""
    p = WatchProgress()
    for mem, workers in ((1098, 0), (640, 4), (900, 2)):
        p = fold(p, HEALTHY.model_copy(update={"available_mb": mem, "workers": workers}), [])
    assert (p.polls, p.min_available_mb, p.max_workers, p.restarts, p.commit) == (3, 640, 4, 0, "0a8a22f")
    assert summary_line(10, p) == ("watched 10 min: stayed healthy (restarts 0, min available 640 MB, "
                                   "max workers 4, /version 0a8a22f)")


class Script:
    """A probe answering scripted samples (the last one repeats) and a clock moved by sleep."""

    def __init__(self, samples: list[WatchSample]) -> None:
        self.samples = samples
        self.now = T0
        self.polls = 0
        self.saved: list[WatchProgress] = []
        self.keep = True

    async def probe(self, env: str) -> WatchSample:
        self.polls += 1
        return self.samples[min(self.polls, len(self.samples)) - 1]

    async def save(self, p: WatchProgress) -> bool:
        self.saved.append(p)
        return self.keep

    async def sleep(self, s: float) -> None:
        self.now += timedelta(seconds=s)

    async def run(self, minutes: float = 10, limits: WatchSettings = LIMITS):
        return await run_watch("test", ends_at=T0 + timedelta(minutes=minutes), started_at=T0, interval_s=20,
                               limits=limits, probe=self.probe, save=self.save, clock=lambda: self.now,
                               sleep=self.sleep)


async def test_loop_clean_window():
    """A ten-minute window polled every 20 s: 31 polls (0 s .. 600 s), healthy."""
    s = Script([HEALTHY])
    out = await s.run()
    assert out.verdict == WatchVerdict.HEALTHY and out.minutes == 10 and s.polls == 31


async def test_loop_needs_consecutive_bad_polls():
    """One bad poll between good ones is not enough (failed_polls = 2); two in a row are."""
    bad = HEALTHY.model_copy(update={"available_mb": 10})
    s = Script([HEALTHY, bad, HEALTHY, bad, bad, HEALTHY])
    out = await s.run()
    assert out.verdict == WatchVerdict.DEGRADED and s.polls == 5 and out.minutes == pytest.approx(1.3)
    assert out.progress.reasons == ["host memory available 10 MB, below 200 MB"]


async def test_loop_stops_when_the_store_says_so():
    """`save` answering False (stopped, or taken over by another replica) ends the loop at once."""
    s = Script([HEALTHY])
    s.keep = False
    out = await s.run()
    assert out.verdict == WatchVerdict.STOPPED and s.polls == 1


async def test_loop_window_ending_on_a_bad_poll_is_degraded():
    """The last poll of the window is degraded (a streak of one): not "stayed healthy"."""
    s = Script([HEALTHY, HEALTHY, HEALTHY.model_copy(update={"workers": 9})])
    out = await s.run(minutes=40 / 60)
    assert s.polls == 3 and out.verdict == WatchVerdict.DEGRADED


async def test_loop_resumes_from_stored_progress():
    """A resumed watch keeps the stored baseline and figures (restarts since the first poll)."""
    first = fold(WatchProgress(), HEALTHY.model_copy(update={"available_mb": 300}), [])
    s = Script([HEALTHY.model_copy(update={"proxy_restarts": 2})])
    out = await run_watch("test", ends_at=T0 + timedelta(minutes=1), started_at=T0, interval_s=20, limits=LIMITS,
                          probe=s.probe, save=s.save, clock=lambda: s.now, sleep=s.sleep, progress=first)
    assert out.verdict == WatchVerdict.DEGRADED and out.progress.min_available_mb == 300
    assert out.progress.restarts == 2
