"""Offline replay of the real-engine captures: ``qcc-bot analyze`` on each saved bundle must
give the expert's answer (``expected.py``). No Docker needed: this is how rule changes are
tested against the real engine's output. Every state must be right. (The captures were made on
a machine whose dmesg already held kernel OOM lines from the cgroup_oom_kill state: a kill of
an earlier run's ccproxy must not outrank today's cause.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import run_cli
from tests.realengine.diag import CAPTURES, causes_text
from tests.realengine.expected import EXPECTED


def _states() -> list[str]:
    return sorted(p.name for p in CAPTURES.iterdir() if (p / "manifest.json").exists()) if CAPTURES.exists() else []


def test_every_expected_state_is_captured() -> None:
    """The committed captures cover every state of the matrix (and nothing unexpected)."""
    assert sorted(EXPECTED) == _states()


@pytest.mark.parametrize("state", sorted(EXPECTED))
def test_capture_replays_to_the_expected_cause(state: str, tmp_path: Path) -> None:
    """The saved bundle, analysed offline, names the expected top cause and quotes its line."""
    run = run_cli(["analyze", str(CAPTURES / state), "--format", "json"], cwd=tmp_path)
    assert run.returncode == 0, run.describe()
    report = run.json()
    cause, needles, also = EXPECTED[state]
    causes = report.get("causes", [])
    top = causes[0] if causes else {}
    evidence = "\n".join(top.get("evidence", []))
    ok = (top.get("id") == cause and (not needles or any(n in evidence for n in needles))
          and (also is None or any(c.get("id") == also for c in causes)))
    assert ok, f"{state}: expected {cause} quoting one of {needles}; the bot said:\n{causes_text(report)}"
