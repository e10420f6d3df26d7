"""Shared test set-up: the real-server fixtures plugin and a clean environment per test."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.sshd"]

_CLEARED_PREFIXES = ("SLACK_", "QCC_")
_CLEARED_NAMES = ("GITHUB_TOKEN",)


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every SLACK_*, QCC_* and GITHUB_TOKEN variable for the test (STYLE habit 12)."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED_NAMES:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _strict_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    """A diagnosis rule, parser or fix builder that raises fails the test loudly instead of being
    logged and skipped (``bot.diagnosis.engine.STRICT``); tests of the lenient path pass
    ``strict=False``."""
    from bot.diagnosis import engine

    monkeypatch.setattr(engine, "STRICT", True)
