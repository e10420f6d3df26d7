"""Scenario files: every packaged one validates and converts; bad ones fail with their path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import UserError
from bot.sandbox import SandboxDir, ScenarioError, load_scenario, scenario_from_dict, scenario_names
from bot.sandbox.scenario import CauseId, deep_merge
from bot.sandbox.state import build_state

REQUIRED = {
    "migration_failed",
    "panic",
    "port_conflict",
    "healthy",
    "startup_health_check_overload",
    "mysql_unavailable",
    "deploy_in_progress",
    "migration_failed_seed_naming",
}


def test_required_scenarios_are_packaged() -> None:
    """The issue's scenario list (plus the old seed naming) ships in bot/sandbox/scenarios."""
    assert REQUIRED <= set(scenario_names())


@pytest.mark.parametrize("name", scenario_names())
def test_every_scenario_builds_a_state(name: str, tmp_path: Path) -> None:
    """Each packaged scenario validates, names its expected cause and converts to state.json."""
    sc = load_scenario(name)
    assert sc.name == name
    assert sc.expect.top_cause in set(CauseId)
    state = build_state(sc, checkout=tmp_path, now=1_765_347_600.0)
    json.dumps(state)  # serialisable
    assert state["scenario"] == name
    assert state["git"]["head"] == sc.git.commits[0].sha
    for c in state["containers"]:
        assert len(c["id"]) == 64
        for seg in c["logs"]:
            ats = [ch["at"] for ch in seg["chunks"]]
            assert ats == sorted(ats), "log chunks must be in time order"


def test_seed_naming_uses_compose_default_names(tmp_path: Path) -> None:
    """`container_name: null` yields compose's `<project>-<service>-1` and the seed's binary."""
    state = build_state(load_scenario("migration_failed_seed_naming"), checkout=tmp_path, now=1e9)
    names = {c["name"] for c in state["containers"]}
    assert names == {"qcc_test-proxy-1", "qcc_test-mysql-1"}
    proxy = next(c for c in state["containers"] if c["service"] == "proxy")
    assert proxy["args"] == ["cccli", "proxy"]
    assert state["services"]["proxy"]["template"]["name"] == "qcc_test-proxy-1"


def test_schema_expectation_per_scenario() -> None:
    """migration_failed expects `nodes` without health_check_model, healthy with it."""
    assert load_scenario("migration_failed").database.nodes_has_health_check_model is False
    assert load_scenario("healthy").database.nodes_has_health_check_model is True
    assert load_scenario("mysql_unavailable").database.reachable is False


def test_deep_merge_semantics() -> None:
    """Mappings merge, lists and scalars replace, None deletes a key."""
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"d": 1}}
    out = deep_merge(base, {"a": {"y": [3]}, "b": None, "c": {"e": 2}})
    assert out == {"a": {"x": 1, "y": [3]}, "c": {"d": 1, "e": 2}}
    assert base["b"] == 1  # not mutated


def test_invalid_scenario_reports_each_problem_with_its_path() -> None:
    """Unknown snippet, unknown service and a bad port are all reported at once."""
    with pytest.raises(ScenarioError) as exc:
        scenario_from_dict(
            {
                "name": "bad",
                "containers": {"proxy": {"logs": [{"use": "no_such_snippet"}]}, "x": {"service": "nope"}},
            }
        )
    text = str(exc.value)
    assert "no_such_snippet" in text and "no service 'nope'" in text
    with pytest.raises(ScenarioError) as exc2:
        scenario_from_dict({"name": "bad2", "services": {"proxy": {"ports": ["8001"]}}})
    assert any("services.proxy.ports" in p for p in exc2.value.problems)


def test_unknown_scenario_is_a_user_error() -> None:
    """`--scenario nope` is the user's mistake: a UserError naming the known scenarios."""
    with pytest.raises(UserError, match="no such scenario: nope.*migration_failed"):
        load_scenario("nope")


def test_overlapping_log_chunks_are_rejected(tmp_path: Path) -> None:
    """A chunk that starts before the previous one ends would print logs out of time order."""
    sc = scenario_from_dict(
        {
            "name": "overlap",
            "containers": {
                "proxy": {"logs": [{"text": "a", "repeat": 10, "interval_s": 1.0}, {"at": 2.0, "text": "b"}]}
            },
        }
    )
    with pytest.raises(ScenarioError, match="before the previous chunk ends"):
        build_state(sc, checkout=tmp_path, now=1e9)


def test_extends_loop_is_detected(tmp_path: Path) -> None:
    """A scenario extending itself (directly or not) fails clearly instead of recursing."""
    (tmp_path / "a.yaml").write_text("name: a\nextends: b\n")
    (tmp_path / "b.yaml").write_text("name: b\nextends: a\n")
    with pytest.raises(ScenarioError, match="loops"):
        load_scenario(tmp_path / "a.yaml")


def test_planted_secrets_are_listed() -> None:
    """Scenario.secrets() finds every fake credential (admin password, API keys, DSN password)."""
    secrets = load_scenario("migration_failed").secrets()
    assert any(s.startswith("sk-ant-demo-REDACTME") for s in secrets)
    assert any("dsn-pass" in s for s in secrets)
    assert all("REDACTME" in s for s in secrets)


def test_load_writes_checkout_and_resets_logs(box: SandboxDir) -> None:
    """Loading a scenario creates the checkout (compose file) and empties the command log."""
    box.load("healthy")
    box.run(["free", "-m"])
    assert box.count("free") == 1
    box.load("panic")
    assert box.count("free") == 0
    assert (box.checkout / "docker-compose.test.yml").is_file()
    assert oct(box.state_path.stat().st_mode & 0o777) == "0o600"
