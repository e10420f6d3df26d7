"""Every Bolt listener is thin: it awaits nothing but ``ack`` (the work is spawned).

The app runs with ``process_before_response=True`` (handlers/server.py): Bolt sends the HTTP 200
when the listener *returns*, so a listener that awaited anything else (a state read, a Slack
call) would hold Slack's 3-second ack window - this test fails on such a listener.
"""

from __future__ import annotations

import ast
from pathlib import Path

HANDLERS = Path(__file__).resolve().parents[2] / "handlers"
DECORATORS = {"command", "action", "view", "shortcut", "event", "options", "message"}


def _listeners() -> list[tuple[str, ast.AsyncFunctionDef]]:
    found = []
    for path in sorted(HANDLERS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.AsyncFunctionDef):
                continue
            for dec in node.decorator_list:
                func = dec.func if isinstance(dec, ast.Call) else dec
                if isinstance(func, ast.Attribute) and func.attr in DECORATORS:
                    found.append((f"{path.name}:{node.name}", node))
    return found


def _awaited_names(fn: ast.AsyncFunctionDef) -> list[str]:
    names = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Await):
            call = node.value
            target = call.func if isinstance(call, ast.Call) else call
            names.append(ast.unparse(target))
    return names


def test_listeners_await_only_ack() -> None:
    listeners = _listeners()
    assert len(listeners) >= 4, [name for name, _ in listeners]  # /qcc and the three buttons
    offenders = {name: [n for n in _awaited_names(fn) if n != "ack"] for name, fn in listeners}
    assert not {k: v for k, v in offenders.items() if v}, offenders

