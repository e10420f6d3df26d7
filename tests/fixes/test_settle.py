"""The settle window of bot.fixes.settle: a restart counts only when the proxy stays up.

A scripted shell answers the probe in turn (status line, listening marker, /version body,
log tail); each test proves one verdict of the real-engine fix tests without a real engine.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import load_settings
from bot.fixes import settle
from bot.models import Action, ActionKind, CommandResult
from bot.preconditions import FixContext
from bot.transports.base import EnvironmentTransports

GOOD = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
VERSION = '{"version":"v1.9.4","git_commit":"%s","build_date":"x"}'


class ScriptedShell:
    """Answers every command with the next probe output (the last one repeats)."""

    def __init__(self, outputs: list[str]) -> None:
        self.outputs = outputs
        self.calls = 0

    async def run(self, command: str, *, timeout_s: float, max_output_bytes: int = 0) -> CommandResult:
        out = self.outputs[min(self.calls, len(self.outputs) - 1)]
        self.calls += 1
        return CommandResult(command=command, exit_status=0, stdout=out)

    async def aclose(self) -> None:
        return None


def probe(status: str, started: str = "2026-12-01T10:00:00Z", listening: bool = True,
          commit: str | None = GOOD, tail: str = "2026/12/01 10:00:00 Claude Code proxy listening on :8001") -> str:
    body = VERSION % commit if commit is not None else ""
    return f"{status}|{started}|0\n{'listening' if listening else 'silent'}\n{body}\n{tail}\n"


def ctx(shell: Any, action_id: str = "restart_proxy", commit: str = "") -> FixContext:
    settings = load_settings(data={"environments": {"test": {
        "ssh": {"host": "127.0.0.1", "user": "root"}, "compose_project": "qcc_test"}}}, env={})
    action = Action(id=action_id, title="t", kind=ActionKind.SSH, commands=["true"],
                    params={"commit": commit} if commit else {})
    return FixContext(env_name="test", env=settings.environment("test"), action=action,
                      transports=EnvironmentTransports("test", shell, None), service=None,  # type: ignore[arg-type]
                      diagnosis=None)


FAST = {"settle_s": 0.05, "timeout_s": 2.0, "poll_s": 0.01}


async def test_stays_up_past_the_window_is_fixed():
    """Running, listening and /version answering through the window: fixed, the build named."""
    check = await settle(ctx(ScriptedShell([probe("running")])), FAST["settle_s"], timeout_s=2.0, poll_s=0.01)
    assert check.fixed and "stayed up" in check.detail and GOOD[:12] in check.detail


async def test_dies_before_answering_quotes_the_fatal_line():
    """Exited right after the restart: not fixed, the new fatal line quoted."""
    fatal = "2026/12/01 10:00:01 Error 1054: Unknown column 'health_check_model' in 'SELECT'"
    check = await settle(ctx(ScriptedShell([probe("exited", listening=False, commit=None, tail=fatal)])),
                         FAST["settle_s"], timeout_s=2.0, poll_s=0.01)
    assert not check.fixed and "Error 1054" in check.detail


async def test_answers_then_panics_within_the_window_fails():
    """Up and answering once, then exited with a panic: 'Up less than a second' is not success."""
    dead = probe("exited", listening=True, commit=None,
                 tail="panic: runtime error: invalid memory address or nil pointer dereference\ngoroutine 7 [running]:")
    check = await settle(ctx(ScriptedShell([probe("running"), dead])), 1.0, timeout_s=2.0, poll_s=0.01)
    assert not check.fixed and "answered, then failed" in check.detail and "panic: runtime error" in check.detail


async def test_restarted_within_the_window_fails():
    """A new StartedAt inside the window (a restart policy looping) is a failure."""
    shell = ScriptedShell([probe("running"), probe("running", started="2026-12-01T10:00:02Z")])
    check = await settle(ctx(shell), 1.0, timeout_s=2.0, poll_s=0.01)
    assert not check.fixed and "it restarted" in check.detail


@pytest.mark.parametrize("commit,fixed", [(GOOD, True), (GOOD[:7], True),
                                          ("9f8e7d6c5b4a39281706f5e4d3c2b1a098765432", False), ("9f8e7d6", False)])
async def test_rollback_needs_the_pinned_commit_in_version(commit, fixed):
    """After a rollback /version must report the pinned commit (qcc_plus may print it short);
    another build never counts."""
    check = await settle(ctx(ScriptedShell([probe("running", commit=commit)]), "rollback", GOOD),
                         FAST["settle_s"], timeout_s=0.3, poll_s=0.01)
    assert check.fixed is fixed
