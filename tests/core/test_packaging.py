"""The product wheel holds bot/ and handlers/ only; bot/ loads the host simulator only on demand.

The simulator (``sandbox/qcc_sandbox``: docker stand-ins, scenarios, SSH server) is a package
of its own, installed for the demo and the tests; it must never ship in the product.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_SKIP = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache",
                               ".mypy_cache", ".ruff_cache")


@pytest.mark.slow
def test_wheel_has_no_simulator_file(tmp_path: Path) -> None:
    """`pip wheel --no-deps .` of a copy of the checkout (sandbox/ included) has no simulator file."""
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=_SKIP)
    assert (src / "sandbox" / "qcc_sandbox" / "bin" / "docker").is_file()  # the copy holds the simulator
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("qcc_chatops-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "bot/cli.py" in names, names[:20]
    assert any(n.startswith("bot/runbooks/") and n.endswith(".yaml") for n in names), "the runbook ships"
    leaked = [n for n in names if "sandbox" in n or n.startswith(("tests/", "bench/"))]
    assert not leaked, leaked
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"bot", "handlers"}, tops


def _module_level_imports(tree: ast.Module) -> list[str]:
    """Module names imported outside any function body (also inside module-level if/try)."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                found.extend(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.append(child.module)
            visit(child)

    visit(tree)
    return found


def test_bot_never_imports_the_simulator_at_module_level() -> None:
    """No module of bot/ or handlers/ imports qcc_sandbox when loaded (only bot.cli's demo, lazily)."""
    offenders = []
    for path in sorted([*(REPO / "bot").rglob("*.py"), *(REPO / "handlers").rglob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders += [f"{path.relative_to(REPO)}: {m}" for m in _module_level_imports(tree)
                      if m.split(".")[0] == "qcc_sandbox"]
    assert not offenders, offenders


def test_the_scanner_sees_a_module_level_import() -> None:
    """The guard above can fail: a top-level (or if-guarded) import is found, a function-level one is not."""
    tree = ast.parse("import os\nif True:\n    from qcc_sandbox import x\ndef f():\n    import qcc_sandbox.demo\n")
    assert _module_level_imports(tree) == ["os", "qcc_sandbox"]


def test_loading_the_cli_does_not_load_the_simulator() -> None:
    """`import bot.cli, bot.app` in a fresh interpreter leaves qcc_sandbox out of sys.modules."""
    code = "import sys, bot.cli, bot.app; print('qcc_sandbox' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_demo_without_the_simulator_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """With qcc_sandbox not importable, `qcc-bot demo` exits 2 with one line naming the install command."""
    import io

    from bot.cli import run

    monkeypatch.setitem(sys.modules, "qcc_sandbox", None)  # makes `import qcc_sandbox...` fail
    monkeypatch.setitem(sys.modules, "qcc_sandbox.demo", None)
    out, err = io.StringIO(), io.StringIO()
    assert run(["demo", "--list-scenarios"], out=out, err=err) == 2
    assert out.getvalue() == ""
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and "pip install -e ./sandbox" in lines[0], lines
