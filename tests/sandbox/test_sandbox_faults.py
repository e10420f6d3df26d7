"""Command log, faults (hang, fail, delay, once), non-UTF-8 output, huge logs, bad environments."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable

import pytest

from qcc_sandbox import BIN_DIR, SandboxDir
from qcc_sandbox.scenario import Fault

DAEMON_DOWN = (
    "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
)


def test_command_log_records_exact_argv(loaded: Callable[[str], SandboxDir]) -> None:
    """Each invocation is one JSON line with the exact argv (hostile text stays one argument)."""
    box = loaded("healthy")
    hostile = "$(touch /tmp/pwned); `id`; rm -rf / #\nnext"
    box.run(["docker", "logs", hostile])
    box.run(["free", "-m"])
    records = box.commands()
    assert [r.prog for r in records] == ["docker", "free"]
    assert records[0].argv == ["docker", "logs", hostile]
    assert records[0].pid > 0 and records[0].ts > 0 and records[0].time.endswith("Z")
    assert box.count("docker", "logs") == 1 and box.count("docker", "ps") == 0


def test_hang_fault_blocks_until_killed(loaded: Callable[[str], SandboxDir]) -> None:
    """A hanging docker is ended by `timeout` (exit 124), like a wedged daemon."""
    box = loaded("healthy")
    box.add_fault(Fault(program="docker", args=["stats"], mode="hang"))
    t0 = time.monotonic()
    res = box.run("timeout -k 1 1 docker stats --no-stream", timeout_s=20)
    assert res.returncode == 124 and time.monotonic() - t0 < 5
    assert box.run(["docker", "ps"]).returncode == 0  # other subcommands unaffected


def test_fail_fault_and_times(loaded: Callable[[str], SandboxDir]) -> None:
    """A fail fault prints the daemon error with exit 1; `times: 1` fires only once."""
    box = loaded("healthy")
    box.add_fault(
        {"program": "docker", "args": ["ps"], "mode": "fail", "stderr": DAEMON_DOWN + "\n", "times": 1}
    )
    first = box.run(["docker", "ps"])
    assert first.returncode == 1 and first.stderr.decode().strip() == DAEMON_DOWN
    assert box.run(["docker", "ps"]).returncode == 0
    box.clear_faults()
    assert box.state()["faults"] == []


def test_daemon_down_scenario(loaded: Callable[[str], SandboxDir]) -> None:
    """docker_daemon_down: every docker command fails with the daemon error; other tools work."""
    box = loaded("docker_daemon_down")
    for argv in (["docker", "ps", "-a"], ["docker", "logs", "qcc_test_proxy"], ["docker", "compose", "ps"]):
        res = box.run(argv)
        assert res.returncode == 1 and DAEMON_DOWN.encode() in res.stderr
    assert box.run(["free", "-m"]).returncode == 0


def test_delay_fault(loaded: Callable[[str], SandboxDir]) -> None:
    """A delay fault slows a command down and then lets it answer normally."""
    box = loaded("healthy")
    box.add_fault(Fault(program="free", mode="delay", delay_s=0.5))
    t0 = time.monotonic()
    res = box.run(["free", "-m"])
    assert res.returncode == 0 and b"Mem:" in res.stdout and time.monotonic() - t0 >= 0.5


def test_raw_bytes_fault_and_latin1_log(box: SandboxDir) -> None:
    """Non-UTF-8 bytes reach stdout untouched, from a fault and from a latin-1 log chunk."""
    box.load("healthy")
    box.add_fault(Fault(program="ss", stdout_b64="/0xhdGluMQo=", exit_code=0))  # b"\xffLatin1\n"
    assert box.run(["ss", "-ltn"]).stdout == b"\xff\x4c\x61\x74\x69\x6e\x31\n"
    box.load("healthy_huge_log")
    tail = box.run("docker logs --tail 40 qcc_test_proxy 2>&1").stdout
    assert b"GET /admin/caf\xe9/\xff\xfe 404" in tail


@pytest.mark.slow  # streams a 50 MB log through the stand-in
def test_huge_log_is_lazy_and_big(loaded: Callable[[str], SandboxDir]) -> None:
    """healthy_huge_log: --tail is instant; the whole log is over 50 MB, streamed."""
    box = loaded("healthy_huge_log")
    t0 = time.monotonic()
    tail = box.run("docker logs --tail 5 --timestamps qcc_test_proxy 2>&1").stdout.splitlines()
    assert len(tail) == 5 and time.monotonic() - t0 < 3
    size = int(box.run("docker logs qcc_test_proxy 2>&1 | wc -c", timeout_s=120).stdout)
    assert size > 50_000_000


def test_closed_pipe_is_quiet(loaded: Callable[[str], SandboxDir]) -> None:
    """`docker logs ... | head -1` ends without a Python traceback on stderr."""
    res = loaded("healthy_huge_log").run(
        "docker logs qcc_test_proxy 2>/dev/null | head -1; "
        "docker logs qcc_test_proxy 2>&1 >/dev/null | head -1 >/dev/null"
    )
    assert res.returncode == 0 and b"Traceback" not in res.stderr


def test_missing_sandbox_dir_is_a_clear_error() -> None:
    """Without $QCC_SANDBOX_DIR a stand-in exits 125 with a message (no traceback)."""
    env = {"PATH": f"{BIN_DIR}:/usr/bin:/bin"}
    res = subprocess.run(["docker", "ps"], env=env, capture_output=True, check=False, timeout=30)
    assert res.returncode == 125 and b"QCC_SANDBOX_DIR is not set" in res.stderr


@pytest.mark.parametrize(
    "prog", ["docker", "ss", "free", "df", "ps", "dmesg", "journalctl", "curl", "git", "qcc-sandbox-session"]
)
def test_stand_ins_are_executable_stdlib_scripts(prog: str) -> None:
    """Every stand-in is an executable `#!/usr/bin/env python3` script (the host has no pyyaml)."""
    path = BIN_DIR / prog
    assert os.access(path, os.X_OK)
    assert path.read_text().startswith("#!/usr/bin/env python3\n")
    res = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", f"import ast; ast.parse(open({str(path)!r}).read())"],
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert res.returncode == 0


def test_stand_ins_run_under_the_host_python_without_third_party_modules(
    loaded: Callable[[str], SandboxDir],
) -> None:
    """Run with /usr/bin/python3 -I (no site-packages): the stand-ins need only the stdlib."""
    box = loaded("healthy")
    res = subprocess.run(
        ["/usr/bin/python3", "-I", str(BIN_DIR / "docker"), "ps", "-a"],
        env=box.env(),
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert res.returncode == 0 and b"qcc_test_proxy" in res.stdout


def test_session_wrapper_logs_and_execs(loaded: Callable[[str], SandboxDir]) -> None:
    """qcc-sandbox-session (sshd ForceCommand) records the command line, then runs it via sh."""
    box = loaded("healthy")
    env = dict(box.env(), SSH_ORIGINAL_COMMAND="echo hi; exit 3", SSH_CLIENT="127.0.0.1 5000 22")
    res = subprocess.run(
        [str(BIN_DIR / "qcc-sandbox-session")], env=env, capture_output=True, check=False, timeout=30
    )
    assert res.returncode == 3 and res.stdout == b"hi\n"
    assert box.sessions()[-1]["command"] == "echo hi; exit 3"
