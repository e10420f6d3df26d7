"""`qcc-bot demo` end to end, and no secret in any CLI output of the end-to-end runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from qcc_sandbox import load_scenario
from tests.e2e.harness import RUNS, E2EHost, leaked, run_cli


@pytest.mark.server  # the demo process listens (its SSH host) and uses MariaDB on :3306 when it is there
def test_demo_migration_failed_json(tmp_path: Path) -> None:
    """`qcc-bot demo --scenario migration_failed --format json` prints one report naming migration_failed."""
    run = run_cli(["demo", "--scenario", "migration_failed", "--format", "json"], cwd=tmp_path)
    assert run.returncode == 0, run.describe()
    report = run.json()
    assert report["environment"] == "demo"
    assert report["causes"][0]["id"] == "migration_failed"
    assert len(report["steps"]) >= 12
    assert {s["status"] for s in report["steps"] if s["id"] != "schema_nodes"} == {"ok"}
    assert leaked(run.stdout + run.stderr, load_scenario("migration_failed").secrets()) == []
    assert list(tmp_path.iterdir()) == [], "the demo leaves nothing behind in the working directory"
    checklist = {i["id"]: i["status"] for i in report["checklist"]}
    assert checklist["proxy_running"] == "fail" and checklist["mysql_healthy"] == "ok"
    hyps = report["hypotheses"]
    assert [h["id"] for h in hyps[:5]] == ["migration_failed", "startup_health_check_overload", "panic",
                                           "deploy_health_timeout", "port_conflict"]
    assert hyps[0]["verdict"] == "confirmed" and hyps[0]["line"]
    assert all(h["verdict"] in ("ruled_out", "not_checked") for h in hyps[1:5]), hyps[1:5]


def test_demo_text_shows_checklist_and_hypotheses(tmp_path: Path) -> None:
    """The terminal report of a healthy demo shows every checklist item ✓ and the hypothesis table."""
    run = run_cli(["demo", "--scenario", "healthy"], cwd=tmp_path)
    assert run.returncode == 0, run.describe()
    out = run.stdout
    assert "Health checklist" in out and "Hypotheses" in out and "What changed" in out
    assert "✗" not in out.split("Health checklist", 1)[1].split("Hypotheses", 1)[0]
    assert "1. migration_failed" in out and "ruled out" in out
    # healthy is a verdict, not a likely cause
    assert "Verdict: no cause found" in out and "Likely causes" not in out
    card = out.split("Verdict: no cause found", 1)[1].split("\n", 2)[1]  # the verdict's own card, unnumbered
    assert "healthy — " in card and "1. " not in card


def test_demo_unknown_scenario_is_a_clean_error(tmp_path: Path) -> None:
    """An unknown scenario is a one-line error with exit 2, no traceback."""
    run = run_cli(["demo", "--scenario", "no_such_scenario"], cwd=tmp_path)
    assert run.returncode == 2 and "no such scenario" in run.stderr and "Traceback" not in run.stderr


def test_demo_lists_scenarios(tmp_path: Path) -> None:
    """--list-scenarios names every packaged scenario with its title."""
    run = run_cli(["demo", "--list-scenarios"], cwd=tmp_path)
    assert run.returncode == 0 and "migration_failed" in run.stdout and "port_conflict" in run.stdout


@pytest.mark.sshd
@pytest.mark.mariadb
def test_no_secret_in_any_cli_output(e2e_host: Callable[..., E2EHost], tmp_path: Path) -> None:
    """Across diagnose (text, json, verbose), analyze, check-config and demo: no password, key or token.

    Secrets checked: the MariaDB user's password, the SSH private key material, every fake
    credential the scenarios plant in logs and `docker inspect` (admin password, API keys,
    DSN password), and any run recorded so far in this session.
    """
    host = e2e_host("port_conflict")
    secrets = host.secrets() + load_scenario("migration_failed").secrets()
    runs = [
        host.diagnose(),
        host.diagnose(fmt="text"),
        host.cli("diagnose", "--env", "test", "--format", "text", "-v"),  # debug logging on stderr
        host.diagnose("--save-bundle", str(tmp_path / "b")),
        host.cli("analyze", str(tmp_path / "b"), "--format", "text"),
        host.cli("check-config"),
        run_cli(["demo", "--scenario", "migration_failed"], cwd=tmp_path),
        run_cli(["demo", "--scenario", "startup_health_check_overload", "--format", "json"], cwd=tmp_path),
    ]
    for run in runs:
        assert run.returncode == 0, run.describe()
    for run in RUNS:  # this test's runs and every earlier end-to-end run of the session
        found = leaked(run.stdout + run.stderr, secrets)
        assert found == [], f"{found} leaked by qcc-bot {' '.join(run.args)}"
    json.loads(runs[0].stdout)


def test_advice_only_is_not_called_a_fix(tmp_path: Path) -> None:
    """The overloaded host's report offers advice only (nothing the bot runs): its heading says
    so instead of promising approvals."""
    run = run_cli(["demo", "--scenario", "startup_health_check_overload"], cwd=tmp_path)
    assert run.returncode == 0, run.describe()
    assert "Advice (nothing the bot can run for this cause" in run.stdout
    assert "Suggested fixes (each needs an approval" not in run.stdout
