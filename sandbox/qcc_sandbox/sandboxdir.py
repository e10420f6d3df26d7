"""``SandboxDir``: one simulated host's directory — its state, command log and checkout.

Layout of a sandbox directory (``$QCC_SANDBOX_DIR`` of the stand-ins)::

    state.json      the host's current state (see sandbox/qcc_sandbox/bin/_host.py), mode 0600
    state.marshal   state.json parsed (marshal), tagged with its inode/size/mtime: the stand-ins
                    read it instead of importing json (written with state.json here; a
                    stand-in that changes the state removes it, the next reader rebuilds it)
    state.lock      flock target guarding read-modify-write of state.json
    commands.log    one JSON line per stand-in invocation: {"time", "ts", "pid", "ppid",
                    "prog", "argv", "cwd"}
    sessions.log    one JSON line per SSH exec request: {"time", "ts", "command", ...}
                    (written by SandboxHost and by the qcc-sandbox-session ForceCommand)
    markers/        marker files that satisfy scenario requirements ("fixed")
    checkout/       plays /opt/qcc_plus: the compose file and scripts/deploy-server.sh
    home/           the login directory of SandboxHost sessions

Used by ``qcc-bot demo`` (through :class:`qcc_sandbox.host.SandboxHost`) and by the tests
(which point a real sshd at it with ``SetEnv PATH=<bin>:/usr/bin:/bin QCC_SANDBOX_DIR=<dir>``).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from qcc_sandbox.database import MySQLTarget
from qcc_sandbox.scenario import Fault, Scenario, load_scenario
from qcc_sandbox.state import build_state

BIN_DIR = Path(__file__).with_name("bin")
SANDBOX_PATH = f"{BIN_DIR}:/usr/bin:/bin"
T = TypeVar("T")

_COMPOSE_FILE_TEXT = """\
# Sandbox stand-in of qcc_plus's {file}: the services below are simulated by
# sandbox/qcc_sandbox/bin/docker from state.json; this file only has to exist (compose -f checks it).
services:
  mysql:
    image: mysql:8.0
    container_name: {mysql}
    ports: ["3308:3306"]
  proxy:
    build: .
    container_name: {proxy}
    depends_on: [mysql]
    ports: ["8001:8001"]
"""
_DEPLOY_SCRIPT = """\
#!/bin/sh
# Sandbox placeholder for scripts/deploy-server.sh: the real one syncs git, removes both
# containers and rebuilds. Not simulated: it only says so.
echo "deploy-server.sh is not simulated in the sandbox" >&2
exit 1
"""


@dataclass(frozen=True)
class CommandRecord:
    """One stand-in invocation from ``commands.log`` (``ts`` is epoch seconds)."""

    time: str
    ts: float
    pid: int
    ppid: int
    prog: str
    argv: list[str]
    cwd: str

    def has(self, *args: str) -> bool:
        """True when every token of ``args`` appears in this command's arguments."""
        return all(a in self.argv[1:] for a in args)


def _load_stand_in_modules() -> ModuleType:
    """Import ``bin/_host.py`` (and ``_sandbox``) so the harness shares the stand-ins' logic."""
    if "_host" in sys.modules and getattr(sys.modules["_host"], "__file__", "").startswith(str(BIN_DIR)):
        return sys.modules["_host"]
    # Their bytecode goes to bin/__pycache__ (git-ignored), as the stand-ins' own imports do.
    for name in ("_sandbox", "_host"):
        spec = importlib.util.spec_from_file_location(name, BIN_DIR / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules["_host"]


def _write_state(path: Path, state_text: str) -> None:
    """Replace ``<dir>/state.json`` with ``state_text`` and refresh the stand-ins' parsed copy
    (``state.marshal``, see ``bin/_sandbox.py``) so they need not parse JSON. Caller holds the
    exclusive lock."""
    state_path = path / "state.json"
    tmp = state_path.with_suffix(".json.tmp")
    tmp.write_text(state_text)
    tmp.chmod(0o600)
    os.replace(tmp, state_path)
    _load_stand_in_modules()
    sys.modules["_sandbox"].save_state_cache(str(path), json.loads(state_text))


class SandboxDir:
    """A sandbox directory (created if missing). Not thread-safe across processes except
    through the same ``flock`` protocol the stand-ins use."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        self.markers_dir.mkdir(exist_ok=True)
        self.home.mkdir(exist_ok=True)
        self.scenario: Scenario | None = None

    @classmethod
    def create(
        cls, parent: str | os.PathLike[str] | None = None, *, prefix: str = "qcc-sandbox-"
    ) -> SandboxDir:
        """A new empty sandbox in a fresh temporary directory (under ``parent`` if given)."""
        return cls(tempfile.mkdtemp(prefix=prefix, dir=parent))

    # ------------------------------------------------------------------ paths
    @property
    def state_path(self) -> Path:
        """``state.json``."""
        return self.path / "state.json"

    @property
    def commands_log(self) -> Path:
        """``commands.log``."""
        return self.path / "commands.log"

    @property
    def sessions_log(self) -> Path:
        """``sessions.log``."""
        return self.path / "sessions.log"

    @property
    def markers_dir(self) -> Path:
        """``markers/``."""
        return self.path / "markers"

    @property
    def checkout(self) -> Path:
        """``checkout/``: the environment's ``workdir`` (plays ``/opt/qcc_plus``)."""
        return self.path / "checkout"

    @property
    def cgroup_root(self) -> Path:
        """``cgroup/``: the environment's ``cgroup_root``. Never created: the sandbox's containers
        have no cgroup files, so the resource-usage step falls back to its ``docker stats``
        stand-in instead of reading the real machine's cgroups (whose containers are not these)."""
        return self.path / "cgroup"

    def config_paths(self) -> dict[str, str]:
        """The environment settings that point a bot at this sandbox's paths:
        ``{"workdir": <checkout>, "cgroup_root": <cgroup>}`` (merge into an environment mapping)."""
        return {"workdir": str(self.checkout), "cgroup_root": str(self.cgroup_root)}

    @property
    def home(self) -> Path:
        """``home/``: the login directory of SandboxHost sessions."""
        return self.path / "home"

    # ------------------------------------------------------------------ scenario
    def load(
        self,
        scenario: str | os.PathLike[str] | Scenario,
        *,
        database: MySQLTarget | None = None,
        now: float | None = None,
        reset_logs: bool = True,
    ) -> Scenario:
        """Write ``state.json`` for ``scenario`` (a packaged name, a YAML path or a model).

        ``database`` is the real MySQL the scenario's schema checks and ``docker exec ...
        mysql`` use (None: those checks fail, markers still work). ``reset_logs`` empties
        ``commands.log``/``sessions.log`` and removes markers (a fresh host). Raises
        :class:`qcc_sandbox.scenario.ScenarioError` for an unknown or invalid scenario.
        """
        sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.checkout.mkdir(exist_ok=True)
        names = {svc: (s.container_name or f"{sc.compose.project}-{svc}-1") for svc, s in sc.services.items()}
        (self.checkout / sc.compose.file).write_text(
            _COMPOSE_FILE_TEXT.format(
                file=sc.compose.file, mysql=names.get("mysql", "mysql"), proxy=names.get("proxy", "proxy")
            )
        )
        scripts = self.checkout / "scripts"
        scripts.mkdir(exist_ok=True)
        (scripts / "deploy-server.sh").write_text(_DEPLOY_SCRIPT)
        (scripts / "deploy-server.sh").chmod(0o755)
        state = build_state(
            sc,
            checkout=self.checkout,
            now=time.time() if now is None else now,
            database=database.as_state(sc.database.container_database) if database else None,
        )
        with self._lock(exclusive=True):
            _write_state(self.path, json.dumps(state, indent=1, sort_keys=True))
        if reset_logs:
            for log in (self.commands_log, self.sessions_log):
                log.write_bytes(b"")
                log.chmod(0o600)
            for marker in self.markers_dir.iterdir():
                marker.unlink()
        self.scenario = sc
        return sc

    @contextlib.contextmanager
    def _lock(self, *, exclusive: bool) -> Iterator[None]:
        fd = os.open(self.path / "state.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def state(self) -> dict[str, Any]:
        """The current ``state.json`` (read under the shared lock; empty dict if none)."""
        with self._lock(exclusive=False):
            try:
                return dict(json.loads(self.state_path.read_text()))
            except FileNotFoundError:
                return {}

    def update_state(self, fn: Callable[[dict[str, Any]], T]) -> T:
        """Run ``fn(state)`` under the exclusive lock, save the state, return ``fn``'s result."""
        with self._lock(exclusive=True):
            state = json.loads(self.state_path.read_text())
            result = fn(state)
            _write_state(self.path, json.dumps(state, indent=1, sort_keys=True))
            return result

    def add_fault(self, fault: Fault | Mapping[str, Any]) -> None:
        """Append a fault (e.g. ``Fault(program="docker", args=["logs"], mode="hang")``)."""
        item = (fault if isinstance(fault, Fault) else Fault.model_validate(dict(fault))).model_dump()
        self.update_state(lambda st: st.setdefault("faults", []).append(item))

    def clear_faults(self) -> None:
        """Remove every fault (and their hit counters)."""

        def clear(st: dict[str, Any]) -> None:
            st["faults"] = []
            st["fault_hits"] = {}

        self.update_state(clear)

    def set_marker(self, name: str) -> None:
        """Create ``markers/<name>`` (satisfies requirements that name this marker)."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad marker name {name!r}")
        (self.markers_dir / name).touch()

    # ------------------------------------------------------------------ observations
    def commands(self) -> list[CommandRecord]:
        """Every stand-in invocation so far, in order (unreadable lines are skipped)."""
        out: list[CommandRecord] = []
        try:
            raw = self.commands_log.read_bytes()
        except FileNotFoundError:
            return out
        for line in raw.decode("utf-8", "replace").splitlines():
            try:
                d = json.loads(line)
                out.append(
                    CommandRecord(
                        time=d["time"],
                        ts=float(d["ts"]),
                        pid=int(d["pid"]),
                        ppid=int(d["ppid"]),
                        prog=d["prog"],
                        argv=list(d["argv"]),
                        cwd=d.get("cwd", ""),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def count(self, prog: str, *args: str) -> int:
        """How many times ``prog`` ran with every token of ``args`` among its arguments.

        ``count("docker", "compose", "restart", "proxy")`` counts proxy restarts.
        """
        return sum(1 for c in self.commands() if c.prog == prog and c.has(*args))

    def sessions(self) -> list[dict[str, Any]]:
        """Every recorded SSH exec/forward request (``{"time", "ts", "command"|"forward", ...}``)."""
        try:
            lines = self.sessions_log.read_bytes().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def container(self, name: str) -> dict[str, Any] | None:
        """The raw state entry of container ``name`` (None when absent)."""
        return next((c for c in self.state().get("containers") or [] if c.get("name") == name), None)

    def container_state(self, name: str, *, at: float | None = None) -> str | None:
        """``running``/``exited``/``created``... as ``docker ps`` would show at time ``at`` (now)."""
        c = self.container(name)
        if c is None:
            return None
        return str(_load_stand_in_modules().effective_state(c, time.time() if at is None else at))

    # ------------------------------------------------------------------ running stand-ins
    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for running stand-ins: ``base`` plus ``PATH`` (bin first) and ``QCC_SANDBOX_DIR``."""
        env = dict(base or {})
        env.update(
            {
                "PATH": SANDBOX_PATH,
                "QCC_SANDBOX_DIR": str(self.path),
                "LANG": "C.UTF-8",
                "HOME": str(self.home),
            }
        )
        return env

    def sshd_env(self) -> dict[str, str]:
        """The ``SetEnv`` values a real sshd needs to serve this sandbox."""
        return {"PATH": SANDBOX_PATH, "QCC_SANDBOX_DIR": str(self.path)}

    def run(
        self,
        argv: Sequence[str] | str,
        *,
        timeout_s: float = 60.0,
        input: bytes | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a stand-in (argv list) or a shell line (str, via ``/bin/sh -c``) with the sandbox env.

        Returns the completed process (bytes stdout/stderr). Raises
        :class:`subprocess.TimeoutExpired` past ``timeout_s`` (the process group is killed).
        """
        cmd = ["/bin/sh", "-c", argv] if isinstance(argv, str) else list(argv)
        proc = subprocess.Popen(
            cmd,
            env=self.env(),
            cwd=cwd or self.home,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(input=input, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.communicate()
            raise
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
