"""Byte-for-byte regression check of the stand-ins' outputs (stdout, stderr, exit code, state).

Each scenario is loaded at a fixed epoch and every command runs with ``$QCC_SANDBOX_CLOCK``
pinned, so the outputs are a pure function of the scenario and the stand-in code. They are
compared with ``tests/sandbox/golden/<scenario>.json`` (recorded from the stand-ins before
their start-up was made cheaper). The session wrapper is covered by its own test
(test_sandbox_faults.py); this one runs the stand-ins directly.

After an *intended* change of a stand-in's output, rewrite the files with
``SANDBOX_UPDATE_GOLDEN=1 pytest tests/sandbox/test_standin_outputs.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from qcc_sandbox import SandboxDir

GOLDEN_DIR = Path(__file__).with_name("golden")
LOADED_AT = 1765347242.0  # 2025-12-10T06:14:02Z
SCENARIOS = [
    "healthy",
    "healthy_huge_log",
    "migration_failed_seed_naming",
    "panic",
    "port_conflict",
    "deploy_in_progress",
    "startup_health_check_overload",
]
PS_SELF = "ps -eo pid,ppid,rss,pcpu,etimes,comm,args"


def _read_only_commands(box: SandboxDir, names: list[str]) -> list[str]:
    """What the bot's checks run (see handlers/), plus the other output shapes of each stand-in."""
    wd = box.checkout
    cmds = [
        "docker ps -a --no-trunc --format '{{json .}}'",
        "docker ps -a --no-trunc --size=false --filter publish=8001 --format '{{json .}}'",
        "docker ps",
        "docker ps -aq",
        "docker ps -a --format 'table {{.Names}}\\t{{.Status}}'",
        "docker stats --no-stream --all --format '{{json .}}'",
        "docker stats --no-stream",
        "docker version --format '{{json .}}'",
        "docker inspect no_such_container",
        "docker logs --tail 5 no_such_container",
        "docker ps --bogus",
        "free -m",
        "free -h",
        "df -P -k /",
        "df -h",
        f"{PS_SELF} --sort=-rss",
        "ps aux",
        "ss -ltnp",
        "ss -ltn",
        f"git -C {wd} log -3 --format='%H%x09%ct%x09%s'",
        f"git -C {wd} log -3",
        f"git -C {wd} rev-parse HEAD",
        f"git -C {wd} status",
        "curl -s -m 5 http://127.0.0.1:8001/version",
        "curl -s -o /dev/null -w '%{http_code}' -m 5 http://127.0.0.1:8001/",
        "curl -s -m 5 http://127.0.0.1:8002/",
        "dmesg --time-format=iso",
        "dmesg -T",
        "journalctl -k --no-pager -o short-iso -n 2000",
        f"cd {wd} && docker compose -p qcc_test -f docker-compose.test.yml ps --format json",
        f"cd {wd} && docker compose -p qcc_test -f docker-compose.test.yml ps -a",
    ]
    for name in names:
        cmds += [
            f"docker inspect {name}",
            f"docker inspect --format '{{{{.State.Status}}}} {{{{.State.ExitCode}}}}' {name}",
            f"docker logs --tail 300 --timestamps {name}",
            f"docker logs --tail 200 --timestamps {name}",
            f"docker logs --since 2m {name}",
            f"docker logs --tail 40 {name}",
        ]
    return cmds


def _mutating_commands(box: SandboxDir, names: list[str]) -> list[str]:
    """Lifecycle commands whose state effects are deterministic (no new container IDs)."""
    cmds = []
    for name in reversed(names):  # proxy (newest) first: stop, start, restart, kill, rm
        cmds += [f"docker stop {name}", f"docker start {name}", f"docker restart {name}"]
    cmds += [f"docker kill {names[0]}", f"docker rm {names[-1]}", "docker rm -f no_such_container"]
    cmds += [f"cd {box.checkout} && docker compose -p qcc_test -f docker-compose.test.yml restart mysql"]
    return cmds + ["docker ps -a --no-trunc --format '{{json .}}'", "ss -ltnp", f"{PS_SELF}"]


def _normalise(text: str, box: SandboxDir) -> str:
    """Hide what differs between runs: the sandbox path, the random endpoint ID of a failed
    port binding and the ``ps`` process's own row."""
    text = text.replace(str(box.path), "<BOX>")
    text = re.sub(r"(on endpoint \S+ \()[0-9a-f]{64}\)", r"\1<ENDPOINT>)", text)
    return re.sub(r"(?m)^.*\bps (-eo|aux)\b.*\n", "", text) if "ps " in text else text


def _comparable(cmd: str, result: dict) -> dict:
    """``ps`` pads its columns to the widest value, and its own row (removed by
    :func:`_normalise`) carries this machine's real pid: its column widths are compared
    collapsed to single spaces, everything else byte for byte."""
    if not cmd.lstrip().startswith("ps "):
        return result
    return {**result, "stdout": "\n".join(" ".join(line.split()) for line in result["stdout"].split("\n"))}


def _run(box: SandboxDir, cmd: str, clock: float) -> dict:
    """Run a shell line with the sandbox env and the clock pinned at ``clock`` (epoch s)."""
    res = subprocess.run(
        ["/bin/sh", "-c", cmd],
        env=dict(box.env(), QCC_SANDBOX_CLOCK=repr(clock)),
        cwd=box.home,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return {
        "rc": res.returncode,
        "stdout": _normalise(res.stdout.decode("utf-8", "surrogateescape"), box),
        "stderr": _normalise(res.stderr.decode("utf-8", "surrogateescape"), box),
    }


def _run_all(box: SandboxDir) -> dict:
    names = [c["name"] for c in box.state().get("containers") or []]
    record: dict = {"read_only": {}, "mutating": []}
    for cmd in _read_only_commands(box, names):
        record["read_only"][_normalise(cmd, box)] = _run(box, cmd, LOADED_AT + 95.25)
    for k, cmd in enumerate(_mutating_commands(box, names) if names else []):
        record["mutating"].append([_normalise(cmd, box), _run(box, cmd, LOADED_AT + 300 + 7 * k)])
    state = box.state()
    record["state_after"] = json.loads(_normalise(json.dumps(state, sort_keys=True), box))
    return record


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_stand_in_outputs_match_the_recorded_ones(tmp_path: Path, scenario: str) -> None:
    """Every command's stdout, stderr and exit code, and the state after the lifecycle commands,
    equal the recorded ones byte for byte."""
    box = SandboxDir(tmp_path / "sbx")
    box.load(scenario, now=LOADED_AT)
    got = _run_all(box)
    golden = GOLDEN_DIR / f"{scenario}.json"
    if os.environ.get("SANDBOX_UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        golden.write_text(json.dumps(got, indent=1, sort_keys=True, ensure_ascii=True) + "\n")
    want = json.loads(golden.read_text())
    assert sorted(got["read_only"]) == sorted(want["read_only"])
    for cmd, result in want["read_only"].items():
        assert _comparable(cmd, got["read_only"][cmd]) == _comparable(cmd, result), cmd
    assert [[c, _comparable(c, r)] for c, r in got["mutating"]] == [[c, _comparable(c, r)] for c, r in want["mutating"]]
    assert got["state_after"] == want["state_after"]


def test_the_check_sees_a_changed_output(tmp_path: Path) -> None:
    """The comparison is not vacuous: a different clock changes recorded outputs."""
    box = SandboxDir(tmp_path / "sbx")
    box.load("healthy", now=LOADED_AT)
    want = json.loads((GOLDEN_DIR / "healthy.json").read_text())["read_only"]
    got = _run(box, "docker ps -a --no-trunc --format '{{json .}}'", LOADED_AT + 4000)
    assert got["rc"] == 0
    assert got["stdout"] != want["docker ps -a --no-trunc --format '{{json .}}'"]["stdout"]

