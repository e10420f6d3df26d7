"""``SandboxHost``: an in-process SSH server on loopback that plays the qcc_plus host.

Used by ``qcc-bot demo``: the bot's real transports (asyncssh, aiomysql over a local
forward) talk to it exactly as to a server. Each exec request runs ``/bin/sh -c COMMAND`` in
a subprocess whose ``PATH`` starts with the stand-ins (``sandbox/qcc_sandbox/bin``) and whose
``QCC_SANDBOX_DIR`` is the scenario's sandbox directory; stdin/stdout/stderr are piped as
bytes and the real exit status (or signal) is returned. Port forwarding (direct-tcpip) is
allowed only to 127.0.0.1/localhost/::1, for the MySQL tunnel. Authentication is by a
client key generated for this run; the host key is written to a known_hosts file::

    async with SandboxHost("migration_failed") as host:
        settings = host.settings()          # one environment, "demo", pointing here
        ...                                  # run the diagnosis with the real transports

Every exec request and forward is appended to ``<sandbox>/sessions.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncssh

from bot.config import Settings, load_settings
from qcc_sandbox.database import MySQLTarget, prepare_mysql
from qcc_sandbox.sandboxdir import SANDBOX_PATH, SandboxDir
from qcc_sandbox.scenario import Scenario, load_scenario

log = logging.getLogger(__name__)

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
DEMO_PASSWORD_ENV = "QCC_DEMO_MYSQL_PASSWORD"  # noqa: S105 - the variable name, not a password
_READ_CHUNK = 65536


def _closed_port() -> int:
    """A loopback TCP port nobody listens on (bound and released a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server(asyncssh.SSHServer):
    """Per-connection policy: key auth only, local forwards to loopback only."""

    def __init__(self, owner: SandboxHost) -> None:
        self._owner = owner
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._owner._conns.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._owner._conns.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True  # authentication required (keys from authorized_client_keys)

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        allowed = dest_host in LOOPBACK
        self._owner._record({"forward": f"{dest_host}:{dest_port}", "allowed": allowed})
        if not allowed:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "the sandbox forwards only to loopback"
            )
        return True

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False  # no remote forwarding


def _session_members(sid: int) -> list[int]:
    """Pids of the processes in session ``sid`` (Linux ``/proc``; empty elsewhere)."""
    members = []
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else []:
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # after "pid (comm) ": state ppid pgrp session
        if len(fields) > 3 and int(fields[3]) == sid:
            members.append(int(entry.name))
    return members


def _close_transport(proc: asyncio.subprocess.Process) -> None:
    """Close a finished subprocess's pipes now, while the loop runs.

    asyncio offers no public close for ``Process``; left to the garbage collector after
    the loop has closed, the transport prints "Event loop is closed" (Ctrl-C in a demo).
    """
    transport = getattr(proc, "_transport", None)
    if transport is not None:
        with contextlib.suppress(Exception):
            transport.close()


class SandboxHost:
    """An in-process SSH server serving one scenario (async context manager).

    ``scenario``: packaged name, YAML path or :class:`Scenario`. ``root``: directory for keys
    and the sandbox (default: a new temp dir, removed on close). ``mysql``: the real MySQL
    playing the environment's database (default root@127.0.0.1:3306, empty password,
    database ``qcc_demo``). ``prepare_db``: create the scenario's schema there on start
    (best effort; see :attr:`mysql_ready`). ``env_name``/``user``: the environment name and
    SSH user in :meth:`settings`.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        scenario: str | os.PathLike[str] | Scenario = "migration_failed",
        *,
        root: str | os.PathLike[str] | None = None,
        mysql: MySQLTarget | None = None,
        prepare_db: bool = True,
        env_name: str = "demo",
        user: str = "qcc-demo",
    ) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        # The temp dir (when no ``root`` is given) is made in :meth:`start`, inside the scope
        # whose failure or interruption runs :meth:`close`: nothing is created before that.
        self._own_root = root is None
        self._root: Path | None = Path(root) if root is not None else None
        self._sandbox: SandboxDir | None = None
        self.mysql = mysql or MySQLTarget()
        self.prepare_db = prepare_db
        self.env_name = env_name
        self.user = user
        self.port = 0
        self.mysql_ready = False
        self._server: asyncssh.SSHAcceptor | None = None
        self._procs: set[asyncio.subprocess.Process] = set()
        self._conns: set[asyncssh.SSHServerConnection] = set()
        self._closed_mysql_port: int | None = None

    # ---------------------------------------------------------------- paths (set by start)
    @property
    def root(self) -> Path:
        """The directory holding keys, ``known_hosts``, the state database and the sandbox."""
        if self._root is None:
            raise RuntimeError("SandboxHost is not started")
        return self._root

    @property
    def sandbox(self) -> SandboxDir:
        """The :class:`SandboxDir` (``<root>/host``) the stand-ins read and write."""
        if self._sandbox is None:
            raise RuntimeError("SandboxHost is not started")
        return self._sandbox

    @property
    def key_file(self) -> Path:
        return self.root / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    # ---------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> SandboxHost:
        try:
            await self.start()
        except BaseException:  # interrupted or failed half-way: leave nothing behind
            await asyncio.shield(self.close())
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Generate keys, load the scenario, prepare MySQL (if asked), listen on 127.0.0.1:0."""
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="qcc-sandbox-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._sandbox = SandboxDir(self.root / "host")
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519", comment="qcc-sandbox-client")
        client_key.write_private_key(str(self.key_file))
        self.key_file.chmod(0o600)
        authorized = self.root / "authorized_keys"
        authorized.write_bytes(client_key.export_public_key())
        if self.prepare_db:
            self.mysql_ready = await prepare_mysql(self.scenario, self.mysql)
        self.sandbox.load(self.scenario, database=self.mysql if self.mysql_ready else None)
        self._server = await asyncssh.create_server(
            lambda: _Server(self),
            self.host,
            0,
            server_host_keys=[host_key],
            authorized_client_keys=str(authorized),
            process_factory=self._handle,
            encoding=None,
            allow_scp=False,
            keepalive_interval=30,
            login_timeout=15,
        )
        self.port = self._server.get_port()
        pub = host_key.export_public_key().decode().strip()
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {pub}\n")

    async def close(self) -> None:
        """Stop listening, kill running commands, remove the temp dir we created. Idempotent."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None
        for conn in list(self._conns):
            conn.close()
        for proc in list(self._procs):
            self._kill(proc)
        for proc in list(self._procs):
            # Reap them while the loop is alive: a transport collected after the loop closed
            # prints "Event loop is closed" noise (seen on Ctrl-C during a demo).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 2)
            _close_transport(proc)
        if self._own_root and self._root is not None:
            # A stand-in killed a moment ago may still have been appending to a log in here:
            # remove until nothing is left (a few tries, 50 ms apart).
            for _ in range(20):
                shutil.rmtree(self._root, ignore_errors=True)
                if not self._root.exists():
                    break
                await asyncio.sleep(0.05)

    # ---------------------------------------------------------------- configuration
    def config_data(self) -> dict[str, Any]:
        """The configuration mapping (as a ``qcc.yaml`` would hold) for one environment here.

        MySQL points at :attr:`mysql` through the SSH tunnel; when the scenario says the
        database is unreachable it points at a closed loopback port instead. The password
        (if any) is read from ``$QCC_DEMO_MYSQL_PASSWORD`` (see :meth:`secret_env`).
        """
        if not self.port:
            raise RuntimeError("SandboxHost is not started")
        mysql_port = self.mysql.port
        if not self.scenario.database.reachable:
            if self._closed_mysql_port is None:
                self._closed_mysql_port = _closed_port()
            mysql_port = self._closed_mysql_port
        mysql: dict[str, Any] = {
            "host": self.mysql.host,
            "port": mysql_port,
            "user": self.mysql.user,
            "database": self.mysql.database,
            "connect_timeout_s": 3.0,
        }
        if self.mysql.password:
            mysql["password_env"] = DEMO_PASSWORD_ENV
        return {
            "environments": {
                self.env_name: {
                    "ssh": {
                        "host": self.host,
                        "port": self.port,
                        "user": self.user,
                        "key_file": str(self.key_file),
                        "known_hosts": str(self.known_hosts),
                        "connect_timeout_s": 5.0,
                    },
                    "compose_project": self.scenario.compose.project,
                    "compose_file": self.scenario.compose.file,
                    **self.sandbox.config_paths(),
                    "proxy_service": "proxy",
                    "mysql_service": "mysql",
                    "proxy_port": 8001,
                    "mysql": mysql,
                }
            },
            "state_url": f"sqlite+aiosqlite:///{self.root / 'state.db'}",
        }

    def settings(self) -> Settings:
        """:class:`bot.config.Settings` with one environment (:attr:`env_name`) pointing here.

        Built with ``load_settings(data=..., env={})``: no Slack or GitHub secrets are read.
        """
        return load_settings(data=self.config_data(), env={})

    def secret_env(self) -> dict[str, str]:
        """Variables the bot process needs (the MySQL password, when there is one)."""
        return {DEMO_PASSWORD_ENV: self.mysql.password} if self.mysql.password else {}

    # ---------------------------------------------------------------- sessions
    def _record(self, entry: dict[str, Any]) -> None:
        now = time.time()
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "ts": round(now, 6), **entry}
        try:
            with self.sandbox.sessions_log.open("ab") as fh:
                fh.write((json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8", "surrogateescape"))
        except OSError:
            log.warning("cannot write the sandbox session log")

    def _env(self) -> dict[str, str]:
        return {
            "PATH": SANDBOX_PATH,
            "QCC_SANDBOX_DIR": str(self.sandbox.path),
            "HOME": str(self.sandbox.home),
            "LANG": "C.UTF-8",
            "USER": self.user,
            "LOGNAME": self.user,
            "SHELL": "/bin/sh",
        }

    @staticmethod
    def _kill(proc: asyncio.subprocess.Process) -> None:
        """SIGKILL the command's whole session: its process group, and what left the group
        (GNU ``timeout`` runs its command in a group of its own) but not the session."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in _session_members(proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    async def _handle(self, process: asyncssh.SSHServerProcess) -> None:
        """Run one exec request; report its exit status or signal."""
        command = process.command
        if not command:
            process.stderr.write(b"qcc-sandbox: interactive sessions are not supported\n")
            process.exit(1)
            return
        self._record({"command": command})
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env(),
            cwd=str(self.sandbox.home),
            start_new_session=True,
        )
        self._procs.add(proc)

        async def pump(reader: asyncio.StreamReader, writer: Any) -> None:
            while chunk := await reader.read(_READ_CHUNK):
                writer.write(chunk)
                await writer.drain()

        async def feed() -> None:
            assert proc.stdin is not None
            with contextlib.suppress(Exception):
                while data := await process.stdin.read(_READ_CHUNK):
                    proc.stdin.write(data)
                    await proc.stdin.drain()
            with contextlib.suppress(Exception):
                proc.stdin.close()

        assert proc.stdout is not None and proc.stderr is not None
        outputs = asyncio.gather(pump(proc.stdout, process.stdout), pump(proc.stderr, process.stderr))
        feeder = asyncio.create_task(feed())
        closed = asyncio.create_task(process.wait_closed())
        finished = asyncio.create_task(proc.wait())
        try:
            await asyncio.wait({finished, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not finished.done():  # the client went away (its own deadline): kill the command
                self._kill(proc)
                await finished
                outputs.cancel()
                return
            with contextlib.suppress(Exception):
                await asyncio.wait_for(outputs, 10)
            rc = proc.returncode
            if rc is not None and rc < 0:
                try:
                    name = signal.Signals(-rc).name.removeprefix("SIG")
                except ValueError:
                    name = str(-rc)
                process.exit_with_signal(name)
            else:
                process.exit(rc if rc is not None else 255)
        except (asyncssh.Error, ConnectionError, BrokenPipeError):
            self._kill(proc)
        finally:
            self._kill(proc)
            for task in (feeder, closed, finished):
                task.cancel()
            outputs.cancel()
            with contextlib.suppress(BaseException):
                await outputs
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(proc.wait(), 2)
            _close_transport(proc)
            self._procs.discard(proc)
