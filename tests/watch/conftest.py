"""Fixtures for the watch tests: the trigger tests' bot, a sandbox host, and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.sandbox import SandboxDir
from tests.triggers.conftest import (  # noqa: F401 - fixtures
    fake_slack,
    hook_secrets,
    mysql_password,
    start_trigger_bot,
)


class FakeClock:
    """An aware UTC clock that only moves when the watch sleeps; ``at(seconds, fn)`` runs ``fn``
    once when the clock reaches ``seconds`` after the start (e.g. to change the sandbox host)."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC)
        self.now = self.start
        self.slept: list[float] = []
        self._hooks: list[tuple[float, Callable[[], object]]] = []
        self.gate: asyncio.Event | None = None  # when set up: sleep blocks until it is set

    def __call__(self) -> datetime:
        return self.now

    def elapsed_s(self) -> float:
        return (self.now - self.start).total_seconds()

    def at(self, seconds: float, fn: Callable[[], object]) -> None:
        self._hooks.append((seconds, fn))

    async def sleep(self, seconds: float) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
        for due, fn in list(self._hooks):
            if self.elapsed_s() >= due:
                self._hooks.remove((due, fn))
                fn()
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def box(tmp_path: Path) -> SandboxDir:
    """A sandbox host showing the healthy scenario."""
    sandbox = SandboxDir(tmp_path / "host")
    sandbox.load("healthy")
    return sandbox


Waiter = Callable[[], Awaitable[None]]
