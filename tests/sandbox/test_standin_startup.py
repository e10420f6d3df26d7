"""The stand-ins' cheap start-up: what they import, their JSON writer, the parsed-state cache.

A diagnosis runs ~16 stand-ins at once, so each one's start-up CPU counts (bench/, issue 11).
The common commands must not import json, re, subprocess & co.; the replacements they use
instead (``_sandbox.to_json``, ``state.marshal``, ``_curl.split_url``, ``_git.fmt_commit``)
must give exactly what the stdlib versions give.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pytest

from qcc_sandbox import BIN_DIR, SandboxDir
from qcc_sandbox.sandboxdir import _load_stand_in_modules

# Imported by none of the common commands (each costs milliseconds of start-up CPU).
EXPENSIVE = {"json", "re", "enum", "subprocess", "secrets", "shutil", "copy", "urllib.parse", "contextlib"}


def _bin_module(name: str) -> ModuleType:
    """Import ``bin/<name>.py`` into this process (after ``_sandbox``/``_host``, which it imports)."""
    _load_stand_in_modules()
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BIN_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "command",
    [
        "docker ps -a --no-trunc --format '{{json .}}'",
        "docker stats --no-stream --all --format '{{json .}}'",
        "docker logs --tail 300 --timestamps qcc_test_proxy",
        "docker inspect qcc_test_proxy",
        "free -m",
        "df -P -k /",
        "ps -eo pid,ppid,rss,pcpu,etimes,comm,args --sort=-rss",
        "ss -ltnp",
        "git -C {checkout} log -3 --format=%H%x09%ct%x09%s",
        "curl -s -m 5 http://127.0.0.1:8001/version",
    ],
)
def test_common_commands_import_nothing_expensive(loaded: Callable[[str], SandboxDir], command: str) -> None:
    """``python3 -X importtime`` of each common command lists none of :data:`EXPENSIVE`."""
    box = loaded("healthy")
    argv = shlex.split(command.replace("{checkout}", str(box.checkout)))
    res = subprocess.run(
        ["/usr/bin/python3", "-S", "-X", "importtime", str(BIN_DIR / argv[0]), *argv[1:]],
        env=box.env(),
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout  # it did its work
    imported = {line.split("|")[-1].strip() for line in res.stderr.decode().splitlines() if "|" in line}
    assert "_sandbox" in imported  # the listing is real
    assert not imported & EXPENSIVE, sorted(imported & EXPENSIVE)


_JSON_SAMPLES: list[object] = [
    {"a": [1, -7, 2.5, -0.0, 1e300, 1e-7, True, False, None], "b": {}, "c": [], "d": {"z": 1, "a": {"q": [{}, []]}}},
    {"s": 'ctl \x00\x01\x1f \x7f quote " backslash \\ \n\r\t\b\f <tag> & é 漢 \udc80 \u2028'},
    {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "big": 10**30},
    [[[]], ("tuple", 1), {"k": ("a",)}],
    {1: "int key"},  # not JSON-native: to_json hands it to the json module
    "plain",
    3,
    None,
    [],
    {},
]


@pytest.mark.parametrize("sample", _JSON_SAMPLES, ids=range(len(_JSON_SAMPLES)))
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"sort_keys": True, "separators": (",", ":")},
        {"indent": 4, "sort_keys": True, "separators": (",", ": ")},
        {"indent": 1, "sort_keys": True},
        {"indent": 2},
    ],
)
def test_to_json_is_json_dumps(sample: object, kwargs: dict) -> None:
    """``to_json`` equals ``json.dumps(ensure_ascii=False)``; ``go=True`` also escapes ``<>&``."""
    _load_stand_in_modules()
    to_json = sys.modules["_sandbox"].to_json
    want = json.dumps(sample, ensure_ascii=False, **kwargs)
    assert to_json(sample, **kwargs) == want
    go = want.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    assert to_json(sample, go=True, **kwargs) == go


def test_state_cache_follows_state_json(loaded: Callable[[str], SandboxDir]) -> None:
    """The stand-ins read ``state.marshal`` only while it matches ``state.json``: a state.json
    written behind its back, a stand-in's own change and a damaged cache all show through."""
    box = loaded("healthy")
    cache = box.path / "state.marshal"
    assert cache.is_file()  # SandboxDir.load wrote it with state.json

    def names() -> list[str]:
        return box.run("docker ps -a --format '{{.Names}}'").stdout.decode().split()

    assert names() == ["qcc_test_proxy", "qcc_test_mysql"]

    state = json.loads(box.state_path.read_text())
    state["containers"] = [c for c in state["containers"] if c["name"] == "qcc_test_mysql"]
    box.state_path.write_text(json.dumps(state))  # an unaware writer: same inode, new size/mtime
    assert names() == ["qcc_test_mysql"]

    assert box.run("docker rm -f qcc_test_mysql").returncode == 0
    assert not cache.exists()  # the stand-in's own write dropped it
    assert names() == []
    assert cache.is_file()  # ... and the next reader rebuilt it

    box.load("healthy")
    cache.write_bytes(b"\x00not marshal")
    assert names() == ["qcc_test_proxy", "qcc_test_mysql"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8001/version",
        "http://127.0.0.1:8001",
        "http://LOCALHOST:80/a/b",
        "https://x:",
        "http://h:0/",
        "HTTP://h/",
        "http://[::1]:8001/",
        "http://127.0.0.1:8001/?q=1#f",
        "http://user@h:81/",
        "http://h:99999/",
        "http://h:\u0661\u0662/",
        "http://h/a%20b",
    ],
)
def test_split_url_is_urlsplit(url: str) -> None:
    """curl's URL split gives urlsplit's scheme, hostname, port and path (or its ValueError)."""
    split_url = _bin_module("_curl").split_url
    try:
        parts = urlsplit(url)
        want: tuple = (parts.scheme, parts.hostname or "", parts.port, parts.path)
    except ValueError:
        with pytest.raises(ValueError):
            split_url(url)
        return
    assert split_url(url) == want


@pytest.mark.parametrize(
    "fmt", ["%H%x09%ct%x09%s", "%h %s", "commit %H%nAuthor: %an <%ae>%nDate:   %ci%n", "%%H %q %", "%x0%x09", "%%%"]
)
def test_git_format_expands_like_the_regex(fmt: str) -> None:
    """``fmt_commit`` replaces the tokens exactly as the former ``re.sub`` did."""
    fmt_commit = _bin_module("_git").fmt_commit
    commit = {"sha": "0a8a22f026ceeb035731a8156606bc22b21d136c", "ct": 1765345742, "subject": "feat: a %s b"}
    table = {
        "H": commit["sha"],
        "h": commit["sha"][:7],
        "ct": "1765345742",
        "at": "1765345742",
        "ci": "2025-12-10 05:49:02 +0000",
        "s": commit["subject"],
        "an": "qcc-dev",
        "ae": "dev@example.invalid",
        "x09": "\t",
        "n": "\n",
        "%": "%",
    }
    want = re.sub(r"%(x09|ct|at|ci|an|ae|H|h|s|n|%)", lambda m: table[m.group(1)], fmt)
    assert fmt_commit(commit, fmt) == want


def test_launchers_stay_small() -> None:
    """A script's own code is compiled at every run: each launcher only imports its module."""
    for path in BIN_DIR.iterdir():
        if path.is_file() and not path.name.endswith(".py") and os.access(path, os.X_OK):
            code = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
            assert len(code) < 60, path.name


def test_bytecode_cache_is_git_ignored() -> None:
    """The stand-ins' bytecode lands in bin/__pycache__, which git ignores."""
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run(
        ["git", "-C", str(root), "check-ignore", "-q", str(BIN_DIR / "__pycache__" / "_host.cpython-311.pyc")],
        capture_output=True,
        check=False,
        timeout=30,
    )
    if res.returncode == 128:
        pytest.skip("not a git checkout")
    assert res.returncode == 0
