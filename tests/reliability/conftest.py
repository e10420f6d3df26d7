"""Reliability suite: prints the proven figures at the end of the run (see figures.py)."""

from __future__ import annotations

import pytest

from tests.reliability.faults_harness import make_host, noise, start_rig  # noqa: F401 - fixtures
from tests.reliability.figures import FIGURES
from tests.reliability.secrets_guard import (  # noqa: F401 - the session-wide secrets guard
    no_secret_in_this_tests_logs,
    secrets_log_guard,
)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures whenever reliability tests ran."""
    if not FIGURES.outcomes and not FIGURES.numbers:
        return
    terminalreporter.section("reliability figures")
    for line in FIGURES.summary_lines():
        terminalreporter.write_line("reliability: " + line)
