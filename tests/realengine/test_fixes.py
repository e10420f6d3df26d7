"""The fixes, for real: approved actions run by ``FixRunner`` over the real sshd and the real
MariaDB, against real containers, and verified the way an on-call engineer would.

A restart counts as done only when the proxy stayed up past the settle window (listening
line since its start, ``/version`` answering); one that dies again is reported failed with
its new fatal line. "fixes verified M/M" in the summary counts fixes whose outcome told the
truth (succeeded and really serving, or failed and really down, quoting why).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.app import lifespan
from bot.config import load_settings
from bot.diagnosis.actions import restart_proxy
from bot.models import Action
from bot.state.models import ApprovalStatus, RunKind, RunStatus
from tests.realengine.diag import PASSWORD_ENV, causes_text, write_config
from tests.realengine.host import MYSQL, PROXY, RealHost, docker
from tests.realengine.outcomes import OUTCOMES
from tests.realengine.test_matrix import _column_missing, _serving

pytestmark = [pytest.mark.docker, pytest.mark.sshd]


class Session:
    """One diagnosis of the real host kept in a state store, and its fix runner."""

    def __init__(self, svc: Any, run: Any, diag_id: str) -> None:
        self.svc, self.run, self.diag_id = svc, run, diag_id

    def action(self, action_id: str) -> Action:
        """The diagnosis's suggested action ``action_id`` (fails the test with the report when absent)."""
        found = [a for a in self.run.diagnosis.actions if a.id == action_id]
        assert found, (f"no {action_id} action offered; offered "
                       f"{[a.id for a in self.run.diagnosis.actions]}\n"
                       f"{causes_text(self.run.diagnosis.model_dump(mode='json'))}")
        return found[0]

    async def execute(self, action: Action) -> Any:
        """Propose, approve and run ``action``; the :class:`bot.fixes.FixOutcome`.

        On a shared machine another session's `docker compose up/build` process can make the
        precondition refuse ("a deploy or build is running"); then wait and ask again (3 times).
        """
        state = self.svc.state
        for _ in range(4):
            proposal = await state.create_proposal(self.diag_id, "test", action)
            approval = await state.request_approval(proposal.id, "UREQ", expiry_s=900, channel="C",
                                                    thread_ts="1.1")
            await state.transition(approval.id, ApprovalStatus.PENDING, ApprovalStatus.APPROVED, actor="UAPP")
            outcome = await self.svc.fixes.execute(approval.id, actor="UAPP")
            if outcome.ran or "deploy or build is running" not in outcome.summary:
                return outcome
            await asyncio.sleep(5)
        return outcome


async def _session(host: RealHost, sshd: Any, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(PASSWORD_ENV, host.db_password)
    settings = load_settings(write_config(host, sshd, workdir))
    return lifespan(settings, with_state=True, state_url=f"sqlite+aiosqlite:///{workdir}/fix-state.db")


async def _diagnosed(svc: Any) -> Session:
    run = await svc.diagnosis.diagnose("test")
    diag = await svc.state.start_run(RunKind.DIAGNOSIS, "test", actor="U")
    await svc.state.finish_run(diag.id, RunStatus.SUCCEEDED, actor="U",
                               diagnosis_json=run.diagnosis.model_dump_json(),
                               bundle_json=run.bundle.model_dump_json())
    return Session(svc, run, diag.id)


def _record(name: str, ok: bool, message: str) -> None:
    OUTCOMES.fixes[name] = ok
    assert ok, message


async def test_add_column_then_restart(real_host: RealHost, engine_sshd: Any, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Error 1054: add the column on the real DB, restart with compose; the proxy stays up."""
    _column_missing(real_host)
    async with await _session(real_host, engine_sshd, tmp_path, monkeypatch) as svc:
        s = await _diagnosed(svc)
        added = await s.execute(s.action("add_column"))
        restart = s.action("restart_proxy")
        restarted = await s.execute(restart)
    columns = [r[0] for r in real_host.sql("SELECT COLUMN_NAME FROM information_schema.COLUMNS "
                                           "WHERE TABLE_SCHEMA='qcc_proxy' AND TABLE_NAME='nodes'")]
    serving = real_host.state(PROXY).get("Running") and real_host.http_get("/version") is not None
    ok = (added.status == ApprovalStatus.SUCCEEDED and "health_check_model" in columns
          and restarted.status == ApprovalStatus.SUCCEEDED and bool(serving)
          and "stayed up" in (restarted.verification.detail if restarted.verification else ""))
    _record("add_column_then_restart", ok,
            f"add: {added.summary}\nrestart ({restart.commands}): {restarted.summary}\n{real_host.describe()}")


async def test_restart_that_dies_again_is_reported_failed(real_host: RealHost, engine_sshd: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Restarting without adding the column: the proxy dies again; the fix fails quoting Error 1054."""
    _column_missing(real_host)
    async with await _session(real_host, engine_sshd, tmp_path, monkeypatch) as svc:
        s = await _diagnosed(svc)
        outcome = await s.execute(s.action("restart_proxy"))
    text = outcome.summary
    ok = outcome.status == ApprovalStatus.FAILED and "Error 1054" in text
    _record("restart_dies_again_reported", ok, f"outcome: {text}\n{real_host.describe()}")


async def test_restart_that_answers_then_panics_is_reported_failed(
        real_host: RealHost, engine_sshd: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy answers /version, then panics 2 s later: "Up less than a second" is not success.

    The diagnosis says `panic` and offers the rollback (a restart is no fix for a panic the push
    brought), so the restart an on-call engineer would try anyway is built here, as the bot builds
    it, with the diagnosis's own context."""
    real_host.write_env(HEALTH_CHECK_PANIC="1", HEALTH_CHECK_FIRST_DELAY="3s")
    _serving(real_host)
    real_host.wait_exited()
    async with await _session(real_host, engine_sshd, tmp_path, monkeypatch) as svc:
        s = await _diagnosed(svc)
        assert s.run.diagnosis.top_cause is not None and s.run.diagnosis.top_cause.id == "panic", \
            causes_text(s.run.diagnosis.model_dump(mode="json"))
        restart = restart_proxy(s.run.bundle.context, "panic", recreate=False, why="try it anyway")
        outcome = await s.execute(restart)
    text = outcome.summary
    ok = (outcome.status == ApprovalStatus.FAILED and "panic:" in text
          and "answered, then failed" in text)
    _record("restart_answers_then_panics_reported", ok, f"outcome: {text}\n{real_host.describe()}")


async def test_restart_while_mysql_down_uses_up_no_build(real_host: RealHost, engine_sshd: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """MySQL stopped and the proxy dead: the offered restart is `up -d --no-build`, which starts MySQL."""
    _serving(real_host)
    docker("stop", "-t", "2", PROXY, MYSQL)
    docker("start", PROXY)
    real_host.wait_exited()
    async with await _session(real_host, engine_sshd, tmp_path, monkeypatch) as svc:
        s = await _diagnosed(svc)
        restart = s.action("restart_proxy")
        outcome = await s.execute(restart)
    ok = (any("up -d --no-build" in c for c in restart.commands) and outcome.status == ApprovalStatus.SUCCEEDED
          and real_host.state(MYSQL).get("Running") and real_host.http_get("/version") is not None)
    _record("restart_mysql_down_up_no_build", bool(ok),
            f"commands: {restart.commands}\noutcome: {outcome.summary}\n{real_host.describe()}")


async def test_rollback_to_pinned_full_sha(real_host: RealHost, engine_sshd: Any, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad push (v1.9.5 turns on the scheduler that panics) rolled back to the pinned full SHA:
    the image is rebuilt by `up -d --build` and /version shows the pinned commit."""
    _serving(real_host)
    good = real_host.head()
    compose = (real_host.checkout / "docker-compose.test.yml").read_text()
    compose = compose.replace('"${HEALTH_CHECK_PANIC:-0}"', '"1"').replace('"${HEALTH_CHECK_FIRST_DELAY:-30s}"',
                                                                         '"1s"')
    bad = real_host.commit("v1.9.5: new health scheduler", {"docker-compose.test.yml": compose, "VERSION": "v1.9.5\n"})
    real_host.up("--build")
    real_host.wait_exited()
    async with await _session(real_host, engine_sshd, tmp_path, monkeypatch) as svc:
        s = await _diagnosed(svc)
        rollback = s.action("rollback")
        outcome = await s.execute(rollback)
    body = (real_host.http_get("/version") or (0, ""))[1]
    ok = (rollback.params.get("commit") == good and outcome.status == ApprovalStatus.SUCCEEDED
          and good in body and bad not in body and "--build" in " ".join(rollback.commands))
    _record("rollback_pinned_full_sha", ok,
            f"rollback: {rollback.commands} {rollback.params}\noutcome: {outcome.summary}\n/version: {body}\n"
            f"{real_host.describe()}")
