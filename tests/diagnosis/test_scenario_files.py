"""Scenario files: ``extends`` + deep merge (the sandbox's own resolver), validation, old full format.

Proves that every scenario of the suite expands onto its base and validates, that the merge
rules are the documented ones (mappings merge, strings replace, ``null`` deletes, JSON written
as data merges per field), and that a file without ``extends`` still loads as it is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from bot.models import StepStatus
from qcc_sandbox.scenario import ScenarioError

from .scenario_loader import SCENARIO_DIR, ScenarioFile, all_scenarios, build_steps, expand, load_scenario

SCENARIOS = all_scenarios()
BASES = sorted(SCENARIO_DIR.glob("_*.yaml"))


def _write(folder: Path, name: str, data: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


BASE = {
    "description": "base",
    "expected": "healthy",
    "must_quote": "listening",
    "steps": {
        "container_inspect": {"status": "ok", "json_list": {
            "proxy": {"Id": "ff", "State": {"Status": "running", "ExitCode": 0}},
            "mysql": {"Id": "6e", "State": {"Status": "running", "ExitCode": 0}},
        }},
        "proxy_logs": {"status": "ok", "output": "a\nlistening on :8001\n"},
        "schema_nodes": {"status": "ok", "rows": {"id": {"name": "id"}, "health_check_model": {"name": "x"}}},
        "kernel_oom": {"status": "ok", "output": ""},
    },
}


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_scenario_expands_and_validates(path: Path) -> None:
    """Each file resolves its `extends` chain into a valid ScenarioFile with a known step status."""
    data = expand(path)
    model = ScenarioFile.model_validate(data)
    assert model.steps, path
    assert load_scenario(path).steps


def test_bases_are_not_scenarios_and_each_is_used() -> None:
    """`_*.yaml` files are shared bases only: never run as a case, and each one extended by some file."""
    assert BASES, "the suite has shared bases"
    assert not set(BASES) & set(SCENARIOS)
    parents = {yaml.safe_load(p.read_text(encoding="utf-8")).get("extends") for p in [*SCENARIOS, *BASES]}
    assert {b.stem for b in BASES} <= parents


def test_child_holds_only_its_difference(tmp_path: Path) -> None:
    """A field of a JSON object, a whole string, a deleted step and a deleted row merge as documented."""
    _write(tmp_path, "_base", BASE)
    child = _write(tmp_path, "crash", {
        "extends": "_base", "description": "crash", "expected": "panic", "must_quote": "panic:",
        "steps": {
            "container_inspect": {"json_list": {"proxy": {"State": {"Status": "exited", "ExitCode": 2}}}},
            "proxy_logs": {"output": "panic: boom\n"},
            "schema_nodes": {"rows": {"health_check_model": None}},
            "kernel_oom": None,
        },
    })
    steps = {s.id: s for s in load_scenario(child).steps}
    assert list(steps) == ["container_inspect", "proxy_logs", "schema_nodes"]  # the base's order; kernel_oom gone
    inspect = json.loads(steps["container_inspect"].output)
    assert [c["Id"] for c in inspect] == ["ff", "6e"]
    assert inspect[0]["State"] == {"Status": "exited", "ExitCode": 2}
    assert inspect[1]["State"]["Status"] == "running"
    assert steps["container_inspect"].output == json.dumps(inspect, indent=4) + "\n"  # docker inspect's layout
    assert steps["proxy_logs"].output == "panic: boom\n"
    assert json.loads(steps["schema_nodes"].output) == [{"name": "id"}]
    assert load_scenario(child).expected == "panic"


def test_file_without_extends_is_used_as_written(tmp_path: Path) -> None:
    """The old full format (no `extends`) stands alone: nothing is merged in, raw outputs kept verbatim."""
    _write(tmp_path, "_base", BASE)
    full = {"description": "full", "expected": "panic", "must_quote": "panic:",
            "steps": {"proxy_logs": {"status": "ok", "output": "panic: x\n"},
                      "schema_nodes": {"status": "ok", "rows": [{"name": "id"}]}}}
    path = _write(tmp_path, "full", full)
    assert expand(path) == full
    steps = load_scenario(path).steps
    assert [(s.id, s.output) for s in steps] == [("proxy_logs", "panic: x\n"), ("schema_nodes", '[{"name": "id"}]')]


def test_json_lines_print_one_compact_object_a_line() -> None:
    """`json_lines` prints as docker's `--format '{{json .}}'` does: compact, one object a line, ASCII."""
    (step,) = build_steps({"container_status": {"status": "ok", "json_lines": {
        "a": {"Names": "qcc_test_proxy", "Command": "x\u2026"}, "b": {"Names": "qcc_test_mysql"}}}})
    assert step.output == '{"Names":"qcc_test_proxy","Command":"x\\u2026"}\n{"Names":"qcc_test_mysql"}\n'
    assert step.status is StepStatus.OK


def test_a_step_has_one_output(tmp_path: Path) -> None:
    """A child that gives `output` where the base has `json_list` must null the inherited one."""
    _write(tmp_path, "_base", BASE)
    bad = _write(tmp_path, "bad", {"extends": "_base", "steps": {"container_inspect": {"output": "[]\n"}}})
    with pytest.raises(ValidationError, match="one output"):
        expand(bad)
    good = _write(tmp_path, "good", {"extends": "_base",
                                     "steps": {"container_inspect": {"output": "[]\n", "json_list": None}}})
    assert {s.id: s.output for s in load_scenario(good).steps}["container_inspect"] == "[]\n"


def test_unknown_key_missing_base_and_loop_are_errors(tmp_path: Path) -> None:
    """A typo'd key fails validation; a missing base or an `extends` loop fails with the file named."""
    _write(tmp_path, "_base", BASE)
    with pytest.raises(ValidationError, match="outptu"):
        expand(_write(tmp_path, "typo", {"extends": "_base", "steps": {"proxy_logs": {"outptu": "x"}}}))
    with pytest.raises(ScenarioError, match="no such scenario: _nope"):
        expand(_write(tmp_path, "orphan", {"extends": "_nope"}))
    _write(tmp_path, "_a", {"extends": "_b"})
    _write(tmp_path, "_b", {"extends": "_a"})
    with pytest.raises(ScenarioError, match="loops"):
        expand(tmp_path / "_a.yaml")
