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
the file atomically. Times in the state are Unix epoch seconds (float, UTC). Readers load
``<dir>/state.marshal`` instead when it was made from the current ``state.json`` (same inode,
size and mtime; see :func:`save_state_cache`); a write through :func:`mutate` removes it.

Each stand-in is a small launcher script (``bin/docker``) over a module (``bin/_docker.py``):
modules load from cached bytecode (``bin/__pycache__``), a script is compiled at every run.
``$QCC_SANDBOX_CLOCK`` (epoch seconds) pins the simulated clock (:func:`now`).
"""

# ruff: noqa: UP017 - runs under the host's python3, which may predate datetime.UTC (3.11)
from __future__ import annotations

import fcntl
import marshal
import os
import sys
import time

# Start-up cost matters here: a diagnosis runs ~16 stand-ins at once, each a new interpreter.
# So this module and the common paths import nothing beyond builtins, os, time and fcntl
# (json alone, through re and enum, costs ~10 ms of CPU): state is read from a marshal cache,
# JSON is written by :func:`to_json`, and rarer paths import what they need where they need it.

STATE_FILE = "state.json"
STATE_CACHE = "state.marshal"
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


class _Flock:
    """``with _Flock(directory, exclusive):`` holds ``flock`` on ``<dir>/state.lock``."""

    def __init__(self, directory: str, exclusive: bool) -> None:
        self._path = os.path.join(directory, LOCK_FILE)
        self._exclusive = exclusive
        self._fd = -1

    def __enter__(self) -> None:
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX if self._exclusive else fcntl.LOCK_SH)
        except BaseException:
            os.close(self._fd)
            raise

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)  # closing releases the lock


def _stat_key(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def save_state_cache(directory: str, state: dict) -> None:
    """Write ``<dir>/state.marshal``: ``state`` (exactly what ``json.load`` of ``state.json``
    gives) tagged with ``state.json``'s inode, size and mtime, so a reader can trust it only
    for that file. Caller holds a lock; failures are ignored (readers fall back to JSON)."""
    path = os.path.join(directory, STATE_CACHE)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        data = marshal.dumps((_stat_key(os.path.join(directory, STATE_FILE)), state))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _read_json(directory: str) -> dict:
    path = os.path.join(directory, STATE_FILE)
    try:
        key = _stat_key(path)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise Exit(125, f"qcc-sandbox: cannot read {path}: {exc}\n") from None
    try:
        with open(os.path.join(directory, STATE_CACHE), "rb") as fh:
            cached_key, state = marshal.load(fh)  # noqa: S302 - our own file, in a 0700 directory
        if cached_key == key and isinstance(state, dict):
            return state
    except (OSError, EOFError, ValueError, TypeError):
        pass
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            state = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise Exit(125, f"qcc-sandbox: cannot read {path}: {exc}\n") from None
    if not isinstance(state, dict):
        return {}
    save_state_cache(directory, state)
    return state


def read_state(directory: str) -> dict:
    """The current host state (a dict; empty when no scenario was loaded)."""
    with _Flock(directory, exclusive=False):
        return _read_json(directory)


def write_state_unlocked(directory: str, state: dict) -> None:
    """Replace ``state.json`` atomically (caller holds the exclusive lock)."""
    import json

    path = os.path.join(directory, STATE_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=1, sort_keys=True)
    os.chmod(tmp, 0o600)
    try:
        os.unlink(os.path.join(directory, STATE_CACHE))  # the next reader rebuilds it from the JSON
    except FileNotFoundError:
        pass
    os.replace(tmp, path)


def mutate(directory: str, fn):
    """Run ``fn(state)`` under the exclusive lock and save the state; returns fn's result.

    ``fn`` may raise :class:`Exit`; the state is saved first (a failed ``start`` still
    records what happened, like the real daemon).
    """
    with _Flock(directory, exclusive=True):
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
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
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
    line = (to_json(entry) + "\n").encode("utf-8", "surrogateescape")
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
            import base64

            out += base64.b64decode(fault["stdout_b64"])
        write_out(out)
        write_err(fault.get("stderr", "").encode("utf-8"))
        if mode == "hang":
            hang_forever()
        raise Exit(int(fault.get("exit_code", 1)))


def hang_forever() -> None:
    """Block until a signal ends the process (SIGTERM/SIGKILL from ``timeout`` or sshd)."""
    import signal

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


# str.translate tables of JSON string escapes (json.dumps with ensure_ascii=False; Go's too).
_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r"})
_ESCAPES.update({ord("\t"): "\\t", ord("\b"): "\\b", ord("\f"): "\\f"})
_GO_ESCAPES = dict(_ESCAPES)
_GO_ESCAPES.update({ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"})


def to_json(
    obj: object,
    *,
    indent: int | None = None,
    sort_keys: bool = False,
    separators: tuple[str, str] | None = None,
    go: bool = False,
) -> str:
    """``json.dumps(obj, ensure_ascii=False, indent=..., sort_keys=..., separators=...)``,
    byte for byte, without importing json; ``go=True`` also escapes ``<``, ``>`` and ``&`` as
    Go's encoding/json does. Values are JSON types (tuples as lists); anything else (a
    non-string key, another type) is handed to the json module itself."""
    item_sep, key_sep = separators or ((", ", ": ") if indent is None else (",", ": "))
    table = _GO_ESCAPES if go else _ESCAPES

    def enc(o: object, pad: str) -> str:
        if isinstance(o, str):
            return '"' + o.translate(table) + '"'
        if o is None:
            return "null"
        if o is True:
            return "true"
        if o is False:
            return "false"
        if isinstance(o, int):
            return int.__repr__(o)
        if isinstance(o, float):
            if o != o:
                return "NaN"
            if o in (float("inf"), float("-inf")):
                return "Infinity" if o > 0 else "-Infinity"
            return float.__repr__(o)
        inner = "" if indent is None else pad + " " * indent
        sep = item_sep if indent is None else item_sep + "\n" + inner
        if isinstance(o, dict):
            if not o:
                return "{}"
            items = sorted(o.items()) if sort_keys else o.items()
            for k, _ in items:
                if not isinstance(k, str):
                    raise TypeError(k)
            body = sep.join('"' + k.translate(table) + '"' + key_sep + enc(v, inner) for k, v in items)
            return "{" + body + "}" if indent is None else "{\n" + inner + body + "\n" + pad + "}"
        if isinstance(o, (list, tuple)):
            if not o:
                return "[]"
            body = sep.join(enc(v, inner) for v in o)
            return "[" + body + "]" if indent is None else "[\n" + inner + body + "\n" + pad + "]"
        raise TypeError(o)

    try:
        return enc(obj, "")
    except TypeError:
        import json

        text = json.dumps(obj, ensure_ascii=False, indent=indent, sort_keys=sort_keys, separators=separators)
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") if go else text


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
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    sys.exit(code)
