"""Runbook data: the packaged runbook validates; bad runbooks fail with every problem listed."""

from __future__ import annotations

import pytest

from bot.errors import RunbookError
from bot.runbook.loader import load_runbook, parse_runbook

SEED_CHECKS = {
    "container_status", "proxy_logs", "grep_migration", "grep_health_scheduler", "grep_panic",
    "schema_nodes", "resource_usage", "port_listeners", "port_publishers", "host_memory", "host_disk",
}


def test_packaged_runbook_covers_every_seed_check() -> None:
    """The default runbook has every diagnostic check of the seed plus host memory/disk."""
    rb = load_runbook()
    ids = {s.id for s in rb.steps}
    assert SEED_CHECKS <= ids
    assert len(rb.steps) >= 12
    assert rb.step("schema_nodes").transport == "mysql"
    assert "information_schema.COLUMNS" in (rb.step("schema_nodes").query or "")
    assert "label=com.docker.compose.project=$compose_project" in (rb.step("container_status").script or "")


GOOD_STEP = "  - {id: a_step, title: A, transport: ssh, script: 'echo hi', timeout_s: 5, parser: docker_ps}\n"


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
        ("name: x\nsteps:\n  - {id: s1, title: T, transport: ssh, script: ls, timeout_s: 5, parser: nope}\n",
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
        parse_runbook(text, source="t.yaml")
    assert fragment in str(ei.value) + "\n".join(ei.value.problems)


def test_missing_runbook_file(tmp_path) -> None:
    """A runbook path that does not exist is a RunbookError, not an OSError."""
    with pytest.raises(RunbookError, match="cannot read runbook"):
        load_runbook(tmp_path / "nope.yaml")
