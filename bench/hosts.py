"""The hosts a benchmark measures against, all reached over a REAL OpenSSH server.

* :class:`SandboxBenchHost` — a sandbox host (the docker CLI stand-ins) served by a real
  ``sshd`` on loopback (``tests/sshd.py``), with a MariaDB database for the schema step.
  Latency per docker command is injected with the stand-ins' own ``delay`` fault
  (``{"program": "docker", "mode": "delay", "delay_s": L}`` in ``state.json``): every
  ``docker ...`` invocation sleeps ``L`` seconds before answering.
* :class:`ConfiguredBenchHost` — any environment of a ``qcc.yaml`` (e.g. the real Docker
  engine of ``tests/realengine``). Latency can only be injected there when the host offers a
  hook: ``latency_cmd`` (a shell line with ``{latency}``, run over SSH before each level).

Both expose the same surface: :attr:`env_config` (the ``environments.<name>`` mapping the
bot uses), :meth:`ssh_argv` (OpenSSH client argv for one remote command),
:meth:`set_latency`, :meth:`manual_commands` (the seed's manual sequence) and
:meth:`count_logins` (SSH connections accepted so far, or None when unknown).
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

import qcc_sandbox as sandbox_pkg  # the host simulator (sandbox/, `make install-sandbox`)
from qcc_sandbox.scenario import Fault

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The seed's manual sequence, in its order: "Diagnosis steps" 1-4 (step 5, the restart, changes
# the host and is not part of a diagnosis), then the checks of likely causes 1, 2, 3 and 5
# (cause 4 is a GitHub Actions page, not a host command). `lsof -i :8001` becomes
# `ss -ltnp | grep 8001` (same answer; the sandbox, like many slim hosts, has no lsof).
SEED_SEQUENCE = [
    ("diag1 container status", "docker ps -a | grep {project}"),
    ("diag2 latest logs", "docker logs --tail 100 {proxy} 2>&1"),
    ("diag3 DESCRIBE nodes", "docker exec {mysql} mysql -uroot -p'<password>' {database} -e 'DESCRIBE nodes'"),
    ("diag4 resource usage", "docker stats --no-stream {proxy}"),
    ("cause1 grep migration", "docker logs {proxy} 2>&1 | grep -i 'migration\\|health_check_model\\|error'"),
    ("cause2 grep HealthScheduler", "docker logs {proxy} 2>&1 | grep -i 'HealthScheduler'"),
    ("cause3 grep panic", "docker logs {proxy} 2>&1 | grep -i 'panic'"),
    ("cause5 ps publishes 8001", "docker ps -a | grep 8001"),
    ("cause5 who listens on 8001", "ss -ltnp | grep 8001"),
]


class BenchHost:
    """Common surface (see the module docstring)."""

    name = "host"
    env_config: dict[str, Any]
    user: str
    host: str
    port: int
    key_file: Path
    known_hosts: Path
    names: dict[str, str]

    def ssh_argv(self, command: str) -> list[str]:
        """``ssh ... user@host COMMAND``: one fresh connection (no multiplexing, no config file)."""
        return ["ssh", "-p", str(self.port), "-i", str(self.key_file), "-F", "/dev/null",
                "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
                f"{self.user}@{self.host}", command]

    def manual_commands(self) -> list[tuple[str, str]]:
        """The seed's sequence with this host's names filled in: ``[(label, command line)]``."""
        return [(label, cmd.format(**self.names)) for label, cmd in SEED_SEQUENCE]

    def set_latency(self, seconds: float) -> bool:
        """Make every docker command take ``seconds`` longer; False when this host cannot."""
        raise NotImplementedError

    def count_logins(self) -> int | None:
        return None

    def clear_commands(self) -> None:
        """Forget the remote commands recorded so far (see :meth:`commands_since`)."""

    def commands_since(self, started: float) -> list[tuple[float, int, str, list[str]]] | None:
        """Remote commands started since epoch ``started``: ``[(ts, session ppid, program, argv)]``;
        None when this host records none."""
        return None

    def close(self) -> None:
        """Stop what this host started (idempotent)."""


class SandboxBenchHost(BenchHost):
    """The seed-named ``migration_failed`` sandbox behind a real sshd (see the module docstring)."""

    name = "sandbox"

    def __init__(self, scenario: str = "migration_failed_seed_naming", *, max_sessions: int = 10,
                 factory: Any = None, workdir: Path | None = None, scenario_model: Any = None) -> None:
        import pytest

        from tests.sshd import MariaDBHelper, SSHServerFactory

        self._tmp = tempfile.TemporaryDirectory(prefix="qcc-bench-") if workdir is None else None
        self.workdir = Path(self._tmp.name) if self._tmp else workdir
        assert self.workdir is not None
        self._own_factory = factory is None
        if factory is None:
            (self.workdir / "sshd").mkdir(parents=True, exist_ok=True)
            factory = SSHServerFactory(self.workdir / "sshd")
        self.factory = factory
        self._mp = pytest.MonkeyPatch()
        self.mariadb = MariaDBHelper(self._mp)
        sc = scenario_model if scenario_model is not None else sandbox_pkg.load_scenario(scenario)
        self.scenario = sc
        self.db = self.mariadb.create_database(with_health_check_model=sc.database.nodes_has_health_check_model,
                                               password_env=f"QCC_BENCH_MYSQL_PW_{id(self)}")
        self.box = sandbox_pkg.SandboxDir(self.workdir / f"host-{id(self)}")
        target = sandbox_pkg.MySQLTarget(host=self.db.host, port=self.db.port, user=self.db.user,
                                         password=self.db.password, database=self.db.database)
        self.box.load(sc, database=target)
        env = dict(self.box.sshd_env())
        self.sshd = factory.start(max_sessions=max_sessions, set_env=env)
        self.host, self.port, self.user = self.sshd.host, self.sshd.port, self.sshd.user
        self.key_file, self.known_hosts = self.sshd.key_file, self.sshd.known_hosts
        listed = self.box.run(["docker", "ps", "-a", "--format", "{{.Names}}"]).stdout.decode().split()
        self.names = {"project": sc.compose.project,
                      "proxy": next((n for n in listed if "proxy" in n), "qcc_test-proxy-1"),
                      "mysql": next((n for n in listed if "mysql" in n), "qcc_test-mysql-1"),
                      "database": "qcc_plus"}
        self.env_config = {
            "ssh": {"host": self.host, "port": self.port, "user": self.user, "key_file": str(self.key_file),
                    "known_hosts": str(self.known_hosts), "connect_timeout_s": 10.0},
            "compose_project": sc.compose.project,
            "compose_file": sc.compose.file,
            **self.box.config_paths(),
            "proxy_service": "proxy",
            "mysql_service": "mysql",
            "proxy_port": 8001,
            "mysql": {"host": self.db.host, "port": self.db.port, "user": self.db.user,
                      "password_env": self.db.password_env, "database": self.db.database,
                      "connect_timeout_s": 5.0},
        }

    def set_latency(self, seconds: float) -> bool:
        self.box.clear_faults()
        if seconds > 0:
            self.box.add_fault(Fault(program="docker", mode="delay", delay_s=seconds))
        return True

    def count_logins(self) -> int | None:
        return int(self.sshd.count_logins())

    def clear_commands(self) -> None:
        self.box.commands_log.write_bytes(b"")

    def commands_since(self, started: float) -> list[tuple[float, int, str, list[str]]] | None:
        return [(r.ts, r.ppid, r.prog, list(r.argv)) for r in self.box.commands() if r.ts >= started]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sshd.stop()
        with contextlib.suppress(Exception):
            self.mariadb.cleanup()
        self._mp.undo()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class ConfiguredBenchHost(BenchHost):
    """Environment ``env`` of the ``qcc.yaml`` at ``config`` (a real engine host, for instance).

    ``names`` gives the seed's container names on that host (``project``, ``proxy``,
    ``mysql``, ``database``); ``latency_cmd`` (optional) is a remote shell line with
    ``{latency}`` that makes each docker command slower (a wrapper's knob), else only
    latency 0 is measured there.
    """

    def __init__(self, config: Path, env: str, *, names: dict[str, str] | None = None,
                 latency_cmd: str | None = None) -> None:
        data = yaml.safe_load(config.read_text())
        self.env_config = dict(data["environments"][env])
        self.name = f"{config.name}:{env}"
        ssh = self.env_config["ssh"]
        self.host, self.port, self.user = ssh["host"], int(ssh.get("port", 22)), ssh["user"]
        self.key_file = Path(ssh["key_file"])
        self.known_hosts = Path(ssh["known_hosts"])
        project = self.env_config.get("compose_project", "qcc_test")
        listed = subprocess.run(self.ssh_argv("docker ps -a --format '{{.Names}}'"), capture_output=True,
                                text=True, timeout=60, stdin=subprocess.DEVNULL, check=False).stdout.split()
        self.names = {"project": project,
                      "proxy": next((n for n in listed if project in n and "proxy" in n), f"{project}-proxy-1"),
                      "mysql": next((n for n in listed if project in n and "mysql" in n), f"{project}-mysql-1"),
                      "database": (self.env_config.get("mysql") or {}).get("database", "qcc_plus"),
                      **(names or {})}
        self.latency_cmd = latency_cmd

    def set_latency(self, seconds: float) -> bool:
        if self.latency_cmd is None:
            return seconds == 0
        cmd = self.latency_cmd.format(latency=shlex.quote(f"{seconds:g}"))
        subprocess.run(self.ssh_argv(cmd), check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        return True


def open_host(spec: str) -> BenchHost:
    """``sandbox`` (default), ``realengine`` (bench/realengine.py) or ``config:PATH:ENV[:LATENCY_CMD]``
    -> a :class:`BenchHost`."""
    if spec in ("", "sandbox"):
        return SandboxBenchHost()
    if spec == "realengine":
        from bench.realengine import RealEngineBenchHost

        return RealEngineBenchHost()
    kind, _, rest = spec.partition(":")
    if kind != "config":
        raise SystemExit(f"unknown --host {spec!r}: use 'sandbox', 'realengine' or 'config:PATH:ENV[:LATENCY_CMD]'")
    path, _, rest = rest.partition(":")
    env, _, latency_cmd = rest.partition(":")
    return ConfiguredBenchHost(Path(path), env, latency_cmd=latency_cmd or None)
