"""Runbook data: the packaged runbook validates; bad runbooks fail with every problem listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import RunbookError
from bot.runbook.loader import DEFAULT_RUNBOOK, fits, load_runbook, parse_runbook
from bot.runbook.steps import StepId

FIXTURES = Path(__file__).parent / "fixtures"
PACKAGED = (Path(__file__).parents[2] / "bot" / "runbooks" / DEFAULT_RUNBOOK).read_text(encoding="utf-8")

SEED_CHECKS = {
    "container_status", "proxy_logs", "grep_migration", "grep_health_scheduler", "grep_panic",
    "schema_nodes", "resource_usage", "port_listeners", "port_publishers", "host_memory", "host_disk",
}


def test_packaged_runbook_covers_every_seed_check() -> None:
    """The default runbook has every diagnostic check of the seed plus host memory/disk."""
    rb = load_runbook()
    ids = set(rb.reported_ids)
    assert SEED_CHECKS <= ids
    assert len(ids) >= 12
    assert rb.step("schema_nodes").transport == "mysql"
    assert "information_schema.COLUMNS" in (rb.step("schema_nodes").query or "")
    assert "label=com.docker.compose.project=$compose_project" in (rb.step("container_status").script or "")


GOOD_STEP = ("  - {id: a_step, title: A, transport: ssh, script: 'echo hi', timeout_s: 5, parser: docker_ps,"
             " fact: containers}\n")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: x\nsteps: []\n", "steps: Tuple should have at least 1 item"),
        ("name: x\nsteps:\n" + GOOD_STEP + GOOD_STEP, "duplicate step id 'a_step'"),
        ("name: x\nsteps:\n  - {id: s1, title: T, transport: ssh, timeout_s: 5, parser: docker_ps}\n",
         "an ssh step needs `script`"),
        ("name: x\nsteps:\n  - {id: s1, title: T, transport: mysql, script: ls, timeout_s: 5, parser: docker_ps}\n",
         "a mysql step needs `query`"),
        ("name: x\nsteps:\n  - {id: s1, title: T, transport: ssh, script: 'echo $evil', timeout_s: 5,"
         " parser: docker_ps}\n", "unknown variables: evil"),
        ("name: x\nsteps:\n  - {id: s1, title: T, transport: ssh, script: ls, timeout_s: 0, parser: docker_ps}\n",
         "steps.0.timeout_s"),
        ("name: x\nsteps:\n  - {id: s1, title: T, transport: ssh, script: ls, timeout_s: 5, parser: nope,"
         " fact: containers}\n",
         "unknown parser 'nope'"),
        ("name: x\nsteps:\n  - {id: S!, title: T, transport: ssh, script: ls, timeout_s: 5, parser: docker_ps,"
         " extra: 1}\n", "steps.0.extra"),
        ("[unclosed", "not valid YAML"),
        ("- 1\n", "top level must be a mapping"),
    ],
)
def test_bad_runbooks_rejected(text: str, fragment: str) -> None:
    """Each malformed runbook is refused at load with a message naming the problem and path."""
    with pytest.raises(RunbookError) as ei:
        parse_runbook(text, source="t.yaml", step_ids=None)
    assert fragment in str(ei.value) + "\n".join(ei.value.problems)


def test_missing_runbook_file(tmp_path) -> None:
    """A runbook path that does not exist is a RunbookError, not an OSError."""
    with pytest.raises(RunbookError, match="cannot read runbook"):
        load_runbook(tmp_path / "nope.yaml")


def test_every_step_id_the_code_names_is_in_the_file() -> None:
    """Each StepId value is a step or part id of the packaged runbook (checked at load)."""
    assert {m.value for m in StepId} <= set(load_runbook().reported_ids) | {s.id for s in load_runbook().steps}


def test_renaming_a_step_id_fails_at_load() -> None:
    """Renaming `host_disk` in the YAML fails at load, naming the id and the StepId member."""
    text = PACKAGED.replace("- id: host_disk\n", "- id: host_disks\n")
    assert text != PACKAGED
    with pytest.raises(RunbookError) as ei:
        parse_runbook(text, source="renamed.yaml")
    assert any("'host_disk'" in p and "StepId.HOST_DISK" in p for p in ei.value.problems), ei.value.problems


def test_pointing_a_step_at_a_wrong_typed_parser_fails_at_load() -> None:
    """`host_disk` read by `free` (a Memory into `disks`) fails at load, in the packaged file and in
    a fixture, with the parser, field and both types named."""
    text = PACKAGED.replace("        parser: df\n", "        parser: free\n")
    assert text != PACKAGED
    for source, body, ids in (("packaged", text, StepId), ("fixture", (FIXTURES / "bad_wrong_parser_type.yaml")
                                                           .read_text(), None)):
        with pytest.raises(RunbookError) as ei:
            parse_runbook(body, source=source, step_ids=ids)
        (problem,) = ei.value.problems
        assert "parser 'free' returns Memory | None" in problem and "Facts.disks" in problem, problem


def test_unknown_fact_field_fails_at_load() -> None:
    """A `fact:` that is not a Facts field is refused."""
    with pytest.raises(RunbookError) as ei:
        parse_runbook((FIXTURES / "bad_unknown_fact.yaml").read_text(), step_ids=None)
    assert ei.value.problems == ["steps.0.fact: Facts has no field 'disk'"]


def test_good_minimal_fixture_loads_and_the_type_check_accepts_fitting_types() -> None:
    """A small runbook with fitting parsers loads; `fits` takes T for `T | None` and `dict[str, T]`."""
    rb = parse_runbook((FIXTURES / "good_minimal.yaml").read_text(), step_ids=None)
    assert rb.reported_ids == ["container_status", "host_memory"]
    assert fits(int, int | None) and fits(list[int], dict[str, list[int]]) and not fits(str, list[str] | None)
