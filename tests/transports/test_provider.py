"""SSHTransportProvider: per-environment transports, cached, closed in order."""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import Settings, load_settings
from bot.errors import UnknownEnvironment
from bot.transports.mysql import SSHTunnelSqlRunner
from bot.transports.provider import SSHTransportProvider
from bot.transports.ssh import SSHCommandRunner
from tests.sshd import MySQLTestDB, SSHServer

pytestmark = [pytest.mark.timeout(60)]


def _env(server: SSHServer, db: MySQLTestDB | None) -> dict[str, Any]:
    env: dict[str, Any] = {
        "ssh": server.ssh_config().model_dump(mode="json"),
        "compose_project": "qcc_test",
    }
    if db is not None:
        env["mysql"] = db.mysql_config().model_dump(mode="json")
    return env


def _settings(envs: dict[str, Any]) -> Settings:
    return load_settings(data={"environments": envs}, env={})


async def test_transports_are_created_once_per_environment(sshd: SSHServer) -> None:
    """get() builds an environment's transports on first use without connecting, and returns
    the same objects afterwards; an environment without MySQL has sql None."""
    provider = SSHTransportProvider(_settings({"test": _env(sshd, None)}))
    try:
        first = await provider.get("test")
        assert isinstance(first.shell, SSHCommandRunner)
        assert first.sql is None and first.name == "test"
        assert not first.shell.is_connected
        assert await provider.get("test") is first
    finally:
        await provider.aclose()


async def test_unknown_environment_is_a_user_error(sshd: SSHServer) -> None:
    """An unconfigured name raises UnknownEnvironment listing the configured ones."""
    provider = SSHTransportProvider(_settings({"test": _env(sshd, None)}))
    with pytest.raises(UnknownEnvironment, match="configured: test"):
        await provider.get("prod2")
    await provider.aclose()


@pytest.mark.sshd
@pytest.mark.mariadb
async def test_environment_transports_work_and_close_mysql_first(
    sshd: SSHServer, mariadb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configured environment runs commands and queries over one SSH connection; aclose()
    closes the MySQL tunnel before the SSH connection, and is idempotent."""
    db = mariadb.create_database()
    provider = SSHTransportProvider(_settings({"test": _env(sshd, db), "other": _env(sshd, None)}))
    transports = await provider.get("test")
    assert isinstance(transports.sql, SSHTunnelSqlRunner)
    assert (await transports.shell.run("echo ok", timeout_s=10)).stdout == "ok\n"
    assert await transports.sql.query("SELECT 1 AS one", timeout_s=10) == [{"one": 1}]
    assert transports.sql.ssh is transports.shell

    order: list[str] = []
    sql_close, ssh_close = transports.sql.aclose, transports.shell.aclose

    async def record_sql() -> None:
        order.append("mysql")
        await sql_close()

    async def record_ssh() -> None:
        order.append("ssh")
        await ssh_close()

    monkeypatch.setattr(transports.sql, "aclose", record_sql)
    monkeypatch.setattr(transports.shell, "aclose", record_ssh)
    await provider.aclose()
    await provider.aclose()
    assert order == ["mysql", "ssh"]
    assert not transports.shell.is_connected
    assert transports.sql.local_port is None
