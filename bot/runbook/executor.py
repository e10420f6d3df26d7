"""Run every step of a runbook concurrently, each with its own deadline: one wave.

No step waits for another's remote result: ``transport: local`` steps only grep the output of
their ``source`` step once it is in, and a multi-part step is one remote command whose parts
are reported as results of their own (ids of the parts). One failing, timing-out or erroring
step never discards the others' results.

Every remote command runs under ``LC_ALL=C`` (see :func:`~bot.runbook.commands.render_script`).
Container names are not resolved here: a :data:`NameResolver` given by the caller reads them
from the finished results (the executor knows no parser).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from bot.config import EnvironmentConfig
from bot.errors import CommandTimeout, TransportError
from bot.models import StepEvent, StepPhase, StepResult, StepStatus
from bot.runbook.commands import render_script, step_variables
from bot.runbook.models import Runbook, Step
from bot.runbook.sections import split_sections
from bot.transports.base import EnvironmentTransports

LOCAL_GRACE_S = 3.0  # the local deadline is the remote `timeout` plus this grace
GREP_MAX_LINES = 200  # what a local grep step keeps (the last lines), like `| tail -n 200`

log = logging.getLogger(__name__)

ProgressCallback = Callable[[StepEvent], Awaitable[None]]
NameResolver = Callable[[Mapping[str, StepResult], EnvironmentConfig], dict[str, str]]
"""Reads container names (``proxy_container``, ``mysql_container``) from finished results by id."""


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def grep_text(text: str, pattern: str, *, after: int = 0, max_lines: int = GREP_MAX_LINES) -> str:
    """The lines of ``text`` matching ``pattern`` (case-insensitive), each followed by ``after``
    lines of context, the last ``max_lines`` kept: ``grep -i -E -A after | tail -n max_lines``."""
    rx = re.compile(pattern, re.IGNORECASE)
    lines = text.split("\n")
    keep: list[str] = []
    until = -1
    for i, line in enumerate(lines):
        if rx.search(line):
            until = i + after
        if i <= until and (line or i < len(lines) - 1):
            keep.append(line)
    return "".join(ln + "\n" for ln in keep[-max_lines:])


def source_text(result: StepResult) -> str:
    """The text a local step greps: the successful parts of a multi-part output, else all of it."""
    parts = split_sections(result.output)
    if not parts:
        return result.output
    return "".join(body for body, rc in parts.values() if rc == 0)


class RunbookExecutor:
    """Executes a :class:`Runbook` against one environment's transports.

    ``concurrency`` bounds remote steps in flight (the SSH transport bounds channels itself);
    ``resolver`` (optional) turns the results into container names for :meth:`run`'s second value.
    """

    def __init__(self, runbook: Runbook, *, concurrency: int = 8, resolver: NameResolver | None = None) -> None:
        self.runbook = runbook
        self.concurrency = concurrency
        self.resolver = resolver

    def _selected(self, only: set[str] | None) -> tuple[list[Step], set[str] | None]:
        """The steps to run for ``only`` (ids of steps or parts; a local step brings its source)
        and the ids to report (None: all)."""
        if only is None:
            return list(self.runbook.steps), None
        wanted: set[str] = set()
        report: set[str] = set()
        for sid in only:
            try:
                step = self.runbook.owner(sid)
            except KeyError:
                continue
            wanted.add(step.id)
            report.update([leaf[0] for leaf in step.leaves] if sid == step.id else [sid])
            if step.source:
                wanted.add(step.source)
        return [s for s in self.runbook.steps if s.id in wanted], report

    async def run(
        self,
        env_name: str,
        env: EnvironmentConfig,
        transports: EnvironmentTransports,
        *,
        on_progress: ProgressCallback | None = None,
        only: set[str] | None = None,
    ) -> tuple[list[StepResult], dict[str, str]]:
        """Run the steps (all, or those reporting an id in ``only``).

        Returns the results in runbook order (one per step, or per part of a multi-part step)
        and the container names: from the ``resolver``, configured names winning.
        ``on_progress`` gets a QUEUED event per step, then RUNNING and FINISHED (with the
        step's result; a multi-part step's FINISHED result is the whole remote output); its
        errors never break the run.
        """
        steps, report = self._selected(only)
        sem = asyncio.Semaphore(self.concurrency)
        done: dict[str, asyncio.Future[StepResult]] = {
            s.id: asyncio.get_running_loop().create_future() for s in steps}

        async def notify(step: Step, phase: StepPhase, result: StepResult | None = None) -> None:
            if on_progress is None:
                return
            try:
                await on_progress(StepEvent(step_id=step.id, title=step.title, phase=phase, result=result))
            except Exception:  # noqa: BLE001 - progress display must never break a diagnosis
                log.warning("progress callback failed", exc_info=True)

        async def run_one(step: Step) -> StepResult:
            try:
                if step.transport == "local":
                    assert step.source is not None  # noqa: S101 - checked by the model
                    source = await asyncio.shield(done[step.source])
                    await notify(step, StepPhase.RUNNING)
                    result = self._local(step, source)
                else:
                    async with sem:
                        await notify(step, StepPhase.RUNNING)
                        result = await self._execute(step, env, transports)
            except BaseException:
                if not done[step.id].done():
                    done[step.id].cancel()
                raise
            done[step.id].set_result(result)
            await notify(step, StepPhase.FINISHED, result)
            return result

        for step in steps:
            await notify(step, StepPhase.QUEUED)
        tasks = {s.id: asyncio.create_task(run_one(s)) for s in steps}
        try:
            await asyncio.gather(*tasks.values(), return_exceptions=True)
        finally:
            for t in tasks.values():
                if not t.done():
                    t.cancel()
        by_id: dict[str, StepResult] = {}
        for step in steps:
            task = tasks[step.id]
            if task.cancelled():
                result = StepResult(id=step.id, title=step.title, status=StepStatus.ERROR, error="cancelled")
            elif (exc := task.exception()) is not None:
                result = StepResult(id=step.id, title=step.title, status=StepStatus.ERROR,
                                    error=f"internal error: {type(exc).__name__}")
            else:
                result = task.result()
            for part in self._split(step, result):
                by_id[part.id] = part
        results = [by_id[sid] for sid in self.runbook.reported_ids
                   if sid in by_id and (report is None or sid in report)]
        names = self.resolver(by_id, env) if self.resolver is not None else {}
        for key in ("proxy_container", "mysql_container"):
            if explicit := getattr(env, key):
                names[key] = explicit
        return results, names

    @staticmethod
    def _split(step: Step, result: StepResult) -> list[StepResult]:
        """A multi-part step's result as one result per part (the step's own otherwise)."""
        if not step.parts:
            return [result]
        parts = split_sections(result.output) if result.status == StepStatus.OK else {}
        out = []
        for p in step.parts:
            base = result.model_copy(update={"id": p.id, "title": p.title})
            if result.status != StepStatus.OK:
                out.append(base.model_copy(update={"output": ""}))
                continue
            body, rc = parts.get(p.id, ("", None))
            if rc is None:
                out.append(base.model_copy(update={"status": StepStatus.FAILED, "output": body, "exit_status": None,
                                                   "error": "no complete output for this part"}))
            elif rc in p.ok_exit_codes:
                out.append(base.model_copy(update={"output": body, "exit_status": rc}))
            else:
                out.append(base.model_copy(update={"status": StepStatus.FAILED, "output": body, "exit_status": rc,
                                                   "error": f"exit status {rc}"}))
        return out

    @staticmethod
    def _local(step: Step, source: StepResult) -> StepResult:
        """Grep the source step's output (no remote command)."""
        base = {"id": step.id, "title": step.title, "command": f"grep -i -E {step.grep!r} <{step.source}>"}
        if source.status != StepStatus.OK:
            return StepResult(**base, status=StepStatus.SKIPPED,
                              error=f"{step.source} {source.status.value}" + (f" ({source.error})"
                                                                              if source.error else ""))
        start = time.monotonic()
        assert step.grep is not None  # noqa: S101 - checked by the model
        out = grep_text(source_text(source), step.grep, after=step.grep_after)
        return StepResult(**base, status=StepStatus.OK, duration_s=time.monotonic() - start, output=out,
                          exit_status=0 if out else 1)

    async def _execute(self, step: Step, env: EnvironmentConfig, transports: EnvironmentTransports) -> StepResult:
        start = time.monotonic()
        base = {"id": step.id, "title": step.title}
        try:
            if step.transport == "ssh":
                assert step.script is not None  # noqa: S101
                variables = step_variables(env)
                command = render_script(step.script, variables, timeout_s=step.timeout_s,
                                        merge_stderr=step.merge_stderr)
                res = await transports.shell.run(command, timeout_s=step.timeout_s + LOCAL_GRACE_S)
                elapsed = time.monotonic() - start
                if res.exit_status in (124, 137) and elapsed >= step.timeout_s * 0.9:
                    return StepResult(**base, status=StepStatus.TIMEOUT, duration_s=elapsed,
                                      error=f"timed out after {step.timeout_s:g}s (remote)",
                                      output=res.stdout, stderr=res.stderr,
                                      exit_status=res.exit_status, command=command)
                error: str | None
                if res.exit_status is not None and res.exit_status in step.ok_exit_codes:
                    status, error = StepStatus.OK, None
                else:
                    status = StepStatus.FAILED
                    if res.exit_status is None:
                        error = f"no exit status (signal {res.signal or 'unknown'})"
                    else:
                        first = (res.stderr.strip().splitlines() or [""])[0][:200]
                        error = f"exit status {res.exit_status}" + (f": {first}" if first else "")
                return StepResult(**base, status=status, duration_s=elapsed, error=error,
                                  output=res.stdout, stderr=res.stderr, exit_status=res.exit_status,
                                  command=command)
            if transports.sql is None:
                return StepResult(**base, status=StepStatus.SKIPPED, error="no mysql configured for this environment")
            assert step.query is not None  # noqa: S101
            params = {"database": env.mysql.database if env.mysql else ""}
            rows = await transports.sql.query(step.query, params, timeout_s=step.timeout_s)
            return StepResult(**base, status=StepStatus.OK, duration_s=time.monotonic() - start,
                              output=json.dumps(rows, default=_json_default), command=step.query.strip())
        except CommandTimeout as exc:
            return StepResult(**base, status=StepStatus.TIMEOUT, duration_s=time.monotonic() - start,
                              error=str(exc))
        except TransportError as exc:
            return StepResult(**base, status=StepStatus.ERROR, duration_s=time.monotonic() - start,
                              error=str(exc))
