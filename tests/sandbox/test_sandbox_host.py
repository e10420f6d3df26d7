"""SandboxHost: an asyncssh server that runs commands through the stand-ins, as a real host would."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from bot.config import check_environment_files
from qcc_sandbox import MySQLTarget, SandboxHost, drop_database, has_column, load_scenario, prepare_mysql
from tests.ports import free_port


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[SandboxHost]:
    """A started SandboxHost (migration_failed) without touching MariaDB."""
    async with SandboxHost("migration_failed", root=tmp_path / "host", prepare_db=False) as h:
        yield h


def _connect(h: SandboxHost) -> Any:
    return asyncssh.connect(
        h.host, h.port, username="anyone", client_keys=[str(h.key_file)], known_hosts=str(h.known_hosts)
    )


async def test_exec_returns_bytes_and_exit_status(host: SandboxHost) -> None:
    """stdout and stderr come back separately as bytes; the exit status is the command's."""
    async with _connect(host) as conn:
        res = await conn.run(
            "docker logs --tail 1 qcc_test_proxy; printf '\\377\\376'; exit 3", encoding=None
        )
    assert res.exit_status == 3
    assert res.stdout == b"\xff\xfe"
    assert res.stderr.rstrip().endswith(
        b"Error 1054 (42S22): Unknown column 'health_check_model' in 'field list'"
    )


async def test_signal_is_reported_as_a_signal(host: SandboxHost) -> None:
    """A command killed by a signal reports that signal, never a success status."""
    async with _connect(host) as conn:
        res = await conn.run("kill -TERM $$", encoding=None)
    assert res.exit_signal is not None and res.exit_signal[0] == "TERM"
    assert res.exit_status != 0


async def test_commands_see_the_sandbox_path(host: SandboxHost) -> None:
    """PATH starts with the stand-ins and QCC_SANDBOX_DIR names the scenario's directory."""
    async with _connect(host) as conn:
        res = await conn.run('command -v docker; echo "$QCC_SANDBOX_DIR"', check=True)
    docker, sandbox = str(res.stdout).split()
    assert docker.endswith("sandbox/qcc_sandbox/bin/docker") and sandbox == str(host.sandbox.path)
    assert host.sandbox.count("docker") == 0
    assert host.sandbox.sessions()[-1]["command"].startswith("command -v docker")


async def test_forwarding_only_to_loopback(host: SandboxHost) -> None:
    """direct-tcpip to 127.0.0.1 works (the MySQL tunnel); any other destination is refused."""
    got: list[bytes] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.append(await reader.read(5))
        writer.write(b"pong")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with _connect(host) as conn:
            reader, writer = await conn.open_connection("127.0.0.1", port)
            writer.write(b"ping!")
            assert await reader.read(4) == b"pong"
            writer.close()
            with pytest.raises(asyncssh.ChannelOpenError, match="only to loopback"):
                await conn.open_connection("192.0.2.1", 3306)
    finally:
        server.close()
        await server.wait_closed()
    assert got == [b"ping!"]
    forwards = [s for s in host.sandbox.sessions() if "forward" in s]
    assert [s["allowed"] for s in forwards] == [True, False]


async def test_wrong_key_is_refused(host: SandboxHost, tmp_path: Path) -> None:
    """Only the generated client key is accepted."""
    other = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        async with asyncssh.connect(
            host.host, host.port, username="x", client_keys=[other], known_hosts=str(host.known_hosts)
        ):
            pass


async def test_closing_the_channel_kills_the_command(host: SandboxHost) -> None:
    """When the client gives up on a hanging command, its process group is killed."""
    async with _connect(host) as conn:
        proc = await conn.create_process("sleep 300")
        await asyncio.sleep(0.3)
        assert len(host._procs) == 1
        proc.close()
        for _ in range(50):
            if not host._procs:
                break
            await asyncio.sleep(0.05)
    assert not host._procs


async def test_settings_point_at_the_host(host: SandboxHost) -> None:
    """settings(): one `demo` environment with this port, key, known_hosts and the checkout as workdir."""
    settings = host.settings()
    env = settings.environment("demo")
    assert env.ssh.port == host.port and env.ssh.key_file == host.key_file
    assert env.workdir == str(host.sandbox.checkout) and env.compose_project == "qcc_test"
    assert env.mysql is not None and env.mysql.port == 3306 and env.mysql.password_env is None
    assert check_environment_files(settings) == []
    assert settings.slack.bot_token is None


async def test_unreachable_database_gets_a_closed_port(tmp_path: Path) -> None:
    """mysql_unavailable points the bot's MySQL at a loopback port where nothing listens."""
    async with SandboxHost("mysql_unavailable", root=tmp_path / "h", prepare_db=False) as h:
        port = h.settings().environment("demo").mysql.port  # type: ignore[union-attr]
        assert port != 3306
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0


async def test_prepare_mysql_without_server_returns_false() -> None:
    """No MySQL there: prepare_mysql reports False quickly instead of raising."""
    closed = free_port()
    assert await prepare_mysql(load_scenario("healthy"), MySQLTarget(port=closed), timeout_s=1) is False


@pytest.mark.mariadb
async def test_prepare_mysql_creates_the_scenario_schema() -> None:
    """On the local MariaDB the nodes table lacks health_check_model for migration_failed only."""
    target = MySQLTarget(database=f"qcc_sbx_{secrets.token_hex(4)}")
    try:
        assert await prepare_mysql(load_scenario("migration_failed"), target)
        assert await has_column(target, "nodes", "health_check_model") is False
        assert await has_column(target, "nodes", "health_check_method") is True
        assert await prepare_mysql(load_scenario("healthy"), target)
        assert await has_column(target, "nodes", "health_check_model") is True
    finally:
        await drop_database(target)


@pytest.mark.mariadb
async def test_restart_consults_the_real_schema(tmp_path: Path) -> None:
    """migration_failed: the proxy restarts healthy only once the column really exists in MariaDB."""
    target = MySQLTarget(database=f"qcc_sbx_{secrets.token_hex(4)}")
    try:
        async with SandboxHost("migration_failed", root=tmp_path / "h", mysql=target) as h:
            assert h.mysql_ready
            restart = (
                f"cd {h.sandbox.checkout} && docker compose -p qcc_test -f docker-compose.test.yml "
                "restart proxy && sleep 1 && docker inspect -f '{{.State.Status}}' qcc_test_proxy"
            )
            async with _connect(h) as conn:
                assert (await conn.run(restart, check=True)).stdout == "exited\n"
                res = await conn.run(
                    "docker exec qcc_test_mysql mysql -uroot -pIGNORED qcc_proxy -e "
                    '"ALTER TABLE nodes ADD COLUMN health_check_model VARCHAR(128) '
                    "DEFAULT 'claude-haiku-4-5-20251001' AFTER health_check_method\""
                )
                assert res.exit_status == 0, res.stderr
                assert (await conn.run(restart, check=True)).stdout == "running\n"
            assert await has_column(target, "nodes", "health_check_model") is True
    finally:
        await drop_database(target)


async def test_temp_dir_lives_only_inside_the_cleanup_scope(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Constructing a SandboxHost creates nothing; a start that fails half-way removes its temp dir."""
    import os
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    h = SandboxHost("healthy", prepare_db=False)
    assert os.listdir(tmp_path) == [], "nothing is created before start()"
    with pytest.raises(RuntimeError, match="not started"):
        _ = h.root

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        assert [n for n in os.listdir(tmp_path) if n.startswith("qcc-sandbox-")], "start() made the temp dir"
        raise OSError("cannot listen")

    monkeypatch.setattr(asyncssh, "create_server", refuse)
    with pytest.raises(OSError, match="cannot listen"):
        async with h:
            pass
    assert os.listdir(tmp_path) == [], "the failed start left its temp dir behind"
