"""The background task registry: every piece of work that outlives a Slack ``ack()``.

Nothing is fire-and-forget. A listener ``ack()``s, then ``spawn()``s its work here with an
``on_error`` hook that reports a failure where the user will see it.
:meth:`TaskRegistry.drain` waits for all of it on shutdown, then cancels what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

log = logging.getLogger(__name__)

ErrorHook = Callable[[BaseException], Awaitable[None]]


class RegistryClosed(RuntimeError):
    """Raised by :meth:`TaskRegistry.spawn` after :meth:`TaskRegistry.drain` started."""


class AcksFirst:
    """Lets Slack's acks go out before spawned work starts (a burst of commands).

    Bolt dispatches a request inside :meth:`answering`; work spawned through a registry that
    has this gate first waits (:meth:`wait`) until no request has been answered for
    ``quiet_s`` seconds, or ``max_wait_s`` seconds at most. On one event loop, a diagnosis
    that started at once would take CPU (state writes, the first Slack post) from the
    requests of the same burst still waiting for their HTTP 200; a few milliseconds later it
    costs nobody anything.
    """

    def __init__(self, *, quiet_s: float = 0.01, max_wait_s: float = 0.25) -> None:
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self._inflight = 0
        self._last = 0.0

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Mark one request as being answered (nestable, counts requests in flight)."""
        self._inflight += 1
        try:
            yield
        finally:
            self._inflight -= 1
            self._last = time.monotonic()

    async def wait(self) -> None:
        """Return once the requests are answered and quiet, or after ``max_wait_s`` seconds."""
        deadline = time.monotonic() + self.max_wait_s
        while (now := time.monotonic()) < deadline:
            if self._inflight == 0 and now - self._last >= self.quiet_s:
                return
            await asyncio.sleep(self.quiet_s)


class TaskRegistry:
    """Tracks background tasks; ``drain()`` before the event loop ends. With ``acks_first``,
    spawned work starts after the requests in flight are answered (:class:`AcksFirst`)."""

    def __init__(self, acks_first: AcksFirst | None = None) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.acks_first = acks_first

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str,
              on_error: ErrorHook | None = None) -> asyncio.Task[Any]:
        """Start ``coro`` as a tracked task. Raises :class:`RegistryClosed` while shutting down."""
        if self._closed:
            coro.close()
            raise RegistryClosed("the bot is shutting down")
        task = asyncio.create_task(self._guard(coro, on_error, self.acks_first), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _guard(coro: Coroutine[Any, Any, Any], on_error: ErrorHook | None,
                     acks_first: AcksFirst | None = None) -> Any:
        try:
            if acks_first is not None:
                await acks_first.wait()
            return await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported to the user by the hook, and logged
            if on_error is None:
                log.exception("background task failed")
                return None
            try:
                await on_error(exc)
            except Exception:  # the reporter itself failed (Slack down): keep the original in the log
                log.exception("background task failed and its error could not be reported", exc_info=exc)
            return None

    async def wait_idle(self, timeout_s: float | None = None) -> None:
        """Wait until no task is running (tasks spawned meanwhile are waited for too)."""
        async with asyncio.timeout(timeout_s):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def drain(self, timeout_s: float = 30.0) -> int:
        """Stop accepting work, wait up to ``timeout_s`` for running tasks, cancel the rest.

        Returns the number of tasks that had to be cancelled.
        """
        self._closed = True
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(list(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)
