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
SCENARIO_CONFIDENCE = pytest.StashKey[dict[str, float]]()


@pytest.fixture
def scenario_results(request: pytest.FixtureRequest) -> dict[str, tuple[str, str, bool]]:
    """name -> (expected, got, evidence quoted); shared across the session."""
    return request.config.stash.setdefault(SCENARIO_RESULTS, {})


@pytest.fixture
def scenario_confidence(request: pytest.FixtureRequest) -> dict[str, float]:
    """name -> the top cause's confidence; shared across the session (the calibration lines)."""
    return request.config.stash.setdefault(SCENARIO_CONFIDENCE, {})


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
    false_healthy = sum(1 for exp, got, _ in results.values() if got == "healthy" and exp != "healthy")
    terminalreporter.write_line(
        f"diagnosis scenario suite: top-1 accuracy {good}/{total} = {100.0 * good / total:.1f}% "
        f"(top cause right and its evidence quotes the deciding line), false healthy {false_healthy}")
    conf = config.stash.get(SCENARIO_CONFIDENCE, {})
    for lo, hi in ((0.9, 1.01), (0.8, 0.9), (0.6, 0.8), (0.0, 0.6)):
        band = [name for name, c in conf.items() if lo <= c < hi and name in results]
        right = sum(1 for name in band if results[name][0] == results[name][1] and results[name][2])
        if band:
            terminalreporter.write_line(f"  confidence {lo:.1f}-{min(hi, 1.0):.1f}: {right}/{len(band)} top "
                                        f"causes right ({100.0 * right / len(band):.0f}%)")
    for name, (exp, got, quoted) in sorted(results.items()):
        if exp != got or not quoted:
            terminalreporter.write_line(f"  miss: {name}: expected {exp}, got {got}, quoted={quoted}")
