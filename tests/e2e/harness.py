"""End-to-end harness: the real CLI against a real sshd serving a sandbox, and the real MariaDB.

:class:`E2EHost` ties together one scenario loaded into a :class:`~qcc_sandbox.SandboxDir`,
an OpenSSH ``sshd`` (from ``tests/sshd.py``) whose ``SetEnv`` puts the stand-ins first on
``PATH`` and names the sandbox, a per-test MariaDB database shaped as the scenario says, and
a ``qcc.yaml`` for environment ``test``. :func:`run_cli` runs ``python -m bot ...`` as a
subprocess and records every run so a test can check all outputs for secrets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qcc_sandbox import SandboxDir
from qcc_sandbox.scenario import Scenario

REPO = Path(__file__).resolve().parents[2]
STEP_STATUSES = {"ok", "failed", "timeout", "error", "skipped"}
# Commands a diagnosis may run on the host: anything else in commands.log means the
# read-only diagnosis changed something.
MUTATING = {
    ("docker", "restart"),
    ("docker", "start"),
    ("docker", "stop"),
    ("docker", "kill"),
    ("docker", "rm"),
    ("docker", "exec"),
    ("docker", "up"),
    ("docker", "down"),
    ("git", "checkout"),
    ("git", "reset"),
    ("git", "pull"),
}


@dataclass
class CliRun:
    """One finished ``python -m bot`` run (outputs decoded with replacement)."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        """stdout as the one JSON object ``--format json`` must print."""
        data = json.loads(self.stdout)
        assert isinstance(data, dict)
        return data

    def describe(self) -> str:
        """A failure message: arguments, exit code and the tail of both streams."""
        return (
            f"qcc-bot {' '.join(self.args)} -> {self.returncode}\nstdout:\n{self.stdout[-3000:]}\n"
            f"stderr:\n{self.stderr[-3000:]}"
        )


RUNS: list[CliRun] = []  # every CLI run of this session, for the secrets checks


def run_cli(
    args: list[str], *, cwd: Path, timeout_s: float = 240.0, env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> CliRun:
    """Run ``python -m bot ARGS`` in ``cwd`` with the test's environment (plus ``env``); ``stdin``
    is typed into the command (default: no input at all)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + full_env["PYTHONPATH"] if full_env.get("PYTHONPATH") else ""
    )
    full_env.setdefault("COLUMNS", "120")
    res = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        timeout=timeout_s,
        check=False,
        **({"input": stdin.encode()} if stdin is not None else {"stdin": subprocess.DEVNULL}),
    )
    run = CliRun(
        list(args),
        res.returncode,
        res.stdout.decode("utf-8", "replace"),
        res.stderr.decode("utf-8", "replace"),
    )
    RUNS.append(run)
    return run


def run_cli_tty(args: list[str], *, cwd: Path, timeout_s: float = 240.0) -> CliRun:
    """Run ``python -m bot ARGS`` with stdout on a pseudo-terminal (stderr a pipe, no stdin).

    ``stdout`` is everything the terminal received (control sequences included, ``\r\n``
    turned into ``\n``)."""
    import pty
    import select
    import time

    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + (os.pathsep + full_env["PYTHONPATH"] if full_env.get("PYTHONPATH") else "")
    full_env.update({"COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"})
    full_env.pop("NO_COLOR", None)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "bot", *args], cwd=cwd, env=full_env, stdout=slave,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))[1]
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    run = CliRun(list(args), proc.returncode, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n"),
                 stderr.decode("utf-8", "replace"))
    RUNS.append(run)
    return run


def leaked(text: str, secrets: list[str]) -> list[str]:
    """The secrets (and the REDACTME marker of planted fake ones) found in ``text``."""
    found = [s for s in secrets if s and s in text]
    if "REDACTME" in text:
        found.append("REDACTME")
    return found


def key_material(key_file: Path) -> list[str]:
    """Lines of a private key file worth searching for (its base64 body and header)."""
    lines = [line.strip() for line in key_file.read_text().splitlines() if line.strip()]
    return [line for line in lines if len(line) >= 16] + ["PRIVATE KEY"]


@dataclass
class E2EHost:
    """One scenario served by a real sshd, with its database and config file."""

    scenario: Scenario
    box: SandboxDir
    sshd: Any  # tests.sshd.SSHServer
    db: Any  # tests.sshd.MySQLTestDB | None
    workdir: Path
    mysql_override: dict[str, Any] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        """The ``qcc.yaml`` of this host (written by :meth:`write_config`)."""
        return self.workdir / "qcc.yaml"

    def write_config(self, **env_overrides: Any) -> Path:
        """Write ``qcc.yaml`` with environment ``test`` pointing at the sshd and the database."""
        env: dict[str, Any] = {
            "ssh": {
                "host": self.sshd.host,
                "port": self.sshd.port,
                "user": self.sshd.user,
                "key_file": str(self.sshd.key_file),
                "known_hosts": str(self.sshd.known_hosts),
                "connect_timeout_s": 5.0,
            },
            "compose_project": self.scenario.compose.project,
            "compose_file": self.scenario.compose.file,
            **self.box.config_paths(),
            "proxy_service": "proxy",
            "mysql_service": "mysql",
            "proxy_port": 8001,
        }
        if self.db is not None:
            mysql = {
                "host": self.db.host,
                "port": self.db.port,
                "user": self.db.user,
                "password_env": self.db.password_env,
                "database": self.db.database,
                "connect_timeout_s": 3.0,
            }
            mysql.update(self.mysql_override)
            env["mysql"] = mysql
        env.update(env_overrides)
        self.config_path.write_text(
            yaml.safe_dump(
                {"environments": {"test": env}, "state_url": f"sqlite+aiosqlite:///{self.workdir}/state.db"}
            )
        )
        return self.config_path

    def cli(self, *args: str, timeout_s: float = 240.0, stdin: str | None = None) -> CliRun:
        """Run ``qcc-bot ARGS --config <this config>`` from this host's work directory."""
        return run_cli([*args, "--config", str(self.config_path)], cwd=self.workdir, timeout_s=timeout_s,
                       stdin=stdin)

    def diagnose(self, *extra: str, fmt: str = "json") -> CliRun:
        """``qcc-bot diagnose --env test --format FMT [extra]``."""
        return self.cli("diagnose", "--env", "test", "--format", fmt, *extra)

    def secrets(self) -> list[str]:
        """Everything that must never appear in output: DB password, key material, planted secrets."""
        values = list(self.scenario.secrets()) + key_material(self.sshd.key_file)
        if self.db is not None:
            values.append(self.db.password)
        return values

    def mutations(self) -> list[list[str]]:
        """Commands from the host's command log that would change the host."""
        out = []
        for rec in self.box.commands():
            words = set(rec.argv[1:])
            if any(prog == rec.prog and verb in words for prog, verb in MUTATING):
                out.append(rec.argv)
        return out
