"""Shared fixtures of the diagnosis tests and the scenario-suite accuracy report.

The scenario tests record each outcome in ``config.stash``; ``pytest_terminal_summary``
prints one line (``diagnosis scenario suite: top-1 accuracy 47/47 = 100.0% ...``) whatever
the capture mode, so the accuracy is always in the test output.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.diagnosis.context import AnalysisContext

SCENARIO_RESULTS = pytest.StashKey[dict[str, tuple[str, str, bool]]]()


@pytest.fixture
def scenario_results(request: pytest.FixtureRequest) -> dict[str, tuple[str, str, bool]]:
    """name -> (expected, got, evidence quoted); shared across the session."""
    return request.config.stash.setdefault(SCENARIO_RESULTS, {})


@pytest.fixture
def ctx() -> AnalysisContext:
    """The test environment of the field notes (compose project qcc_test on port 8001)."""
    return AnalysisContext(
        environment="test", compose_project="qcc_test", compose_file="docker-compose.test.yml",
        workdir="/opt/qcc_plus", proxy_port=8001, database="qcc_proxy",
        captured_at=datetime(2025, 12, 10, 6, 20, tzinfo=UTC),
        rollback_command=["sh", "-c", 'git checkout --detach "$1" && docker compose -p "$2" -f "$3" up -d '
                                      '--build',
                          "rollback", "${commit}", "${compose_project}", "${compose_file}"],
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    results = config.stash.get(SCENARIO_RESULTS, None)
    if not results:
        return
    good = sum(1 for exp, got, quoted in results.values() if exp == got and quoted)
    total = len(results)
    terminalreporter.write_sep("-", "diagnosis scenario suite")
    terminalreporter.write_line(
        f"diagnosis scenario suite: top-1 accuracy {good}/{total} = {100.0 * good / total:.1f}% "
        f"(top cause right and its evidence quotes the deciding line)")
    for name, (exp, got, quoted) in sorted(results.items()):
        if exp != got or not quoted:
            terminalreporter.write_line(f"  miss: {name}: expected {exp}, got {got}, quoted={quoted}")
