"""Run SQL on an environment's MySQL through an SSH local port forward.

:class:`SSHTunnelSqlRunner` is the :class:`~bot.transports.base.SqlRunner` of one
environment. The forward (``127.0.0.1:<free port>`` → ``mysql.host:mysql.port`` as seen from
the SSH host) is opened lazily over the environment's shared SSH connection and reused; each
call opens its own short aiomysql connection through it and closes it before returning.

Diagnosis queries run in a ``READ ONLY`` session with a server-side statement limit; approved
fixes use :meth:`SSHTunnelSqlRunner.execute`. Errors are translated once, here::

    1044 / 1045 / 1142 / 1143 / 1227          -> MySQLAccessDenied
    2002 / 2003 / 2006 / 2013 / 2055 / 1040 / 1053,
    SSH tunnel failure, silent server         -> MySQLUnavailable
    local deadline                            -> CommandTimeout
    any other server error                    -> MySQLError ("error <code>: <message>")

Messages name ``user@host:port`` and the SSH hop, never the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import aiomysql
import pymysql

from bot.config import MySQLConfig
from bot.errors import CommandTimeout, MySQLAccessDenied, MySQLError, MySQLUnavailable, SSHError
from bot.transports.base import one_line
from bot.transports.ssh import Closer, SSHCommandRunner

logger = logging.getLogger(__name__)

ACCESS_DENIED_CODES = frozenset({1044, 1045, 1142, 1143, 1227})
UNAVAILABLE_CODES = frozenset({1040, 1053, 2002, 2003, 2006, 2013, 2055})
QUIT_TIMEOUT_S = 1.0

Params = Mapping[str, Any] | Sequence[Any] | None


def _code_and_message(exc: pymysql.err.MySQLError) -> tuple[int | None, str]:
    """``(server error code, message)`` from a PyMySQL/aiomysql error (code None if absent)."""
    args = exc.args
    if len(args) >= 2 and isinstance(args[0], int):
        return (args[0] or None), str(args[1])
    return None, " ".join(str(a) for a in args) or type(exc).__name__


class SSHTunnelSqlRunner:
    """A :class:`~bot.transports.base.SqlRunner` for ``cfg`` over ``ssh``'s connection.

    The password is read from ``$<cfg.password_env>`` at each connect. Every call is bounded
    by its ``timeout_s`` (seconds); connecting (tunnel plus MySQL handshake) is bounded by
    ``cfg.connect_timeout_s``. Raises :class:`MySQLAccessDenied`, :class:`MySQLUnavailable`,
    :class:`MySQLError` and :class:`CommandTimeout`.
    """

    def __init__(self, cfg: MySQLConfig, ssh: SSHCommandRunner) -> None:
        self.cfg = cfg
        self.ssh = ssh
        self.host = f"{cfg.host}:{cfg.port}"
        self.where = f"{cfg.user}@{cfg.host}:{cfg.port} (via {ssh.address})"
        self._lock = asyncio.Lock()
        self._port: int | None = None
        self._closer: Closer | None = None
        self._generation = -1

    # ------------------------------------------------------------------ public API

    @property
    def local_port(self) -> int | None:
        """The local end of the SSH forward (None until the first call opens it)."""
        return self._port

    async def query(self, sql: str, params: Params = None, *, timeout_s: float) -> list[dict[str, Any]]:
        """Run one read-only statement; returns its rows as dicts (column name → value).

        ``params`` fill ``%s`` / ``%(name)s`` placeholders. The session is
        ``TRANSACTION READ ONLY``, so a write fails with :class:`MySQLError` (1792).
        """
        result = await self._call(sql, params, timeout_s, read_only=True)
        assert isinstance(result, list)  # noqa: S101 - read-only calls fetch rows
        return result

    async def execute(self, sql: str, params: Params = None, *, timeout_s: float) -> int:
        """Run one write statement (approved fixes only), autocommitted; returns affected rows."""
        result = await self._call(sql, params, timeout_s, read_only=False)
        assert isinstance(result, int)  # noqa: S101 - writes report a row count
        return result

    async def aclose(self) -> None:
        """Stop the local forward; idempotent. The SSH connection is the SSH runner's to close."""
        async with self._lock:
            await self._close_forward()

    # ------------------------------------------------------------------ internals

    async def _close_forward(self) -> None:
        closer, self._closer, self._port = self._closer, None, None
        if closer is not None:
            await closer()

    async def _local_port(self) -> int:
        """The local end of the forward, (re)opened when the SSH connection is new."""
        async with self._lock:
            if (self._port is not None and self.ssh.is_connected
                    and self._generation == self.ssh.connection_generation):
                return self._port
            await self._close_forward()
            try:
                port, closer = await self.ssh.open_forward(self.cfg.host, self.cfg.port)
            except SSHError as exc:
                raise MySQLUnavailable(f"MySQL {self.where} is unavailable: the SSH tunnel failed: {exc}",
                                       host=self.host, detail="tunnel failed") from exc
            self._port, self._closer = port, closer
            self._generation = self.ssh.connection_generation
            return port

    async def _connect(self) -> aiomysql.Connection:
        port = await self._local_port()
        password = self.cfg.password().get_secret_value()
        conn = aiomysql.Connection(
            host="127.0.0.1", port=port, user=self.cfg.user, password=password, db=self.cfg.database,
            connect_timeout=self.cfg.connect_timeout_s, autocommit=True, charset="utf8mb4",
            cursorclass=aiomysql.DictCursor, program_name="qcc-chatops",
        )
        try:
            # aiomysql's own connect_timeout covers only the TCP connect, which the local
            # forward always accepts; the handshake of a silent server would hang. So bound the
            # whole handshake here. This is what aiomysql.connect() does (Connection(...) then
            # _connect()), but holding the object lets us close it on *any* cancellation point
            # (aiomysql itself closes only when cancelled inside a packet read).
            async with asyncio.timeout(self.cfg.connect_timeout_s):
                await conn._connect()
        except TimeoutError as exc:
            conn.close()
            raise MySQLUnavailable(
                f"MySQL {self.where} is unavailable: no handshake within {self.cfg.connect_timeout_s:g}s",
                host=self.host, detail="connect timeout") from exc
        except pymysql.err.OperationalError as exc:
            conn.close()
            code, _ = _code_and_message(exc)
            if code != 2013:
                raise
            raise MySQLUnavailable(
                f"MySQL {self.where} is unavailable: error 2013: the connection closed during the "
                f"handshake (is anything listening on {self.host} as seen from the SSH host?)",
                host=self.host, detail="error 2013") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    async def _prepare(self, conn: aiomysql.Connection, timeout_s: float, *, read_only: bool) -> None:
        """Read-only mode (for queries) and a best-effort server-side statement limit."""
        async with conn.cursor() as cur:
            if read_only:
                await cur.execute("SET SESSION TRANSACTION READ ONLY")
            if "mariadb" in (conn.get_server_info() or "").lower():
                limit_sql, value = "SET SESSION max_statement_time = %s", float(math.ceil(timeout_s))
            else:
                limit_sql, value = "SET SESSION max_execution_time = %s", int(math.ceil(timeout_s) * 1000)
            try:
                await cur.execute(limit_sql, (value,))
            except pymysql.err.MySQLError as exc:
                code, _ = _code_and_message(exc)
                if code in UNAVAILABLE_CODES:
                    raise
                logger.debug("MySQL %s has no statement limit (%s); relying on the local deadline",
                             self.where, code)

    async def _call(self, sql: str, params: Params, timeout_s: float, *,
                    read_only: bool) -> list[dict[str, Any]] | int:
        deadline = asyncio.timeout(timeout_s)
        conn: aiomysql.Connection | None = None
        try:
            async with deadline:
                conn = await self._connect()
                await self._prepare(conn, timeout_s, read_only=read_only)
                async with conn.cursor() as cur:
                    await cur.execute(sql, params)
                    result: list[dict[str, Any]] | int
                    result = list(await cur.fetchall()) if read_only else int(cur.rowcount)
                with contextlib.suppress(TimeoutError, OSError, pymysql.err.MySQLError):
                    async with asyncio.timeout(QUIT_TIMEOUT_S):
                        await conn.ensure_closed()  # polite COM_QUIT; no "aborted connection" noise
                return result
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            raise CommandTimeout(f"MySQL statement on {self.where} timed out after {timeout_s:g}s",
                                 timeout_s=timeout_s, host=self.host) from exc
        except pymysql.err.MySQLError as exc:
            raise self._translate(exc) from exc
        finally:
            if conn is not None:
                conn.close()

    def _translate(self, exc: pymysql.err.MySQLError) -> MySQLError:
        code, message = _code_and_message(exc)
        text = one_line(message, 300)
        password = self.cfg.password().get_secret_value()
        if len(password) >= 4:  # as bot.config.known_secrets: shorter values are ordinary words
            text = text.replace(password, "***")
        label = f"error {code}" if code is not None else type(exc).__name__
        if code in ACCESS_DENIED_CODES:
            return MySQLAccessDenied(f"MySQL {self.where} denied access: {label}: {text}",
                                     host=self.host, detail=label)
        if code in UNAVAILABLE_CODES or isinstance(exc, pymysql.err.InterfaceError):
            return MySQLUnavailable(f"MySQL {self.where} is unavailable: {label}: {text}",
                                    host=self.host, detail=label)
        return MySQLError(f"MySQL {label} on {self.where}: {text}", host=self.host, detail=label)
