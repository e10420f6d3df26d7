"""Pytest plugin: a REAL OpenSSH server on loopback, and per-test MariaDB databases.

Load it with ``pytest_plugins = ["tests.sshd"]`` (done in ``tests/conftest.py``).

Fixtures
--------
``sshd_factory`` (session)
    An :class:`SSHServerFactory`; ``sshd_factory.start(max_sessions=10, set_env=None,
    isolate_home=True, extra_config=())`` starts one more ``/usr/sbin/sshd`` (about 50 ms)
    and returns an :class:`SSHServer`. Instances live until the session ends unless stopped.
``sshd`` (session)
    The default :class:`SSHServer` (``MaxSessions 10``, no ``SetEnv``). Do not ``stop()`` or
    ``pause()`` it; start your own instance for fault tests.
``make_sshd`` (function)
    Same signature as ``sshd_factory.start``; every instance it started is stopped when the
    test ends. Use it for ``MaxSessions 1``, ``SetEnv`` sandboxes and stop/pause tests.
``mariadb`` (function)
    A :class:`MariaDBHelper`: ``mariadb.create_database(with_health_check_model=True)`` makes a
    database with a ``nodes`` table and a user whose random password is exported (monkeypatch)
    in ``$QCC_TEST_MYSQL_PASSWORD`` (``_2``, ``_3``... for further databases in the same test);
    everything is dropped afterwards.

Environment of remote commands (``SetEnv``), as verified on Debian 12 / OpenSSH 9.2
-------------------------------------------------------------------------------------
``SetEnv NAME=value`` *does* reach the session environment (sshd applies it after its own
defaults, so ``SetEnv PATH=...`` replaces the default ``PATH``). But sshd runs every command
as ``$SHELL -c '<command>'``, and Debian's bash (built with ``SSH_SOURCE_BASHRC``) then sources
the login user's ``~/.bashrc`` when it sees ``SSH_CLIENT``, so a ``~/.bashrc`` that edits
``PATH`` (on developer machines root's does: pyenv, cargo) prepends to, or replaces, the PATH
given by ``SetEnv``. The fixture therefore also sets ``HOME`` to an empty per-instance directory
(``isolate_home=True``, the default): bash then looks for ``$HOME/.bashrc`` there, finds
nothing, and the command sees exactly the ``PATH`` given. ``SSHServer.remote_env()`` returns
the environment a command really gets, for tests that want to assert it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from bot.config import MySQLConfig, SSHConfig
from qcc_sandbox.database import HEALTH_CHECK_MODEL_COLUMN, NODES_COLUMNS
from tests.ports import free_port

SSHD_PATH = Path("/usr/sbin/sshd")
START_TIMEOUT_S = 10.0
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _descendants(root_pid: int) -> list[int]:
    """All live descendants of ``root_pid`` (read from ``/proc``; sshd children call setsid)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # the process went away while we looked
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _marked_processes(marker: bytes) -> list[int]:
    """Processes whose environment holds ``marker`` (``NAME=value``): sessions of one sshd."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if marker in environ.split(b"\0"):
            found.append(int(entry))
    return found


def _signal_all(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _write_private_key(key: asyncssh.SSHKey, path: Path) -> None:
    key.write_private_key(str(path))
    path.chmod(0o600)


@dataclass
class SSHServer:
    """One running ``sshd`` on ``127.0.0.1:port``.

    ``user`` is the current user (root in CI), ``key_file`` a client key listed in the
    server's authorized_keys, ``known_hosts`` a file holding the server's host key,
    ``log_path`` the sshd log (``LogLevel VERBOSE``), ``home`` the isolated ``$HOME`` of
    remote commands (None when ``isolate_home=False``).
    """

    host: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    log_path: Path
    config_path: Path
    directory: Path
    host_public_key: str
    home: Path | None
    marker: str
    process: subprocess.Popen[bytes] = field(repr=False)
    _paused: list[int] = field(default_factory=list, repr=False)

    @property
    def address(self) -> str:
        """``user@host:port``, as transports name this server in errors."""
        return f"{self.user}@{self.host}:{self.port}"

    def ssh_config(self, **overrides: Any) -> SSHConfig:
        """An :class:`SSHConfig` for this server (validated); ``overrides`` replace fields.

        Defaults: connect timeout 5 s, keepalive 15 s, ``max_sessions`` 8.
        """
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "key_file": self.key_file,
            "known_hosts": self.known_hosts,
            "connect_timeout_s": 5.0,
        }
        values.update(overrides)
        return SSHConfig(**values)

    def log_text(self) -> str:
        """The sshd log so far (decoded with replacement)."""
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def count_logins(self) -> int:
        """How many public-key authentications sshd has accepted (one per SSH connection)."""
        return self.log_text().count("Accepted publickey for ")

    def remote_env(self, timeout_s: float = 10.0) -> dict[str, str]:
        """The environment a command gets on this server (runs ``env -0`` with ssh(1))."""
        out = subprocess.run(
            ["ssh", "-p", str(self.port), "-i", str(self.key_file), "-F", "/dev/null",
             "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
             "-o", "StrictHostKeyChecking=yes", f"{self.user}@{self.host}", "env -0"],
            capture_output=True, timeout=timeout_s, check=True, stdin=subprocess.DEVNULL,
        ).stdout
        pairs = (item.split(b"=", 1) for item in out.split(b"\0") if b"=" in item)
        return {k.decode(): v.decode("utf-8", "replace") for k, v in pairs}

    @property
    def running(self) -> bool:
        """True while the listening sshd process is alive."""
        return self.process.poll() is None

    def pause(self) -> None:
        """SIGSTOP the listener and every per-connection sshd and session process (a stall)."""
        pids = [self.process.pid, *_descendants(self.process.pid)]
        _signal_all(pids, signal.SIGSTOP)
        self._paused = pids

    def resume(self) -> None:
        """SIGCONT everything :meth:`pause` stopped (and the current process tree)."""
        pids = set(self._paused)
        if self.running:
            pids.update([self.process.pid, *_descendants(self.process.pid)])
        _signal_all(sorted(pids), signal.SIGCONT)
        self._paused = []

    def drop_connections(self) -> None:
        """SIGKILL every per-connection sshd (and its sessions); the listener keeps listening.

        Clients see their connection lost, as after a network failure, and can reconnect.
        """
        _signal_all(_descendants(self.process.pid), signal.SIGKILL)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the listener, every connection it serves and every process started
        through it (found by the ``SSHD_FIXTURE_ID`` variable each session carries); idempotent.

        Open client connections see the server go away (``SSHUnreachable`` on reconnect).
        """
        pids = [self.process.pid, *_descendants(self.process.pid), *self._paused]
        # Commands whose channel was closed (e.g. after a local deadline) outlive their sshd
        # and are reparented to init; they still carry this instance's marker variable.
        pids += [p for p in _marked_processes(self.marker.encode()) if p not in pids]
        _signal_all(pids, signal.SIGTERM)
        _signal_all(pids, signal.SIGCONT)  # a stopped process only acts on SIGTERM once continued
        self._paused = []
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        for pid in pids[1:]:
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                state = _proc_state(pid)
                if state in (None, "Z"):
                    break
                time.sleep(0.02)
            else:
                if Path(f"/proc/{pid}").exists():
                    _signal_all([pid], signal.SIGKILL)


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


class SSHServerFactory:
    """Starts ``sshd`` instances that share one host key and one authorized client key.

    Keys are generated once (ed25519, with asyncssh), so an extra instance costs one
    process start. Call :meth:`stop_all` at the end.
    """

    def __init__(self, base_dir: Path) -> None:
        if not SSHD_PATH.exists():
            pytest.fail(
                f"{SSHD_PATH} is missing: the transport tests need a real OpenSSH server; "
                "run `apt-get install -y openssh-server` (CI installs it)",
                pytrace=False,
            )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation chroot
        self.base_dir = base_dir
        self.user = pwd.getpwuid(os.getuid()).pw_name
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519", comment="qcc-test-client")
        self.host_key_file = base_dir / "ssh_host_ed25519_key"
        self.key_file = base_dir / "client_ed25519"
        _write_private_key(host_key, self.host_key_file)
        _write_private_key(client_key, self.key_file)
        self.host_public_key = host_key.export_public_key().decode().strip()
        self.authorized_keys = base_dir / "authorized_keys"
        self.authorized_keys.write_bytes(client_key.export_public_key())
        self.servers: list[SSHServer] = []

    def start(
        self,
        *,
        max_sessions: int = 10,
        set_env: Mapping[str, str] | None = None,
        isolate_home: bool = True,
        extra_config: Sequence[str] = (),
    ) -> SSHServer:
        """Start one more sshd on a free ``127.0.0.1`` port and wait until it listens.

        ``max_sessions`` is sshd's ``MaxSessions``; ``set_env`` becomes ``SetEnv NAME=value``
        (values must not contain ``"``, ``\\`` or newlines); ``isolate_home`` adds
        ``SetEnv HOME=<empty dir>`` so the user's shell rc files cannot change ``PATH`` (see
        the module docstring); ``extra_config`` lines are appended verbatim. Every session
        also gets ``SSHD_FIXTURE_ID=<unique id>`` so :meth:`SSHServer.stop` can find its
        processes.
        Fails the test with the sshd log if it does not start within 10 s.
        """
        index = len(self.servers)
        directory = self.base_dir / f"sshd-{index}"
        directory.mkdir()
        env = dict(set_env or {})
        marker = f"SSHD_FIXTURE_ID={os.getpid()}-{index}-{secrets.token_hex(4)}"
        env.setdefault("SSHD_FIXTURE_ID", marker.split("=", 1)[1])
        home: Path | None = None
        if isolate_home:
            home = directory / "home"
            home.mkdir()
            env.setdefault("HOME", str(home))
        for name, value in env.items():
            if not _ENV_NAME_RE.match(name) or any(c in value for c in '"\\\n\r'):
                raise ValueError(f"unsupported SetEnv entry {name!r}")
        last_log = ""
        for _attempt in range(5):
            port = free_port()
            config_path = directory / "sshd_config"
            log_path = directory / "sshd.log"
            lines = [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {self.host_key_file}",
                f"PidFile {directory / 'sshd.pid'}",
                f"AuthorizedKeysFile {self.authorized_keys}",
                "StrictModes no",
                "UsePAM no",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "AllowTcpForwarding yes",
                "PermitUserEnvironment no",
                "PrintMotd no",
                "PrintLastLog no",
                "UseDNS no",
                f"MaxSessions {max_sessions}",
                "LogLevel VERBOSE",
            ]
            if env:
                lines.append("SetEnv " + " ".join(f'"{k}={v}"' for k, v in env.items()))
            lines.extend(extra_config)
            config_path.write_text("\n".join(lines) + "\n")
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    [str(SSHD_PATH), "-D", "-e", "-f", str(config_path)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            known_hosts = directory / "known_hosts"
            known_hosts.write_text(f"[127.0.0.1]:{port} {self.host_public_key}\n")
            server = SSHServer(
                host="127.0.0.1", port=port, user=self.user, key_file=self.key_file,
                known_hosts=known_hosts, log_path=log_path, config_path=config_path,
                directory=directory, host_public_key=self.host_public_key, home=home, marker=marker,
                process=proc,
            )
            if self._wait_listening(server):
                self.servers.append(server)
                return server
            last_log = server.log_text()
            server.stop()
            if "Address already in use" not in last_log:
                break
            log_path.rename(directory / f"sshd.{_attempt}.log")
        pytest.fail(f"sshd did not start; its log:\n{last_log}", pytrace=False)

    @staticmethod
    def _wait_listening(server: SSHServer) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        needle = f"Server listening on 127.0.0.1 port {server.port}"
        while time.monotonic() < deadline:
            if needle in server.log_text():
                return True
            if not server.running:
                return False
            time.sleep(0.01)
        return False

    def stop_all(self) -> None:
        """Stop every instance this factory started."""
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="session")
def sshd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServerFactory]:
    """Session-wide :class:`SSHServerFactory`; stops all its servers at the end."""
    factory = SSHServerFactory(tmp_path_factory.mktemp("sshd"))
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def sshd(sshd_factory: SSHServerFactory) -> SSHServer:
    """The shared default sshd (``MaxSessions 10``). Never stop or pause it in a test."""
    return sshd_factory.start()


@pytest.fixture
def make_sshd(sshd_factory: SSHServerFactory) -> Iterator[Callable[..., SSHServer]]:
    """``make_sshd(**kwargs)`` = ``sshd_factory.start(**kwargs)``, stopped after the test."""
    started: list[SSHServer] = []

    def start(**kwargs: Any) -> SSHServer:
        server = sshd_factory.start(**kwargs)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


# --------------------------------------------------------------------------------------
# MariaDB
# --------------------------------------------------------------------------------------

MARIADB_HOST = "127.0.0.1"
MARIADB_PORT = 3306


@dataclass(frozen=True)
class MySQLTestDB:
    """One per-test database and its user. ``password`` is also in ``$password_env``."""

    database: str
    user: str
    password: str
    password_env: str
    with_health_check_model: bool
    host: str = MARIADB_HOST
    port: int = MARIADB_PORT

    def mysql_config(self, **overrides: Any) -> MySQLConfig:
        """A :class:`MySQLConfig` for this database as seen from the SSH host (loopback).

        Defaults: connect timeout 3 s, query timeout 10 s; ``overrides`` replace fields.
        """
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password_env": self.password_env,
            "database": self.database,
            "connect_timeout_s": 3.0,
        }
        values.update(overrides)
        return MySQLConfig(**values)


class MariaDBHelper:
    """Creates per-test databases on the local MariaDB (as root) and drops them afterwards."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self._created: list[MySQLTestDB] = []

    def _connect(self) -> Any:
        import pymysql

        try:
            return pymysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user="root", password="",
                                   autocommit=True, connect_timeout=5,
                                   cursorclass=pymysql.cursors.DictCursor)
        except pymysql.MySQLError as exc:
            pytest.fail(f"MariaDB is not reachable as root on {MARIADB_HOST}:{MARIADB_PORT} ({exc}); "
                        "the MySQL transport tests need it (CI: apt-get install -y mariadb-server)",
                        pytrace=False)

    def admin_query(self, sql: str, args: Any = None) -> list[dict[str, Any]]:
        """Run ``sql`` as root; rows as dicts (empty for statements without a result)."""
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def create_database(self, *, with_health_check_model: bool = True,
                        password_env: str | None = None) -> MySQLTestDB:
        """A fresh database with a ``nodes`` table holding two rows, and a user with ALL on it.

        ``with_health_check_model`` adds the column the v1.9 migration adds (its absence is
        the schema the runbook's ``Error 1054`` diagnosis is about). The random password is
        exported as ``$password_env`` (default ``QCC_TEST_MYSQL_PASSWORD``, suffixed ``_2``...
        for more databases in one test) for the duration of the test.
        """
        suffix = secrets.token_hex(4)
        name = f"qcct_{suffix}"
        password = secrets.token_urlsafe(18)
        if password_env is None:
            password_env = "QCC_TEST_MYSQL_PASSWORD" + (f"_{len(self._created) + 1}" if self._created else "")
        columns = list(NODES_COLUMNS)
        if with_health_check_model:
            columns.append(HEALTH_CHECK_MODEL_COLUMN)
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}`")
                db = MySQLTestDB(database=name, user=name, password=password, password_env=password_env,
                                 with_health_check_model=with_health_check_model)
                self._created.append(db)
                cur.execute(f"CREATE TABLE `{name}`.nodes ({', '.join(columns)})")
                cur.execute(f"INSERT INTO `{name}`.nodes (id, name, base_url) VALUES "
                            "('n1', 'primary', 'https://api.example.test'), "
                            "('n2', 'backup', 'https://backup.example.test')")
                cur.execute(f"CREATE USER '{name}'@'%%' IDENTIFIED BY %s", (password,))
                cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{name}'@'%'")
        finally:
            conn.close()
        self._monkeypatch.setenv(password_env, password)
        return db

    def cleanup(self) -> None:
        """Drop every database and user created by this helper."""
        if not self._created:
            return
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                for db in self._created:
                    cur.execute(f"DROP DATABASE IF EXISTS `{db.database}`")
                    cur.execute(f"DROP USER IF EXISTS '{db.user}'@'%'")
        finally:
            conn.close()
        self._created.clear()


@pytest.fixture
def mariadb(monkeypatch: pytest.MonkeyPatch) -> Iterator[MariaDBHelper]:
    """A :class:`MariaDBHelper`; its databases and users are dropped after the test."""
    helper = MariaDBHelper(monkeypatch)
    try:
        yield helper
    finally:
        helper.cleanup()
