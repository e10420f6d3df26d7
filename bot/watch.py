"""The post-deploy watch: poll an environment for a window and say whether it stayed healthy.

Every real outage of qcc_plus came minutes after a green deploy, when the claude/node
health-check workers piled up and exhausted the host. The watch re-runs a few runbook steps
(:data:`WATCH_STEPS` through :meth:`bot.service.DiagnosisService.run_checks`, ``GET /`` on the
proxy port included) every ``watch.interval_s`` seconds for
``watch.window_min`` minutes.

Pure parts (tested with fixture text): :func:`sample_from_steps` (step results -> a
:class:`WatchSample`, through the runbook's own parsers and :func:`collect_facts`),
:func:`assess` (``WatchSample`` + baseline -> degradation reasons, empty when healthy) and
:func:`fold` (the running :class:`WatchProgress`: restarts, minimum available memory, maximum
workers, /version commit). :func:`run_watch` is the loop, with the clock, the sleep and the
state callbacks injected, so a ten-minute window runs in milliseconds under test.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from bot.config import WatchSettings
from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.facts import collect_facts
from bot.models import StepResult, StepStatus
from bot.runbook.steps import StepId
from bot.service import DiagnosisService

# The runbook steps one poll re-runs (bot/runbooks/qcc_deploy_crash.yaml), ``/`` included.
WATCH_STEPS: tuple[StepId, ...] = (StepId.CONTAINER_STATUS, StepId.CONTAINER_INSPECT, StepId.HOST_MEMORY,
                                   StepId.HOST_PROCESSES, StepId.DEPLOYED_VERSION, StepId.PROXY_ROOT)


class WatchSample(BaseModel):
    """What one poll saw. None means "could not tell" (the step failed or was not run).

    ``proxy_restarts`` is docker's restart count; ``proxy_started_at`` tells a recreated
    container (a new start) from a restarted one; ``root_status`` is the HTTP status of ``/``
    (0 = no answer); ``available_mb`` the host's available memory (MiB); ``workers`` the
    claude/node health-check processes; ``unreachable`` the step errors (e.g. SSH down).
    """

    at: datetime
    proxy_state: str | None = None
    proxy_restarts: int | None = None
    proxy_started_at: datetime | None = None
    version_commit: str | None = None
    version_ok: bool | None = None
    root_status: int | None = None
    available_mb: int | None = None
    workers: int | None = None
    unreachable: list[str] = Field(default_factory=list)


class WatchProgress(BaseModel):
    """The watch so far (stored after every poll, so a restarted bot resumes it)."""

    polls: int = 0
    baseline_restarts: int | None = None
    baseline_started_at: datetime | None = None
    restarts: int = 0  # new proxy restarts/recreations during the window
    min_available_mb: int | None = None
    max_workers: int | None = None
    commit: str | None = None
    bad_streak: int = 0  # consecutive degraded polls
    reasons: list[str] = Field(default_factory=list)  # of the last poll


class WatchVerdict(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    STOPPED = "stopped"


class WatchOutcome(BaseModel):
    """How a watch ended: ``minutes`` watched, the last progress and (degraded) its reasons."""

    verdict: WatchVerdict
    minutes: float
    progress: WatchProgress


def sample_from_steps(steps: list[StepResult], ctx: AnalysisContext, at: datetime) -> WatchSample:
    """A :class:`WatchSample` from the (redacted) results of :data:`WATCH_STEPS`.

    Pure; never raises on odd output (the runbook parsers decide what they can read).
    """
    facts = collect_facts(steps, ctx)
    by_id = {s.id: s for s in steps}
    sample = WatchSample(at=at)
    sample.unreachable = [f"{s.title}: {s.error}" for s in steps
                          if s.status in (StepStatus.ERROR, StepStatus.TIMEOUT) and s.error][:5]
    if facts.containers is not None:
        sample.proxy_state = facts.proxy.state if facts.proxy is not None else "missing"
    if facts.proxy_state is not None:
        sample.proxy_restarts = facts.proxy_state.restart_count
        sample.proxy_started_at = facts.proxy_state.started_at
        if not facts.proxy_state.running and sample.proxy_state in (None, "running"):
            sample.proxy_state = facts.proxy_state.status or "not running"
    step = by_id.get(StepId.DEPLOYED_VERSION)
    if step is not None and step.status == StepStatus.OK:
        sample.version_ok = facts.version is not None
        sample.version_commit = facts.version.git_commit if facts.version is not None else None
    if facts.root_status is not None:
        sample.root_status = facts.root_status
    if facts.memory is not None:
        sample.available_mb = (facts.memory.available_mb if facts.memory.available_mb is not None
                               else facts.memory.free_mb)
    if facts.processes is not None:
        sample.workers = len(facts.processes.workers)
    return sample


def assess(sample: WatchSample, progress: WatchProgress, limits: WatchSettings) -> list[str]:
    """Why ``sample`` is degraded (one short sentence per reason); empty when it is healthy.

    Degraded: the host cannot be reached; the proxy is not running; it restarted (or was
    recreated) more than ``max_new_restarts`` times since the first poll; /version or ``/`` do
    not answer; available memory below ``min_available_mb``; more than ``max_workers``
    health-check workers.
    """
    reasons: list[str] = []
    if sample.unreachable and sample.proxy_state is None:
        reasons.append(f"the host could not be checked ({sample.unreachable[0][:160]})")
    if sample.proxy_state is not None and sample.proxy_state != "running":
        reasons.append(f"the proxy container is {sample.proxy_state}")
    restarts = _new_restarts(sample, progress)
    if restarts > limits.max_new_restarts:
        reasons.append(f"the proxy restarted {restarts} time(s) during the watch")
    if sample.version_ok is False:
        reasons.append("/version does not answer")
    if sample.root_status is not None and not 200 <= sample.root_status < 400:
        reasons.append("/ does not answer" if sample.root_status == 0 else f"/ answers HTTP {sample.root_status}")
    if sample.available_mb is not None and sample.available_mb < limits.min_available_mb:
        reasons.append(f"host memory available {sample.available_mb} MB, below {limits.min_available_mb} MB")
    if sample.workers is not None and sample.workers > limits.max_workers:
        reasons.append(f"{sample.workers} health-check workers (claude/node), more than {limits.max_workers}")
    return reasons


def _new_restarts(sample: WatchSample, progress: WatchProgress) -> int:
    if progress.polls == 0:
        return 0
    count = 0
    if sample.proxy_restarts is not None and progress.baseline_restarts is not None:
        count = max(0, sample.proxy_restarts - progress.baseline_restarts)
    recreated = (sample.proxy_started_at is not None and progress.baseline_started_at is not None
                 and sample.proxy_started_at != progress.baseline_started_at)
    return max(count, 1 if recreated else 0)


def fold(progress: WatchProgress, sample: WatchSample, reasons: list[str]) -> WatchProgress:
    """``progress`` after one more poll (pure)."""
    new = progress.model_copy(deep=True)
    if new.polls == 0:
        new.baseline_restarts = sample.proxy_restarts
        new.baseline_started_at = sample.proxy_started_at
    new.restarts = max(new.restarts, _new_restarts(sample, progress))
    if sample.available_mb is not None:
        new.min_available_mb = (sample.available_mb if new.min_available_mb is None
                                else min(new.min_available_mb, sample.available_mb))
    if sample.workers is not None:
        new.max_workers = sample.workers if new.max_workers is None else max(new.max_workers, sample.workers)
    if sample.version_commit:
        new.commit = sample.version_commit
    new.polls += 1
    new.bad_streak = new.bad_streak + 1 if reasons else 0
    new.reasons = list(reasons)
    return new


def summary_line(minutes: float, progress: WatchProgress) -> str:
    """``watched 10 min: stayed healthy (restarts 0, min available 1098 MB, max workers 0, /version 0a8a22f)``."""
    mem = f"{progress.min_available_mb} MB" if progress.min_available_mb is not None else "n/a"
    workers = progress.max_workers if progress.max_workers is not None else "n/a"
    return (f"watched {minutes:g} min: stayed healthy (restarts {progress.restarts}, min available {mem}, "
            f"max workers {workers}, /version {progress.commit or 'n/a'})")


# ---------------------------------------------------------------- the loop
Probe = Callable[[str], Awaitable[WatchSample]]
Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
Save = Callable[[WatchProgress], Awaitable[bool]]


async def run_watch(env_name: str, *, ends_at: datetime, started_at: datetime, interval_s: float,
                    limits: WatchSettings, probe: Probe, save: Save, clock: Clock, sleep: Sleep,
                    progress: WatchProgress | None = None) -> WatchOutcome:
    """Poll ``env_name`` until ``ends_at`` (aware UTC), every ``interval_s`` seconds.

    Returns DEGRADED as soon as ``limits.failed_polls`` consecutive polls were degraded (or
    when the window ends on a degraded poll), HEALTHY when the window ends otherwise, STOPPED
    when ``save`` (called after each poll with the new progress) answers False (the watch was
    stopped or taken over). ``progress`` resumes a watch a restart interrupted. ``probe``
    errors propagate (the caller marks the watch failed).
    """
    progress = progress or WatchProgress()

    def minutes() -> float:
        return round(max(0.0, (min(clock(), ends_at) - started_at).total_seconds()) / 60, 1)

    while True:
        sample = await probe(env_name)
        progress = fold(progress, sample, assess(sample, progress, limits))
        if not await save(progress):
            return WatchOutcome(verdict=WatchVerdict.STOPPED, minutes=minutes(), progress=progress)
        if progress.bad_streak >= limits.failed_polls:
            return WatchOutcome(verdict=WatchVerdict.DEGRADED, minutes=minutes(), progress=progress)
        remaining = (ends_at - clock()).total_seconds()
        if remaining <= 0:  # a window that ends on a degraded poll did not stay healthy
            verdict = WatchVerdict.DEGRADED if progress.bad_streak else WatchVerdict.HEALTHY
            return WatchOutcome(verdict=verdict, minutes=minutes(), progress=progress)
        await sleep(min(interval_s, remaining))


class ServiceProbe:
    """The production :data:`Probe`: :data:`WATCH_STEPS` through the diagnosis service (redacted),
    then :func:`sample_from_steps`."""

    def __init__(self, service: DiagnosisService, clock: Clock | None = None) -> None:
        self.service = service
        self.clock: Clock = clock or (lambda: datetime.now(UTC))

    async def __call__(self, env_name: str) -> WatchSample:
        at = self.clock()
        env = self.service.settings.environment(env_name)
        steps = await self.service.run_checks(env_name, list(WATCH_STEPS))
        ctx = AnalysisContext.from_config(env_name, env, captured_at=at)
        return sample_from_steps(steps, ctx, at)
