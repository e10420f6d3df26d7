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


# Tests that need a server outside this process. `make test-fast` deselects them with
# `-m "not server and not slow"`: a test is `server` when it is marked sshd/mariadb/docker or
# uses (directly or through another fixture) one of the real-server fixtures below.
_SERVER_MARKS = ("sshd", "mariadb", "docker")
_FIXTURE_MARKS = {"sshd": "sshd", "sshd_factory": "sshd", "make_sshd": "sshd", "mariadb": "mariadb"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            if fixture in _FIXTURE_MARKS:
                item.add_marker(_FIXTURE_MARKS[fixture])
        if any(item.get_closest_marker(m) for m in _SERVER_MARKS):
            item.add_marker("server")
