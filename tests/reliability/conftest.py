"""Reliability suite: prints the proven figures at the end of the run (see figures.py)."""

from __future__ import annotations

import pytest

from tests.reliability.figures import FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures whenever reliability tests ran."""
    if not FIGURES.outcomes and not FIGURES.numbers:
        return
    terminalreporter.section("reliability figures")
    for line in FIGURES.summary_lines():
        terminalreporter.write_line("reliability: " + line)
