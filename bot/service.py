"""The diagnosis service: one call per user intent, shared by the CLI and the Slack bot.

* :meth:`DiagnosisService.diagnose` runs the whole runbook concurrently and analyzes it.
* :meth:`DiagnosisService.run_checks` re-runs selected steps (after-fix verification).
* :meth:`DiagnosisService.status` runs only the container status step (fast).
* :meth:`DiagnosisService.logs` summarizes the latest proxy log lines.

Every step output is redacted (patterns plus the configured secret values) before it
is analyzed, shown or saved.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from pydantic import BaseModel

from bot.bundle import Bundle
from bot.config import EnvironmentConfig, Settings, known_secrets
from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.engine import analyze, redact_step
from bot.diagnosis.logsummary import summarize_logs
from bot.diagnosis.parsers import Container, parse_docker_log_parts, parse_docker_ps, resolve_step_names
from bot.diagnosis.redact import redact_text
from bot.models import Diagnosis, LogSummary, StepEvent, StepResult, StepStatus
from bot.runbook.executor import RunbookExecutor
from bot.runbook.models import Runbook
from bot.runbook.steps import StepId
from bot.transports.base import TransportProvider

EventCallback = Callable[[StepEvent], Awaitable[None]]
"""What :meth:`DiagnosisService.diagnose` reports progress to: one redacted :class:`StepEvent` per
phase change of a step (queued -> running -> finished, ``result`` set when finished)."""


class DiagnosisRun(BaseModel):
    """A finished diagnosis with what is needed to replay it (``bundle``)."""

    diagnosis: Diagnosis
    bundle: Bundle


class DiagnosisService:
    """Runs the runbook for a named environment over injected transports.

    ``on_step`` (optional) is called with every finished step of every call (for metrics).
    """

    def __init__(self, settings: Settings, runbook: Runbook, transports: TransportProvider,
                 *, secrets: list[str] | None = None,
                 on_step: Callable[[StepResult], None] | None = None) -> None:
        self.settings = settings
        self.on_step = on_step
        self.runbook = runbook
        self.transports = transports
        self.executor = RunbookExecutor(runbook, concurrency=settings.step_concurrency, resolver=resolve_step_names)
        self.secrets = list(secrets) if secrets is not None else known_secrets(settings)

    def redact(self, text: str) -> str:
        """``text`` with secret patterns and the configured secret values redacted."""
        return redact_text(text, self.secrets)[0]

    def redact_step(self, step: StepResult) -> StepResult:
        """``step`` with its output, stderr, error and command redacted."""
        return redact_step(step, self.secrets)[0]

    async def _run(self, env_name: str, *, on_progress: EventCallback | None = None,
                   only: set[str] | None = None
                   ) -> tuple[EnvironmentConfig, list[StepResult], dict[str, str]]:
        """Run steps; returns the environment, the RAW step results and resolved names.

        Progress callbacks only ever see redacted results.
        """
        env = self.settings.environment(env_name)
        transports = await self.transports.get(env_name)

        async def progress(event: StepEvent) -> None:
            if on_progress is not None:
                if event.result is not None:
                    event = event.model_copy(update={"result": self.redact_step(event.result)})
                await on_progress(event)

        steps, names = await self.executor.run(env_name, env, transports, on_progress=progress, only=only)
        if self.on_step is not None:
            for step in steps:
                self.on_step(step)
        return env, steps, names

    async def diagnose(self, env_name: str, *, on_progress: EventCallback | None = None) -> DiagnosisRun:
        """Run every step concurrently and analyze the results.

        ``on_progress`` is awaited with a :class:`StepEvent` as each step is queued, starts and
        finishes (the finished event carries the redacted result). Raises
        :class:`bot.errors.UnknownEnvironment`; transport failures become per-step errors, never
        an exception.
        """
        started = datetime.now(UTC)
        t0 = time.monotonic()
        env, steps, names = await self._run(env_name, on_progress=on_progress)
        duration = time.monotonic() - t0
        ctx = AnalysisContext.from_config(env_name, env, captured_at=started, resolved=names)
        diagnosis = analyze(steps, ctx, started_at=started, duration_s=duration, extra_secrets=self.secrets)
        # The bundle keeps the redacted outputs (diagnosis.steps) and how many lines that took.
        bundle = Bundle(runbook=self.runbook.name, context=ctx, started_at=started, duration_s=duration,
                        steps=diagnosis.steps, redacted_lines=diagnosis.redacted_lines)
        return DiagnosisRun(diagnosis=diagnosis, bundle=bundle)

    async def run_checks(self, env_name: str, step_ids: Sequence[str]) -> list[StepResult]:
        """Re-run only ``step_ids`` (unknown ids are ignored); results in runbook order."""
        _, steps, _ = await self._run(env_name, only=set(step_ids))
        return [self.redact_step(s) for s in steps]

    async def status(self, env_name: str) -> tuple[StepResult, list[Container]]:
        """Container states of the environment's compose project (the fast check)."""
        _, steps, _ = await self._run(env_name, only={StepId.CONTAINER_STATUS})
        step = self.redact_step(steps[0])
        return step, parse_docker_ps(step.output) if step.status == StepStatus.OK else []

    async def logs(self, env_name: str) -> tuple[StepResult, LogSummary | None]:
        """The proxy's latest log lines (``log_tail`` of the environment), summarized and redacted."""
        _, steps, _ = await self._run(env_name, only={StepId.PROXY_LOGS})
        step = steps[0]
        if step.status != StepStatus.OK:
            return self.redact_step(step), None
        reads = [r for r in parse_docker_log_parts(step.output) if r.ok]
        text = reads[0].text if reads else step.output
        return self.redact_step(step), summarize_logs(text, extra_secrets=self.secrets)
