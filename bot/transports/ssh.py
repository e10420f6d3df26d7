"""Run shell lines on an environment's host over one reused asyncssh connection.

:class:`SSHCommandRunner` is the :class:`~bot.transports.base.CommandRunner` of one
environment. It opens a single SSH connection lazily (shared by every step and run,
reopened when it drops), always verifies the host key against ``known_hosts``, bounds
concurrent channels, reads output as capped bytes, and translates asyncssh/OS errors into
:mod:`bot.errors` exactly once, here::

    HostKeyNotVerifiable        -> HostKeyNotTrusted   (never bypassed)
    PermissionDenied            -> SSHAuthFailed
    OSError / DNS / timeout     -> SSHUnreachable
    other asyncssh.Error        -> SSHError
    local deadline              -> CommandTimeout

A command that ran and failed is a :class:`~bot.models.CommandResult` with its exit
status; one killed by a signal, or cut off by a lost connection, has ``exit_status=None``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncssh

from bot.config import SSHConfig
from bot.errors import (
    CommandTimeout,
    HostKeyNotTrusted,
    SSHAuthFailed,
    SSHError,
    SSHUnreachable,
)
from bot.models import CommandResult
from bot.transports.base import DEFAULT_MAX_OUTPUT_BYTES, one_line

logger = logging.getLogger(__name__)

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
KEEPALIVE_COUNT_MAX = 3
READ_CHUNK_BYTES = 64 * 1024
CLOSE_TIMEOUT_S = 5.0
_BACKOFF_FIRST_S = 0.02
_BACKOFF_MAX_S = 0.5
_RECOVER_AFTER_OPENS = 16  # successful channel opens before the limit grows back by one
# sshd frees a session slot a moment after the channel closes: for this long after one of our
# channels closed, the server may still count it.
_SERVER_LAG_S = 0.2

Closer = Callable[[], Awaitable[None]]


class _AdaptiveLimiter:
    """A semaphore whose limit shrinks when the server refuses channels.

    ``limit`` starts at ``maximum``; :meth:`shrink` lowers it to what the server was
    counting when it refused: the other channels in use plus ours that closed within
    ``_SERVER_LAG_S`` (sshd frees a slot a moment after the close), never below 1. After
    ``_RECOVER_AFTER_OPENS`` successful opens it grows back by one, up to ``maximum``.
    :meth:`release` is synchronous so it is safe in ``finally`` blocks of cancelled tasks.
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.in_use = 0
        self._successes = 0
        self._recent_closes: deque[float] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        while self.in_use >= self.limit:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake()  # we were woken but leave: pass the turn on
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
        self.in_use += 1

    def release(self, *, channel_closed: bool = False) -> None:
        """Give the slot back; ``channel_closed`` when it held a channel that has now closed."""
        if channel_closed:
            self._recent_closes.append(time.monotonic())
        self.in_use -= 1
        self._wake()

    def opened(self) -> None:
        """A channel opened; after enough of them, allow one more."""
        self._successes += 1
        if self._successes >= _RECOVER_AFTER_OPENS and self.limit < self.maximum:
            self.limit += 1
            self._successes = 0
            self._wake()

    def shrink(self) -> None:
        """The server refused a channel while the caller (still) held a slot."""
        horizon = time.monotonic() - _SERVER_LAG_S
        while self._recent_closes and self._recent_closes[0] < horizon:
            self._recent_closes.popleft()
        counted_by_server = self.in_use - 1 + len(self._recent_closes)
        self.limit = max(1, min(self.limit, counted_by_server))
        self._successes = 0

    def reset(self) -> None:
        """A new connection: the server's per-connection session count starts over."""
        self.limit = self.maximum
        self._successes = 0
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self.in_use
        for fut in list(self._waiters):
            if free <= 0:
                break
            if not fut.done():
                fut.set_result(None)
                free -= 1


class SSHCommandRunner:
    """A :class:`~bot.transports.base.CommandRunner` over one asyncssh connection.

    ``cfg`` gives host, port, user, key file (None: asyncssh's default keys and agent),
    known_hosts (None: ``~/.ssh/known_hosts``; host keys are always verified), the connect
    timeout and keepalive interval (seconds) and ``max_sessions`` (concurrent channels).
    ``name`` is the environment name, used in log lines.

    :meth:`run` raises :class:`CommandTimeout`, :class:`HostKeyNotTrusted`,
    :class:`SSHAuthFailed`, :class:`SSHUnreachable` or :class:`SSHError`.
    """

    def __init__(self, cfg: SSHConfig, *, name: str) -> None:
        self.cfg = cfg
        self.name = name
        self.address = f"{cfg.user}@{cfg.host}:{cfg.port}"
        self._known_hosts_path = cfg.known_hosts or DEFAULT_KNOWN_HOSTS.expanduser()
        self._lock = asyncio.Lock()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._connect_task: asyncio.Task[asyncssh.SSHClientConnection] | None = None
        self._limiter = _AdaptiveLimiter(cfg.max_sessions)
        self._generation = 0

    # ------------------------------------------------------------------ connection

    @property
    def connection_generation(self) -> int:
        """How many connections this runner has opened (1 while the first one lives)."""
        return self._generation

    @property
    def is_connected(self) -> bool:
        """True when a connection is open (it may still turn out dead on next use)."""
        return self._conn is not None and not self._conn.is_closed()

    @property
    def session_limit(self) -> int:
        """The current (adaptive) bound on concurrent channels; at most ``cfg.max_sessions``."""
        return self._limiter.limit

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The live connection, opening it if needed (one attempt shared by all callers).

        A caller that is cancelled (its deadline passed) does not cancel the attempt; the
        attempt itself is bounded by ``cfg.connect_timeout_s``. Raises the SSH errors above.
        """
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            if self._connect_task is None or self._connect_task.done():
                self._connect_task = asyncio.create_task(self._connect(), name=f"ssh-connect-{self.name}")
                self._connect_task.add_done_callback(_retrieve_exception)
            task = self._connect_task
        return await asyncio.shield(task)

    def _drop(self, conn: asyncssh.SSHClientConnection) -> None:
        """Forget ``conn`` (it failed) so the next call reconnects."""
        if self._conn is conn:
            self._conn = None
        conn.abort()

    def _load_known_hosts(self) -> asyncssh.SSHKnownHosts:
        path = self._known_hosts_path
        try:
            return asyncssh.read_known_hosts(str(path))
        except OSError as exc:
            raise HostKeyNotTrusted(
                f"cannot verify the host key of {self.address}: known_hosts file {path} is not "
                f"readable ({exc.strerror or type(exc).__name__}); {self._record_advice()}",
                host=self.address, detail="known_hosts unreadable",
            ) from exc
        except ValueError as exc:
            raise HostKeyNotTrusted(
                f"cannot verify the host key of {self.address}: known_hosts file {path} is "
                f"malformed ({one_line(exc, 100)}); fix it, then {self._record_advice()}",
                host=self.address, detail="known_hosts malformed",
            ) from exc

    def _record_advice(self) -> str:
        return (f"verify the server's host key fingerprint out of band (on the console: "
                f"ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then record it: "
                f"ssh-keyscan -p {self.cfg.port} {self.cfg.host} >> {self._known_hosts_path}")

    def _load_client_keys(self) -> list[asyncssh.SSHKey] | None:
        path = self.cfg.key_file
        if path is None:
            return None
        try:
            return [asyncssh.read_private_key(str(path))]
        except OSError as exc:
            raise SSHError(f"cannot read SSH key file {path} for {self.address}: "
                           f"{exc.strerror or type(exc).__name__}",
                           host=self.address, detail="key file unreadable") from exc
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            raise SSHError(f"cannot load SSH key file {path} for {self.address}: "
                           f"{one_line(exc, 100)} (encrypted keys are not supported)",
                           host=self.address, detail="key file invalid") from exc

    def _host_key_error(self, known_hosts: asyncssh.SSHKnownHosts,
                        exc: asyncssh.HostKeyNotVerifiable) -> HostKeyNotTrusted:
        recorded = known_hosts.match(self.cfg.host, "", self.cfg.port)[0]
        if recorded:
            what = (f"the host key of {self.address} differs from the one recorded in "
                    f"{self._known_hosts_path} (a reinstalled host or a man-in-the-middle)")
            advice = (f"verify the new fingerprint out of band; only if it is genuine remove the old "
                      f"entry (ssh-keygen -R '[{self.cfg.host}]:{self.cfg.port}' -f "
                      f"{self._known_hosts_path}) and {self._record_advice()}")
        else:
            what = f"the host key of {self.address} is not in {self._known_hosts_path}"
            advice = self._record_advice()
        return HostKeyNotTrusted(f"{what}; refusing to connect; {advice}", host=self.address,
                                 detail=one_line(exc.reason, 100))

    async def _connect(self) -> asyncssh.SSHClientConnection:
        known_hosts = self._load_known_hosts()
        client_keys = self._load_client_keys()
        kwargs: dict[str, object] = {}
        if client_keys is not None:
            kwargs.update(client_keys=client_keys, agent_path=None)
        try:
            conn = await asyncssh.connect(
                self.cfg.host,
                port=self.cfg.port,
                username=self.cfg.user,
                known_hosts=known_hosts,
                config=None,  # no ~/.ssh/config surprises: the YAML is the configuration
                password=None,
                preferred_auth="publickey",
                connect_timeout=self.cfg.connect_timeout_s,
                keepalive_interval=self.cfg.keepalive_interval_s,
                keepalive_count_max=KEEPALIVE_COUNT_MAX,
                **kwargs,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise self._host_key_error(known_hosts, exc) from exc
        except asyncssh.PermissionDenied as exc:
            raise SSHAuthFailed(
                f"SSH login to {self.address} was refused: the server rejected our key"
                f" ({self.cfg.key_file or 'default keys'}); add its public key to the user's "
                "authorized_keys", host=self.address, detail=one_line(exc.reason, 100),
            ) from exc
        except TimeoutError as exc:
            raise SSHUnreachable(
                f"cannot reach {self.address}: no SSH handshake within {self.cfg.connect_timeout_s:g}s",
                host=self.address, detail="connect timeout",
            ) from exc
        except OSError as exc:
            reason = _os_reason(exc)
            raise SSHUnreachable(f"cannot reach {self.address}: {reason}", host=self.address,
                                 detail=reason) from exc
        except asyncssh.Error as exc:
            raise SSHError(f"SSH connection to {self.address} failed: {one_line(exc.reason, 150)}",
                           host=self.address, detail=one_line(exc.reason, 100)) from exc
        self._conn = conn
        self._generation += 1
        self._limiter.reset()
        logger.info("ssh connected to %s (environment %s, connection #%d)", self.address, self.name,
                    self._generation)
        return conn

    # ------------------------------------------------------------------ commands

    async def run(self, command: str, *, timeout_s: float,
                  max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES) -> CommandResult:
        """Run ``command`` (one already-quoted shell line) and return its result.

        ``timeout_s`` (seconds) is the local deadline for everything: waiting for a channel
        slot, (re)connecting, and the command itself; past it the channel is closed and
        :class:`CommandTimeout` raised. Each of stdout/stderr keeps its first
        ``max_output_bytes`` bytes (the rest is read and dropped, ``truncated=True``), decoded
        as UTF-8 with replacement characters. Raises the SSH errors of :meth:`connection`.
        """
        start = time.monotonic()
        refusals: list[str] = []
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                return await self._run(command, max_output_bytes, start, refusals)
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            why = (f"; the server refused {len(refusals)} channel request(s), last: {refusals[-1]}"
                   if refusals else "")
            raise CommandTimeout(
                f"command on {self.address} timed out after {timeout_s:g}s (local deadline){why}",
                timeout_s=timeout_s, host=self.address,
            ) from exc

    async def _run(self, command: str, cap: int, start: float, refusals: list[str]) -> CommandResult:
        """Open a channel (retrying refusals with backoff) and collect the command's result.

        Each refusal's reason is appended to ``refusals`` (for the timeout message).
        """
        backoff = _BACKOFF_FIRST_S
        while True:
            conn = await self.connection()
            await self._limiter.acquire()
            try:
                process = await conn.create_process(command, encoding=None, stdin=asyncssh.DEVNULL)
            except asyncssh.ChannelOpenError as exc:
                if conn.is_closed():
                    self._limiter.release()
                    self._drop(conn)
                    continue
                # shrink while still holding our slot: the count then includes only the others
                self._limiter.shrink()
                self._limiter.release()
                refusals.append(one_line(exc.reason, 80) or "channel open refused")
                logger.info("ssh %s refused a channel (%s); concurrency now %d", self.address,
                            one_line(exc.reason, 80), self._limiter.limit)
                await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
                continue
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError, ConnectionError) as exc:
                self._limiter.release()
                logger.info("ssh %s connection lost before the command (%s); reconnecting",
                            self.address, one_line(exc, 80))
                self._drop(conn)
                continue
            except BaseException:
                self._limiter.release()
                raise
            self._limiter.opened()
            try:
                return await self._collect(conn, process, command, cap, start)
            finally:
                self._limiter.release(channel_closed=True)

    async def _collect(self, conn: asyncssh.SSHClientConnection,
                       process: asyncssh.SSHClientProcess[bytes], command: str, cap: int,
                       start: float) -> CommandResult:
        completed = False
        try:
            (out, out_cut), (err, err_cut) = await asyncio.gather(
                _read_capped(process.stdout, cap), _read_capped(process.stderr, cap))
            lost = False
            try:
                await process.wait_closed()
            except (asyncssh.Error, OSError):
                lost = True
            completed = True
        except (asyncssh.ConnectionLost, asyncssh.DisconnectError, ConnectionError) as exc:
            logger.warning("ssh %s connection lost during a command: %s", self.address, one_line(exc, 100))
            self._drop(conn)
            process.close()
            return CommandResult(command=command, exit_status=None, duration_s=time.monotonic() - start)
        finally:
            if not completed:
                process.close()  # deadline or cancellation: do not leave the channel open
        signal_info = process.exit_signal
        status = process.exit_status
        if signal_info is not None or status is None or status < 0 or lost:
            exit_status: int | None = None
            signal_name = signal_info[0] if signal_info else None
        else:
            exit_status, signal_name = status, None
        if exit_status is None and conn.is_closed():
            self._drop(conn)
        return CommandResult(
            command=command,
            exit_status=exit_status,
            signal=signal_name,
            stdout=out.decode("utf-8", errors="replace"),
            stderr=err.decode("utf-8", errors="replace"),
            duration_s=time.monotonic() - start,
            truncated=out_cut or err_cut,
        )

    # ------------------------------------------------------------------ forwarding

    async def open_forward(self, remote_host: str, remote_port: int) -> tuple[int, Closer]:
        """Listen on ``127.0.0.1:<free port>`` and forward each connection to
        ``remote_host:remote_port`` as seen from the SSH host, over the shared connection.

        Returns ``(local_port, closer)``; ``await closer()`` stops listening (idempotent).
        The forward dies with the connection: compare :attr:`connection_generation` to know
        when to open a new one. Raises the SSH errors of :meth:`connection`, or
        :class:`SSHError` when the local listener cannot be created.
        """
        conn = await self.connection()
        try:
            listener = await conn.forward_local_port("127.0.0.1", 0, remote_host, remote_port)
        except (OSError, asyncssh.Error) as exc:
            raise SSHError(f"cannot open a local forward to {remote_host}:{remote_port} via "
                           f"{self.address}: {one_line(exc, 100)}", host=self.address,
                           detail="forward failed") from exc

        async def closer() -> None:
            listener.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await listener.wait_closed()

        return listener.get_port(), closer

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Close the connection (and any connect in progress) and wait until it is closed.

        Idempotent. A later :meth:`run` would open a new connection.
        """
        task, self._connect_task = self._connect_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, SSHError):
                await task
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await conn.wait_closed()
        except TimeoutError:
            conn.abort()
            logger.warning("ssh %s did not close within %gs; aborted", self.address, CLOSE_TIMEOUT_S)


async def _read_capped(stream: asyncssh.SSHReader[bytes], cap: int) -> tuple[bytes, bool]:
    """Read ``stream`` to EOF keeping the first ``cap`` bytes; returns (data, truncated)."""
    chunks: list[bytes] = []
    kept = 0
    truncated = False
    while True:
        chunk = await stream.read(READ_CHUNK_BYTES)
        if not chunk:
            return b"".join(chunks), truncated
        room = cap - kept
        if len(chunk) > room:
            truncated = True
            chunk = chunk[:max(room, 0)]
        if chunk:
            chunks.append(chunk)
            kept += len(chunk)


def _os_reason(exc: OSError) -> str:
    """A short reason for a socket error: ``Connection refused``, ``Name or service not known``."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host name ({exc.strerror or exc})"
    if exc.errno:
        return os.strerror(exc.errno)
    return one_line(exc, 100) or type(exc).__name__


def _retrieve_exception(task: asyncio.Task[asyncssh.SSHClientConnection]) -> None:
    """Mark a connect attempt's exception as seen even if every waiter gave up."""
    if not task.cancelled():
        task.exception()
