"""Ctrl-C during `qcc-bot demo` exits 130 cleanly: one line, no asyncio noise, no temp dir left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.server  # the demo process listens (its SSH host) and uses MariaDB on :3306 when it is there
@pytest.mark.parametrize("delay_s", [0.8, 2.0])
def test_interrupted_demo_is_quiet(tmp_path: Path, delay_s: float) -> None:
    """SIGINT mid-run: exit 130, `qcc-bot: interrupted`, no traceback, sandbox directory removed."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "demo", "--scenario", "healthy_huge_log"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    time.sleep(delay_s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    # The run finished before the signal (exit 0), or the signal landed in the interpreter's own
    # teardown after the report was printed (Python has restored SIGINT's default action there, so
    # the process ends by the signal): nothing of the bot's handling to check.
    printed = "Likely causes" in out or "Verdict:" in out  # the report's causes heading
    if proc.returncode == 0 or (proc.returncode == -signal.SIGINT and printed):
        pytest.skip("demo finished before SIGINT")
    assert proc.returncode == 130, err
    assert "qcc-bot: interrupted" in err
    for noise in ("Traceback", "Event loop is closed", "Exception ignored", "Task was destroyed"):
        assert noise not in err, err
    assert not list(tmp_path.glob("qcc-sandbox-*")), "the sandbox directory was left behind"
