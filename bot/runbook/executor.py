"""Run every step of a runbook concurrently, each with its own deadline.

One failing, timing-out or erroring step never discards the others' results. Steps that
need a container name wait for the ``container_status`` step, which resolves names from
compose labels; if the name cannot be resolved they are ``skipped`` with the reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from bot.config import EnvironmentConfig
from bot.diagnosis.parsers import parse_docker_ps, resolve_container
from bot.errors import CommandTimeout, TransportError
from bot.models import StepResult, StepStatus
from bot.runbook.commands import render_script, step_variables
from bot.runbook.models import Runbook, Step
from bot.transports.base import EnvironmentTransports

RESOLVER_STEP = "container_status"
LOCAL_GRACE_S = 3.0  # the local deadline is the remote `timeout` plus this grace

ProgressCallback = Callable[[StepResult], Awaitable[None]]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class RunbookExecutor:
    """Executes a :class:`Runbook` against one environment's transports.

    ``concurrency`` bounds steps in flight (the SSH transport bounds channels itself).
    ``on_progress`` is awaited with a ``running`` result when a step starts and with the
    final result when it ends; its errors are not allowed to break the run.
    """

    def __init__(self, runbook: Runbook, *, concurrency: int = 8) -> None:
        self.runbook = runbook
        self.concurrency = concurrency

    async def run(
        self,
        env_name: str,
        env: EnvironmentConfig,
        transports: EnvironmentTransports,
        *,
        on_progress: ProgressCallback | None = None,
        only: set[str] | None = None,
    ) -> tuple[list[StepResult], dict[str, str]]:
        """Run the steps (all, or those in ``only``); returns results in runbook order and
        the resolved container names (``proxy_container``, ``mysql_container``)."""
        steps = [s for s in self.runbook.steps if only is None or s.id in only]
        sem = asyncio.Semaphore(self.concurrency)
        resolved: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        resolver_failure: dict[str, str] = {}  # why the container status step gave no names
        needs_resolution = any(s.needs for s in steps)
        resolver = next((s for s in self.runbook.steps if s.id == RESOLVER_STEP), None)

        async def notify(result: StepResult) -> None:
            if on_progress is None:
                return
            try:
                await on_progress(result)
            except Exception:  # noqa: BLE001 - progress display must never break a diagnosis
                import logging

                logging.getLogger(__name__).warning("progress callback failed", exc_info=True)

        async def run_one(step: Step) -> StepResult:
            if step.needs:
                names = await resolved
                missing = [n for n in step.needs if not names.get(n)]
                if missing:
                    why = resolver_failure.get("why")
                    reason = (f"{', '.join(missing)} unknown: container status {why}" if why
                              else f"{', '.join(missing)} not found (see container status)")
                    result = StepResult(id=step.id, title=step.title, status=StepStatus.SKIPPED, error=reason)
                    await notify(result)
                    return result
            else:
                names = {}
            async with sem:
                await notify(StepResult(id=step.id, title=step.title, status=StepStatus.SKIPPED,
                                        error="running"))
                result = await self._execute(step, env, transports, names)
            await notify(result)
            return result

        tasks: dict[str, asyncio.Task[StepResult]] = {}
        try:
            if needs_resolution and resolver is not None:
                # The resolver sets the future itself once it has parsed `docker ps`.
                async def resolver_run() -> StepResult:
                    try:
                        result = await run_one(resolver)
                    except BaseException:
                        if not resolved.done():
                            resolved.set_result({})
                        raise
                    names: dict[str, str] = {}
                    if result.status != StepStatus.OK:
                        resolver_failure["why"] = f"{result.status.value} ({result.error or 'no detail'})"
                    else:
                        containers = parse_docker_ps(result.output)
                        for key, service in (("proxy_container", env.proxy_service),
                                             ("mysql_container", env.mysql_service)):
                            c = resolve_container(containers, env.compose_project, service)
                            if c is not None:
                                names[key] = c.name
                    for key in ("proxy_container", "mysql_container"):
                        explicit = getattr(env, key)
                        if explicit:
                            names[key] = explicit
                    if not resolved.done():
                        resolved.set_result(names)
                    return result

                tasks[resolver.id] = asyncio.create_task(resolver_run())
            elif not resolved.done():
                resolved.set_result({k: v for k in ("proxy_container", "mysql_container")
                                     if (v := getattr(env, k))})
            for step in steps:
                if step.id not in tasks:
                    tasks[step.id] = asyncio.create_task(run_one(step))
            await asyncio.gather(*tasks.values(), return_exceptions=True)
        finally:
            for t in tasks.values():
                if not t.done():
                    t.cancel()
            if not resolved.done():
                resolved.set_result({})
        results: list[StepResult] = []
        for step in steps:
            task = tasks[step.id]
            if task.cancelled():
                results.append(StepResult(id=step.id, title=step.title, status=StepStatus.ERROR,
                                          error="cancelled"))
            elif (exc := task.exception()) is not None:
                results.append(StepResult(id=step.id, title=step.title, status=StepStatus.ERROR,
                                          error=f"internal error: {type(exc).__name__}"))
            else:
                results.append(task.result())
        names = resolved.result() if resolved.done() and not resolved.cancelled() else {}
        return results, names

    async def _execute(self, step: Step, env: EnvironmentConfig, transports: EnvironmentTransports,
                       names: dict[str, str]) -> StepResult:
        start = time.monotonic()
        base = {"id": step.id, "title": step.title}
        try:
            if step.transport == "ssh":
                assert step.script is not None  # noqa: S101
                variables = step_variables(env, names)
                command = render_script(step.script, variables, timeout_s=step.timeout_s,
                                        merge_stderr=step.merge_stderr)
                res = await transports.shell.run(command, timeout_s=step.timeout_s + LOCAL_GRACE_S)
                elapsed = time.monotonic() - start
                if res.exit_status in (124, 137) and elapsed >= step.timeout_s * 0.9:
                    return StepResult(**base, status=StepStatus.TIMEOUT, duration_s=elapsed,
                                      error=f"timed out after {step.timeout_s:g}s (remote)",
                                      output=res.stdout, stderr=res.stderr,
                                      exit_status=res.exit_status, command=command)
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
