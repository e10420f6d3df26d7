"""`qcc-bot diagnose` end to end: a real sshd serving the sandbox stand-ins and the real MariaDB.

Each test starts an OpenSSH server whose `SetEnv` puts sandbox/qcc_sandbox/bin first on PATH, loads
a scenario into the sandbox, creates a MariaDB database shaped as the scenario says, and runs
the CLI as a subprocess (`python -m bot diagnose --env test --format json --config ...`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from bot.bundle import load_bundle
from bot.runbook.loader import load_runbook
from qcc_sandbox import scenario_names
from tests.e2e.harness import STEP_STATUSES, CliRun, E2EHost, leaked

pytestmark = [pytest.mark.sshd, pytest.mark.mariadb]

KNOWN_GAPS: dict[str, str] = {}


def _scenarios() -> list:
    return [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[n])) if n in KNOWN_GAPS else n
        for n in scenario_names()
    ]


def check_report(host: E2EHost, run: CliRun) -> dict:
    """Common assertions: exit 0, one JSON object of the issue's shape, no secret, read-only."""
    assert run.returncode == 0, run.describe()
    report = run.json()
    assert {"environment", "started_at", "duration_s", "steps", "causes", "actions"} <= set(report)
    assert report["environment"] == "test"
    for step in report["steps"]:
        assert {"id", "title", "status", "duration_s", "error"} <= set(step)
        assert step["status"] in STEP_STATUSES
    confidences = [c["confidence"] for c in report["causes"]]
    assert confidences == sorted(confidences, reverse=True) and all(0 <= c <= 1 for c in confidences)
    for cause in report["causes"]:
        assert {"id", "title", "confidence", "evidence", "rule_out"} <= set(cause)
    for action in report["actions"]:
        assert {"id", "title", "commands"} <= set(action)
    assert leaked(run.stdout + run.stderr, host.secrets()) == []
    assert host.mutations() == [], "a diagnosis must not change the host"
    return report


def steps_by_id(report: dict) -> dict[str, dict]:
    return {s["id"]: s for s in report["steps"]}


@pytest.mark.parametrize("scenario", _scenarios())
def test_diagnose_names_the_scenario_cause(e2e_host: Callable[..., E2EHost], scenario: str) -> None:
    """For every packaged scenario, the top cause is the one the scenario describes."""
    host = e2e_host(scenario)
    report = check_report(host, host.diagnose())
    assert report["causes"], "a report always names at least one cause"
    assert report["causes"][0]["id"] == host.scenario.expect.top_cause, report["causes"]
    assert len(host.box.commands()) >= 10  # the stand-ins really answered through sshd


def test_missing_column_ranks_migration_failed_first(e2e_host: Callable[..., E2EHost]) -> None:
    """The seed's main case: Error 1054 in the log plus a `nodes` table lacking the column."""
    host = e2e_host("migration_failed")
    report = check_report(host, host.diagnose())
    top = report["causes"][0]
    assert top["id"] == "migration_failed"
    assert any("health_check_model" in line for line in top["evidence"])
    steps = steps_by_id(report)
    assert len(steps) >= 12 and all(s["status"] == "ok" for s in steps.values()), steps


def test_seed_naming_is_resolved_by_labels(e2e_host: Callable[..., E2EHost]) -> None:
    """With the seed's `qcc_test-proxy-1` names the log steps still find the proxy (labels)."""
    host = e2e_host("migration_failed_seed_naming")
    report = check_report(host, host.diagnose())
    steps = steps_by_id(report)
    assert steps["proxy_logs"]["status"] == "ok" and steps["grep_migration"]["status"] == "ok"
    assert report["causes"][0]["id"] == "migration_failed"
    assert host.box.count("docker", "logs", "qcc_test-proxy-1") >= 1


def test_panic_scenario(e2e_host: Callable[..., E2EHost]) -> None:
    """A nil-pointer panic with goroutine frames and exit 2 is reported as `panic`."""
    host = e2e_host("panic")
    report = check_report(host, host.diagnose())
    assert report["causes"][0]["id"] == "panic"
    assert any("nil pointer" in line for line in report["causes"][0]["evidence"])


def test_port_scenario(e2e_host: Callable[..., E2EHost]) -> None:
    """A Created proxy and another container publishing 8001 is reported as `port_conflict`."""
    host = e2e_host("port_conflict")
    report = check_report(host, host.diagnose())
    assert report["causes"][0]["id"] == "port_conflict"
    assert any("qcc_proxy_debug" in line or "8001" in line for line in report["causes"][0]["evidence"])


def test_unreachable_mariadb_fails_only_the_mysql_step(e2e_host: Callable[..., E2EHost]) -> None:
    """MySQL on a closed port: the schema step is failed/error, every SSH step still reports ok."""
    host = e2e_host("migration_failed", mysql="closed")
    report = check_report(host, host.diagnose())
    steps = steps_by_id(report)
    assert steps["schema_nodes"]["status"] in ("failed", "error")
    assert steps["schema_nodes"]["error"]
    others = {k: v["status"] for k, v in steps.items() if k != "schema_nodes"}
    assert set(others.values()) == {"ok"}, others
    assert report["causes"][0]["id"] == "migration_failed"  # the log alone still says so


def test_max_sessions_one_still_completes(e2e_host: Callable[..., E2EHost]) -> None:
    """Against `MaxSessions 1`, all of the runbook's (>= 12) steps complete; none errors or times out."""
    host = e2e_host("migration_failed", max_sessions=1)
    report = check_report(host, host.diagnose())
    steps = steps_by_id(report)
    assert len(steps) >= 12
    assert all(s["status"] == "ok" for s in steps.values()), steps
    assert report["causes"][0]["id"] == "migration_failed"


def test_column_present_is_not_a_migration_failure(e2e_host: Callable[..., E2EHost]) -> None:
    """The healthy scenario with the column in MariaDB: no migration_failed anywhere in the causes."""
    host = e2e_host("healthy")
    report = check_report(host, host.diagnose())
    assert report["causes"][0]["id"] == "healthy"
    assert "migration_failed" not in {c["id"] for c in report["causes"]}


def test_bundle_replays_offline_with_the_real_schema(e2e_host: Callable[..., E2EHost]) -> None:
    """--save-bundle keeps the raw schema rows (column missing); `analyze DIR` gives the same causes."""
    host = e2e_host("migration_failed")
    bundle_dir = host.workdir / "bundle"
    live = check_report(host, host.diagnose("--save-bundle", str(bundle_dir)))
    bundle = load_bundle(bundle_dir)
    schema = next(s for s in bundle.steps if s.id == "schema_nodes")
    assert "health_check_method" in schema.output and "health_check_model" not in schema.output
    replay = host.cli("analyze", str(bundle_dir), "--format", "json")
    assert replay.returncode == 0, replay.describe()
    assert [c["id"] for c in replay.json()["causes"]] == [c["id"] for c in live["causes"]]
    for path in bundle_dir.rglob("*"):
        if path.is_file():
            assert leaked(path.read_text(errors="replace"), host.secrets()) == [], path


def test_text_report(e2e_host: Callable[..., E2EHost]) -> None:
    """The text format names the top cause and every step, and exits 0."""
    host = e2e_host("panic")
    run = host.diagnose(fmt="text")
    assert run.returncode == 0, run.describe()
    assert "panic" in run.stdout and "container_status" in run.stdout
    assert leaked(run.stdout + run.stderr, host.secrets()) == []


def test_only_rendered_runbook_commands_reach_the_shell(e2e_host: Callable[..., E2EHost]) -> None:
    """sshd's ForceCommand log: every command line the bot sent is a rendered runbook step.

    Shape: ``timeout -k 2 <T> [env name='value' ...] sh -c '<fixed script>'`` — values only
    from configuration, each quoted; one line per SSH step.
    """
    host = e2e_host("migration_failed")
    report = check_report(host, host.diagnose())
    commands = [s["command"] for s in host.box.sessions() if s.get("command")]
    ssh_steps = [s for s in load_runbook().steps if s.transport == "ssh"]
    assert len(report["steps"]) >= 12
    assert len(commands) == len(ssh_steps) <= 8  # one command per remote step, one wave
    proxy_reads = [c for c in commands if "mysqllog()" not in c]  # host_facts reads MySQL's log, not the proxy's
    assert sum('"$docker" logs' in c for c in proxy_reads) == 1  # the proxy log is read once
    assignment = r"[a-z_]+=(?:'[^']*'|[^\s']+)"
    shape = re.compile(rf"^timeout -k 2 \d+ env LC_ALL=C(?: {assignment})* sh -c '")
    assert all(shape.match(c) for c in commands), commands
