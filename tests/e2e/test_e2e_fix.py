"""`qcc-bot fix`, `qcc-bot demo --fix` and the live progress of `qcc-bot diagnose`, end to end:
the CLI as a subprocess against a real sshd serving the sandbox and the real MariaDB.

The fix path has no Slack: the confirmation is the environment's name typed on stdin, the
approval state and audit rows are the ones Slack uses (`state.db` next to the config).
"""

from __future__ import annotations

import getpass
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pymysql
import pytest

from tests.e2e.harness import E2EHost, leaked, run_cli, run_cli_tty

pytestmark = [pytest.mark.sshd, pytest.mark.mariadb]

ACTOR = f"cli:{getpass.getuser()}"
ALTER = "ALTER TABLE nodes ADD COLUMN health_check_model"


def has_column(host: E2EHost) -> bool:
    """Whether the scenario database's `nodes` table has `health_check_model` now."""
    db = host.db
    conn = pymysql.connect(host=db.host, port=db.port, user=db.user, password=db.password, database=db.database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s "
                        "AND TABLE_NAME='nodes' AND COLUMN_NAME='health_check_model'", (db.database,))
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


def audit(host: E2EHost) -> list[tuple[str, str, str | None]]:
    """``(actor, event, result)`` of every audit row in the host's state database, oldest first."""
    with sqlite3.connect(host.workdir / "state.db") as conn:
        return [tuple(r) for r in conn.execute("SELECT actor, event, result FROM qcc_audit_log ORDER BY id")]


def test_fix_adds_the_column_once_then_says_already_handled(e2e_host: Callable[..., E2EHost]) -> None:
    """List (fresh diagnosis, recorded), run with the typed name (column added, verified), run
    again ("already handled", nothing runs); the audit log holds the diagnosis, the fix and the refusal."""
    host = e2e_host("migration_failed")
    listed = host.cli("fix", "--env", "test")
    assert listed.returncode == 0, listed.describe()
    assert "fresh diagnosis of test" in listed.stdout and "1. add_column" in listed.stdout
    assert ALTER in listed.stdout and not has_column(host)

    first = host.cli("fix", "--env", "test", "add_column", stdin="test\n")
    assert first.returncode == 0, first.describe()
    out = first.stdout
    assert "latest diagnosis of test" in out and ALTER in out
    assert "precondition holds: column" in out and "type the environment name (test)" in out
    assert "fix succeeded" in out and "verification: column" in out and "exists" in out
    assert has_column(host)

    second = host.cli("fix", "--env", "test", "add_column", stdin="test\n")
    assert second.returncode == 0, second.describe()
    assert "already handled: add_column succeeded" in second.stdout
    assert "type the environment name" not in second.stdout

    rows = audit(host)
    events = [(actor, event, result) for actor, event, result in rows]
    assert [e for _, e, _ in events].count("approval_succeeded") == 1
    assert (ACTOR, "diagnosis_finished", "succeeded") in events
    assert (ACTOR, "approval_approved", "approved") in events
    assert (ACTOR, "fix_finished", "succeeded") in events
    assert events[-1] == (ACTOR, "terminal_fix_refused", "already handled")
    assert all(actor in (ACTOR, "bot") for actor, _, _ in events)
    for run in (listed, first, second):
        assert leaked(run.stdout + run.stderr, host.secrets()) == []


def test_wrong_name_runs_nothing(e2e_host: Callable[..., E2EHost]) -> None:
    """Typing anything but the environment's name (or nothing) cancels: no approval, no column."""
    host = e2e_host("migration_failed")
    for typed in ("prod\n", ""):
        run = host.cli("fix", "--env", "test", "add_column", stdin=typed)
        assert run.returncode == 1, run.describe()
        assert "not confirmed: nothing ran" in run.stdout
    assert not has_column(host)
    events = [e for _, e, _ in audit(host)]
    assert "approval_requested" not in events and events.count("terminal_fix_refused") == 2


def test_production_refuses_terminal_fixes_unless_allowed(e2e_host: Callable[..., E2EHost]) -> None:
    """`production: true` refuses `qcc-bot fix` (exit 2, nothing runs) until the environment sets
    `approval.allow_terminal_fixes: true`."""
    host = e2e_host("migration_failed")
    host.write_config(production=True)
    refused = host.cli("fix", "--env", "test", "add_column", stdin="test\n")
    assert refused.returncode == 2, refused.describe()
    assert "production" in refused.stderr and not has_column(host)
    host.write_config(production=True, approval={"allow_terminal_fixes": True})
    allowed = host.cli("fix", "--env", "test", "add_column", stdin="test\n")
    assert allowed.returncode == 0, allowed.describe()
    assert "(production)" in allowed.stdout and has_column(host)


def test_demo_fix_shows_the_whole_loop(tmp_path: Path) -> None:
    """`qcc-bot demo --fix`: diagnose, propose, confirm (typed for you, and said so), fix, verify,
    then the audit rows; nothing is left in the working directory."""
    run = run_cli(["demo", "--fix"], cwd=tmp_path)
    assert run.returncode == 0, run.describe()
    out = run.stdout
    headings = ["1. diagnose", "2. propose", "3. confirm: add_column", "4. fix and verify", "5. diagnose again",
                "6. propose", "7. confirm: restart_proxy", "8. fix and verify"]
    positions = [out.find(h) for h in headings]
    assert -1 not in positions and positions == sorted(positions), positions
    assert "Database migration failed" in out and ALTER in out
    assert "demo: typed for you" in out
    assert "fix succeeded" in out and "verification: column" in out
    assert "approval_succeeded" in out and "terminal_fix_refused" not in out
    # the loop ends on a healthy proxy: the crash before the restart is history, not a failure
    assert "the proxy is healthy: nothing left to fix" in out
    assert out.rstrip().splitlines()[-1].split()[-2:] == ["healthy", "0.85"]
    assert list(tmp_path.iterdir()) == []


def test_diagnose_shows_live_progress_on_a_terminal_only(e2e_host: Callable[..., E2EHost]) -> None:
    """On a terminal the text report is preceded by live per-step progress; `--format json` on a
    terminal and text output to a pipe carry none of it (the JSON parses as is)."""
    host = e2e_host("migration_failed")
    config = ["--config", str(host.config_path)]
    live = run_cli_tty(["diagnose", "--env", "test", *config], cwd=host.workdir)
    assert live.returncode == 0, live.describe()
    assert "running the runbook" in live.stdout and "\x1b[" in live.stdout
    assert "Container status" in live.stdout and "running" in live.stdout and "queued" in live.stdout
    assert "Likely causes" in live.stdout or "Database migration failed" in live.stdout

    as_json = run_cli_tty(["diagnose", "--env", "test", "--format", "json", *config], cwd=host.workdir)
    assert as_json.returncode == 0, as_json.describe()
    assert json.loads(as_json.stdout)["causes"][0]["id"] == "migration_failed"

    piped = host.diagnose(fmt="text")
    assert piped.returncode == 0 and "running the runbook" not in piped.stdout and "\x1b[" not in piped.stdout
    assert "running the runbook" not in piped.stderr
