"""Fixtures for the sandbox unit tests: a fresh sandbox directory per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from qcc_sandbox import SandboxDir


@pytest.fixture
def box(tmp_path: Path) -> SandboxDir:
    """An empty :class:`SandboxDir` under the test's temp dir (load a scenario into it)."""
    return SandboxDir(tmp_path / "sbx")


@pytest.fixture
def loaded(box: SandboxDir) -> Callable[[str], SandboxDir]:
    """``loaded("panic")`` loads a packaged scenario into ``box`` and returns it."""

    def load(name: str) -> SandboxDir:
        box.load(name)
        return box

    return load
