"""Waiting on a fake's state: shared by the fake Slack Web API and the fake Socket Mode endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait_until(predicate: Callable[[], object], changed: asyncio.Event, timeout_s: float, what: str) -> None:
    """Wait until ``predicate()`` is true, re-checking whenever ``changed`` is set (and every 0.2 s).

    Raises AssertionError ``"timed out waiting for <what>"`` after ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out waiting for {what}")
        changed.clear()
        try:
            await asyncio.wait_for(changed.wait(), min(remaining, 0.2))
        except TimeoutError:
            pass
