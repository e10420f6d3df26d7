"""Step ids are spelled once in code (``bot.runbook.steps.StepId``); elsewhere code uses the enum."""

from __future__ import annotations

import ast
from pathlib import Path

from bot.runbook.loader import load_runbook

BOT = Path(__file__).parents[2] / "bot"
ALLOWED_FILES = {BOT / "runbook" / "steps.py"}
ALLOW_MARK = "not a step id"  # a comment on the line: the same word with another meaning


def test_no_step_id_string_literals_in_bot() -> None:
    """No module of `bot/` (the simulator aside) holds a string literal equal to a runbook step
    id, except on a line that says it is not a step id; a renamed step cannot silently drop
    evidence through a stale literal."""
    rb = load_runbook()
    ids = set(rb.reported_ids) | {s.id for s in rb.steps}
    found = []
    for path in sorted(BOT.rglob("*.py")):
        if path in ALLOWED_FILES or "sandbox" in path.relative_to(BOT).parts:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ids:
                if ALLOW_MARK not in lines[node.lineno - 1]:
                    found.append(f"{path.relative_to(BOT.parent)}:{node.lineno}: {node.value!r}")
    assert not found, "use bot.runbook.steps.StepId instead:\n" + "\n".join(found)


def test_the_literal_check_can_fail(tmp_path: Path) -> None:
    """The scan above sees a literal step id (guards against a scan that matches nothing)."""
    tree = ast.parse('ok = f.ok("host_disk")\n')
    assert any(isinstance(n, ast.Constant) and n.value == "host_disk" for n in ast.walk(tree))
