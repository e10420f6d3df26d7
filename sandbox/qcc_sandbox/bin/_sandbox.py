"""Shared plumbing of the sandbox stand-ins (stdlib only; runs under the host's python3).

Every stand-in (``docker``, ``ss``, ``free``, ...) starts with :func:`main_wrapper`, which

1. finds the sandbox directory from ``$QCC_SANDBOX_DIR`` (exit 125 with a message when unset),
2. appends one JSON line to ``<dir>/commands.log``:
   ``{"time": "2025-12-10T06:14:02.123456Z", "ts": 1765347242.12, "pid": 1234, "ppid": 1200,
   "prog": "docker", "argv": ["docker", "ps", "-a"], "cwd": "/root"}``,
3. applies the scenario's *faults* for this command (hang, fail, delay, raw output),
4. runs the stand-in's own ``main(argv, state)``.

State lives in ``<dir>/state.json`` (written by ``qcc_sandbox.SandboxDir``). Readers take a
shared ``flock`` on ``<dir>/state.lock``; mutating commands (restart, up, rm, git checkout)
use :func:`mutate`, which holds the exclusive lock across read-modify-write and replaces
the file atomically. Times in the state are Unix epoch seconds (float, UTC).
"""

# ruff: noqa: UP017 - runs under the host's python3, which may predate datetime.UTC (3.11)
from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from datetime import datetime, timezone

STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
COMMANDS_LOG = "commands.log"
MARKERS_DIR = "markers"
ZERO_TIME = "0001-01-01T00:00:00Z"


class Exit(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised to end a stand-in with ``code`` after writing ``stderr`` (bytes or str)."""

    def __init__(self, code: int, stderr: str | bytes = "", stdout: str | bytes = "") -> None:
        super().__init__(code)
        self.code = code
        self.stderr = stderr
        self.stdout = stdout


# ---------------------------------------------------------------------------------------
# Sandbox directory, state and command log
# ---------------------------------------------------------------------------------------


def sandbox_dir() -> str:
    """The sandbox directory from ``$QCC_SANDBOX_DIR``. Raises :class:`Exit` (125) if unusable."""
    path = os.environ.get("QCC_SANDBOX_DIR", "")
    if not path or not os.path.isdir(path):
        raise Exit(125, f"qcc-sandbox: QCC_SANDBOX_DIR is not set or not a directory ({path!r})\n")
    return path


@contextlib.contextmanager
def _flock(directory: str, exclusive: bool):
    fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _read_json(directory: str) -> dict:
    path = os.path.join(directory, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            state = json.load(fh)
    except FileNotFoundError:
        state = {}
    except (OSError, ValueError) as exc:
        raise Exit(125, f"qcc-sandbox: cannot read {path}: {exc}\n") from None
    return state if isinstance(state, dict) else {}


def read_state(directory: str) -> dict:
    """The current host state (a dict; empty when no scenario was loaded)."""
    with _flock(directory, exclusive=False):
        return _read_json(directory)


def write_state_unlocked(directory: str, state: dict) -> None:
    """Replace ``state.json`` atomically (caller holds the exclusive lock)."""
    path = os.path.join(directory, STATE_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=1, sort_keys=True)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def mutate(directory: str, fn):
    """Run ``fn(state)`` under the exclusive lock and save the state; returns fn's result.

    ``fn`` may raise :class:`Exit`; the state is saved first (a failed ``start`` still
    records what happened, like the real daemon).
    """
    with _flock(directory, exclusive=True):
        state = _read_json(directory)
        try:
            result = fn(state)
        except Exit:
            write_state_unlocked(directory, state)
            raise
        write_state_unlocked(directory, state)
        return result


def utc_iso(ts: float, digits: int = 6) -> str:
    """``2025-12-10T06:14:02.123456Z`` (``digits`` fractional digits, 0..9)."""
    whole = int(ts)
    frac = ts - whole
    base = datetime.fromtimestamp(whole, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if digits <= 0:
        return base + "Z"
    nanos = min(int(round(frac * 1e9)), 999_999_999)
    return f"{base}.{nanos:09d}"[: len(base) + 1 + digits] + "Z"


def now() -> float:
    """The simulated host's clock in epoch seconds: ``time.time()``, or ``$QCC_SANDBOX_CLOCK``
    when set (a fixed epoch the output regression test pins so outputs compare byte for byte).
    The command and session logs always record the real time."""
    pinned = os.environ.get("QCC_SANDBOX_CLOCK")
    return float(pinned) if pinned else time.time()


def log_invocation(directory: str, prog: str, argv: list[str]) -> None:
    """Append this invocation to ``commands.log`` (one JSON line, written under a lock)."""
    now = time.time()
    entry = {
        "time": utc_iso(now),
        "ts": round(now, 6),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "prog": prog,
        "argv": [prog, *argv],
        "cwd": _safe_cwd(),
    }
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8", "surrogateescape")
    fd = os.open(os.path.join(directory, COMMANDS_LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
    finally:
        os.close(fd)


def _safe_cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return ""


def marker_exists(directory: str, name: str) -> bool:
    """True when ``<dir>/markers/<name>`` exists (tests use markers to say "fixed")."""
    return bool(name) and "/" not in name and os.path.exists(os.path.join(directory, MARKERS_DIR, name))


# ---------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------


def _fault_matches(fault: dict, prog: str, argv: list[str]) -> bool:
    if fault.get("program") != prog:
        return False
    return all(token in argv for token in fault.get("args") or [])


def apply_faults(directory: str, state: dict, prog: str, argv: list[str]) -> None:
    """Apply the first matching fault of ``state["faults"]``.

    A fault is ``{"program": "docker", "args": ["logs"], "mode": "hang|fail|delay",
    "exit_code": 1, "stdout": "", "stderr": "", "stdout_b64": "", "delay_s": 0,
    "times": null}``; ``args`` tokens must all appear in argv; ``times`` limits how often
    it fires (counted in ``state["fault_hits"]``). ``hang`` sleeps until killed, ``fail``
    writes the outputs and exits, ``delay`` sleeps ``delay_s`` and carries on.
    """
    faults = state.get("faults") or []
    for index, fault in enumerate(faults):
        if not _fault_matches(fault, prog, argv):
            continue
        if fault.get("times") is not None:

            def hit(st: dict, index: int = index, limit: int = int(fault["times"])) -> bool:
                hits = st.setdefault("fault_hits", {})
                used = int(hits.get(str(index), 0))
                if used >= limit:
                    return False
                hits[str(index)] = used + 1
                return True

            if not mutate(directory, hit):
                continue
        mode = fault.get("mode", "fail")
        if fault.get("delay_s"):
            time.sleep(float(fault["delay_s"]))
        if mode == "delay":
            return
        out = fault.get("stdout", "").encode("utf-8")
        if fault.get("stdout_b64"):
            out += base64.b64decode(fault["stdout_b64"])
        write_out(out)
        write_err(fault.get("stderr", "").encode("utf-8"))
        if mode == "hang":
            hang_forever()
        raise Exit(int(fault.get("exit_code", 1)))


def hang_forever() -> None:
    """Block until a signal ends the process (SIGTERM/SIGKILL from ``timeout`` or sshd)."""
    while True:
        signal.pause()


# ---------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------


def write_out(data: bytes | str) -> None:
    """Write to stdout (bytes as is) and flush."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def write_err(data: bytes | str) -> None:
    """Write to stderr (bytes as is) and flush."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if data:
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()


def human_duration(seconds: float) -> str:
    """Docker's ``units.HumanDuration``: ``Less than a second``, ``2 minutes``, ``About an hour``."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(round(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds // 3600) // 24 // 365} years"


def main_wrapper(prog: str, main) -> None:
    """Run a stand-in: log the call, apply faults, call ``main(argv, directory, state)``.

    ``main`` returns the exit code (or raises :class:`Exit`). A closed stdout (``| head``)
    ends the process quietly with 141 like a shell's SIGPIPE status.
    """
    argv = sys.argv[1:]
    code = 0
    try:
        directory = sandbox_dir()
        log_invocation(directory, prog, argv)
        state = read_state(directory)
        apply_faults(directory, state, prog, argv)
        code = int(main(argv, directory, state) or 0)
    except Exit as exc:
        try:
            write_out(exc.stdout)
            write_err(exc.stderr)
        except BrokenPipeError:
            pass
        code = exc.code
    except BrokenPipeError:
        code = 141
    except KeyboardInterrupt:
        code = 130
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = code or 141
    # Redirect stdout so interpreter shutdown does not complain about a closed pipe.
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(code)
