"""The layering holds: nothing in ``bot/`` imports the Slack layer (``handlers``, ``slack_*``).

Like httpx's test of its public surface, this reads the source with ``ast`` (imports inside
functions count too), so a lazy ``from handlers.server import serve`` fails it as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[2] / "bot"
FORBIDDEN = ("handlers", "slack_bolt", "slack_sdk", "slack")


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import in ``tree`` (relative ones stay inside bot/)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value))
    return out


def forbidden(module: str) -> bool:
    top = module.split(".")[0]
    return top in FORBIDDEN or top.startswith("slack_")


def test_bot_never_imports_the_slack_layer() -> None:
    """Every ``bot/**/*.py`` (the sandbox included) imports neither ``handlers`` nor ``slack_*``."""
    files = sorted(BOT.rglob("*.py"))
    assert len(files) > 30, "the walk must see the package"
    offenders = [f"{path.relative_to(BOT.parent)}:{line}: {module}"
                 for path in files
                 for line, module in imported_modules(ast.parse(path.read_text(), str(path)))
                 if forbidden(module)]
    assert offenders == []


@pytest.mark.parametrize("source, bad", [
    ("from handlers.server import serve", True),
    ("def f():\n    import slack_sdk.web\n", True),
    ("import importlib\nimportlib.import_module('handlers.blocks')", True),
    ("from bot.models import Diagnosis", False),
    ("from . import handlers", False),  # relative: a module inside bot/
])
def test_the_guard_sees_each_kind_of_import(source: str, bad: bool) -> None:
    """The checker itself can fail: top-level, lazy and importlib imports of the Slack layer are seen."""
    assert any(forbidden(m) for _, m in imported_modules(ast.parse(source))) is bad


def test_services_are_typed() -> None:
    """The composition root hands out concrete services: no ``Any`` and nothing optional in ``Services``."""
    import typing

    from bot.app import Services

    hints = typing.get_type_hints(Services)
    assert {"state", "fixes", "incidents", "diagnosis", "metrics"} <= set(hints)
    for name, hint in hints.items():
        assert hint is not typing.Any, name
        assert type(None) not in typing.get_args(hint), f"{name} is optional"
