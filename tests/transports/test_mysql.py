"""SSHTunnelSqlRunner: real MariaDB on 127.0.0.1:3306 reached through a real sshd's forward."""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.config import MySQLConfig
from bot.errors import CommandTimeout, MySQLAccessDenied, MySQLError, MySQLUnavailable
from bot.transports.base import SqlRunner
from bot.transports.mysql import SSHTunnelSqlRunner
from bot.transports.ssh import SSHCommandRunner
from tests.ports import free_port
from tests.sshd import MariaDBHelper, MySQLTestDB, SSHServer

pytestmark = [pytest.mark.sshd, pytest.mark.mariadb, pytest.mark.timeout(60)]

MakeSSHD = Callable[..., SSHServer]

SCHEMA_QUERY = (
    "SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE AS nullable, "
    "COLUMN_DEFAULT AS default_value FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = %(database)s AND TABLE_NAME = 'nodes' ORDER BY ORDINAL_POSITION"
)


@pytest.fixture
async def ssh(sshd: SSHServer) -> AsyncIterator[SSHCommandRunner]:
    """An SSH runner on the shared sshd, closed after the test."""
    runner = SSHCommandRunner(sshd.ssh_config(), name="test")
    try:
        yield runner
    finally:
        await runner.aclose()


@pytest.fixture
def db(mariadb: MariaDBHelper) -> MySQLTestDB:
    """A fresh qcc_plus-like database (with health_check_model) and its user."""
    return mariadb.create_database()


@pytest.fixture
async def sql(db: MySQLTestDB, ssh: SSHCommandRunner) -> AsyncIterator[SSHTunnelSqlRunner]:
    """A tunnel SQL runner on ``db``, closed after the test (before the SSH runner)."""
    runner = SSHTunnelSqlRunner(db.mysql_config(), ssh)
    try:
        yield runner
    finally:
        await runner.aclose()


def _assert_secret_free(exc: BaseException, *secrets: str) -> None:
    text = f"{exc} {exc!r}"
    for secret in secrets:
        assert secret not in text
    assert "\n" not in str(exc)


async def test_runner_satisfies_the_protocol(sql: SSHTunnelSqlRunner) -> None:
    """SSHTunnelSqlRunner is a SqlRunner (the engine can take it in place of the fake)."""
    assert isinstance(sql, SqlRunner)


@pytest.mark.parametrize("with_model", [True, False], ids=["migrated", "missing-column"])
async def test_schema_query_through_the_tunnel_returns_rows(
    mariadb: MariaDBHelper, ssh: SSHCommandRunner, with_model: bool
) -> None:
    """The runbook's schema query, with a %(database)s parameter, returns the nodes columns as
    dicts through the tunnel; health_check_model is present only where the fixture added it."""
    created = mariadb.create_database(with_health_check_model=with_model)
    runner = SSHTunnelSqlRunner(created.mysql_config(), ssh)
    try:
        rows = await runner.query(SCHEMA_QUERY, {"database": created.database}, timeout_s=10)
    finally:
        await runner.aclose()
    names = [r["name"] for r in rows]
    assert names[:6] == ["id", "name", "base_url", "api_key", "source_protocol", "health_check_method"]
    assert ("health_check_model" in names) is with_model
    assert set(rows[0]) == {"name", "type", "nullable", "default_value"}


async def test_query_rows_are_dicts_and_positional_params_work(sql: SSHTunnelSqlRunner) -> None:
    """Rows come back as column → value dicts; %s placeholders take a sequence."""
    rows = await sql.query("SELECT id, name FROM nodes WHERE id IN (%s, %s) ORDER BY id", ["n1", "n2"],
                           timeout_s=10)
    assert rows == [{"id": "n1", "name": "primary"}, {"id": "n2", "name": "backup"}]


async def test_query_session_is_read_only(sql: SSHTunnelSqlRunner, mariadb: MariaDBHelper,
                                          db: MySQLTestDB) -> None:
    """query() runs READ ONLY: a write is refused (MySQLError 1792) and changes nothing."""
    with pytest.raises(MySQLError) as info:
        await sql.query("INSERT INTO nodes (id, base_url) VALUES ('n3', 'x')", timeout_s=10)
    assert "1792" in str(info.value)
    assert type(info.value) is MySQLError
    count = mariadb.admin_query(f"SELECT COUNT(*) AS n FROM `{db.database}`.nodes")
    assert count == [{"n": 2}]


async def test_execute_writes_and_returns_affected_rows(
    mariadb: MariaDBHelper, ssh: SSHCommandRunner
) -> None:
    """execute() is read-write and autocommitted: the fix's ADD COLUMN lands and an UPDATE
    reports its affected row count."""
    created = mariadb.create_database(with_health_check_model=False)
    runner = SSHTunnelSqlRunner(created.mysql_config(), ssh)
    try:
        await runner.execute(
            "ALTER TABLE nodes ADD COLUMN health_check_model VARCHAR(128) "
            "DEFAULT 'claude-haiku-4-5-20251001' AFTER health_check_method", timeout_s=10)
        assert await runner.execute("UPDATE nodes SET name = %s", ["renamed"], timeout_s=10) == 2
        names = [r["name"] for r in await runner.query(SCHEMA_QUERY, {"database": created.database},
                                                        timeout_s=10)]
    finally:
        await runner.aclose()
    assert names[6] == "health_check_model"
    rows = mariadb.admin_query(f"SELECT DISTINCT name FROM `{created.database}`.nodes")
    assert rows == [{"name": "renamed"}]


async def test_sql_error_carries_code_and_message(sql: SSHTunnelSqlRunner) -> None:
    """A server error is a plain MySQLError with the server's code and message on one line."""
    with pytest.raises(MySQLError) as info:
        await sql.query("SELECT health_check_modelx FROM nodes", timeout_s=10)
    assert type(info.value) is MySQLError
    assert "1054" in str(info.value) and "health_check_modelx" in str(info.value)
    assert info.value.detail == "error 1054"
    assert "\n" not in str(info.value)


async def test_wrong_password_raises_access_denied(
    sql: SSHTunnelSqlRunner, db: MySQLTestDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong password (read from password_env at connect) raises MySQLAccessDenied (1045)
    and neither the wrong nor the real password appears in the error."""
    monkeypatch.setenv(db.password_env, "Wrong-Pa55word-xyz")
    with pytest.raises(MySQLAccessDenied) as info:
        await sql.query("SELECT 1", timeout_s=10)
    assert "1045" in str(info.value)
    _assert_secret_free(info.value, "Wrong-Pa55word-xyz", db.password)


async def test_password_echoed_by_the_server_is_scrubbed(sql: SSHTunnelSqlRunner, db: MySQLTestDB) -> None:
    """Even when the server's message quotes the password (here as a table name), the raised
    error shows *** instead."""
    with pytest.raises(MySQLError) as info:
        await sql.query(f"SELECT * FROM `{db.password}`", timeout_s=10)
    assert "1146" in str(info.value) and "***" in str(info.value)
    _assert_secret_free(info.value, db.password)


async def test_nothing_listening_raises_unavailable(db: MySQLTestDB, ssh: SSHCommandRunner) -> None:
    """With nothing listening on the forwarded port, the query fails fast with MySQLUnavailable."""
    runner = SSHTunnelSqlRunner(db.mysql_config(port=free_port()), ssh)
    start = time.monotonic()
    try:
        with pytest.raises(MySQLUnavailable) as info:
            await runner.query("SELECT 1", timeout_s=10)
    finally:
        await runner.aclose()
    assert time.monotonic() - start < 3
    _assert_secret_free(info.value, db.password)


async def test_silent_server_raises_unavailable_within_connect_timeout(
    db: MySQLTestDB, ssh: SSHCommandRunner
) -> None:
    """A server that accepts TCP but never sends a handshake yields MySQLUnavailable after
    connect_timeout_s (1 s), not a hang until the query deadline (10 s)."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    runner = SSHTunnelSqlRunner(
        db.mysql_config(port=server.sockets[0].getsockname()[1], connect_timeout_s=1), ssh)
    try:
        start = time.monotonic()
        with pytest.raises(MySQLUnavailable, match="no handshake within 1s") as info:
            await runner.query("SELECT 1", timeout_s=10)
        assert time.monotonic() - start < 2.5
        assert accepted  # the TCP connection really was accepted
        _assert_secret_free(info.value, db.password)
    finally:
        await runner.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_query_deadline_raises_command_timeout(sql: SSHTunnelSqlRunner) -> None:
    """A query running past timeout_s raises CommandTimeout(timeout_s) at the deadline."""
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        await sql.query("SELECT SLEEP(5)", timeout_s=1)
    assert time.monotonic() - start < 2
    assert info.value.timeout_s == 1


async def test_server_side_statement_limit_is_set(sql: SSHTunnelSqlRunner) -> None:
    """The session carries a server-side statement limit matching the deadline (MariaDB:
    max_statement_time in seconds), so an abandoned query does not run on."""
    rows = await sql.query("SELECT @@SESSION.max_statement_time AS t, @@SESSION.tx_read_only AS ro",
                           timeout_s=7)
    assert float(rows[0]["t"]) == 7.0
    assert int(rows[0]["ro"]) == 1


async def test_tunnel_is_reused_across_calls(db: MySQLTestDB, make_sshd: MakeSSHD) -> None:
    """Five queries use one forward over one SSH connection (one login in the sshd log)."""
    server = make_sshd()
    ssh = SSHCommandRunner(server.ssh_config(), name="test")
    runner = SSHTunnelSqlRunner(db.mysql_config(), ssh)
    try:
        ports = set()
        for _ in range(5):
            assert await runner.query("SELECT 1 AS one", timeout_s=10) == [{"one": 1}]
            ports.add(runner.local_port)
        await ssh.run("true", timeout_s=10)
        assert len(ports) == 1
    finally:
        await runner.aclose()
        await ssh.aclose()
    assert server.count_logins() == 1


async def test_tunnel_is_reopened_after_the_ssh_connection_drops(
    db: MySQLTestDB, make_sshd: MakeSSHD
) -> None:
    """When the SSH connection is lost, the next query reconnects SSH and opens a new forward."""
    server = make_sshd()
    ssh = SSHCommandRunner(server.ssh_config(), name="test")
    runner = SSHTunnelSqlRunner(db.mysql_config(), ssh)
    try:
        await runner.query("SELECT 1", timeout_s=10)
        server.drop_connections()
        for _ in range(50):
            if not ssh.is_connected:
                break
            await asyncio.sleep(0.02)
        assert await runner.query("SELECT 2 AS two", timeout_s=10) == [{"two": 2}]
        assert ssh.connection_generation == 2
    finally:
        await runner.aclose()
        await ssh.aclose()


async def test_ssh_failure_becomes_mysql_unavailable(db: MySQLTestDB, make_sshd: MakeSSHD) -> None:
    """If the SSH hop cannot be opened, the query raises MySQLUnavailable explaining the tunnel."""
    server = make_sshd()
    server.stop()
    ssh = SSHCommandRunner(server.ssh_config(), name="test")
    runner = SSHTunnelSqlRunner(db.mysql_config(), ssh)
    try:
        with pytest.raises(MySQLUnavailable, match="SSH tunnel failed") as info:
            await runner.query("SELECT 1", timeout_s=10)
    finally:
        await runner.aclose()
        await ssh.aclose()
    _assert_secret_free(info.value, db.password)


async def test_concurrent_queries_share_the_tunnel(sql: SSHTunnelSqlRunner) -> None:
    """Ten concurrent queries each get their own MySQL connection through the one forward."""
    results = await asyncio.gather(*(sql.query("SELECT %s AS n", [i], timeout_s=10) for i in range(10)))
    assert [r[0]["n"] for r in results] == list(range(10))


def test_no_resources_outlive_the_event_loop(db: MySQLTestDB, sshd: SSHServer) -> None:
    """Queries that succeed, fail, time out and hit a silent server leave no unclosed socket or
    transport behind once the loop ends: no ResourceWarning, no 'Event loop is closed'."""
    unraisable: list[Any] = []
    previous_hook = sys.unraisablehook

    async def main() -> None:
        async def silent(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            writers.append(w)

        writers: list[asyncio.StreamWriter] = []
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        ssh = SSHCommandRunner(sshd.ssh_config(), name="test")
        good = SSHTunnelSqlRunner(db.mysql_config(), ssh)
        quiet = SSHTunnelSqlRunner(
            MySQLConfig(**{**db.mysql_config().model_dump(), "port": server.sockets[0].getsockname()[1],
                           "connect_timeout_s": 0.5}), ssh)
        try:
            await good.query("SELECT 1", timeout_s=10)
            with pytest.raises(MySQLError):
                await good.query("SELECT * FROM nowhere", timeout_s=10)
            with pytest.raises(CommandTimeout):
                await good.query("SELECT SLEEP(3)", timeout_s=0.5)
            with pytest.raises(MySQLUnavailable):
                await quiet.query("SELECT 1", timeout_s=10)
        finally:
            await quiet.aclose()
            await good.aclose()
            await ssh.aclose()
            for w in writers:
                w.close()
            server.close()
            await server.wait_closed()

    sys.unraisablehook = unraisable.append
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            asyncio.run(main())
            gc.collect()
    finally:
        sys.unraisablehook = previous_hook
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, [str(w.message) for w in leaks]
    assert not unraisable, [repr(u.exc_value) for u in unraisable]
