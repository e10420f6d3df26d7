"""SSHCommandRunner against a real OpenSSH server on loopback (tests/sshd.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import asyncssh
import pytest

from bot.errors import (
    CommandTimeout,
    HostKeyNotTrusted,
    SSHAuthFailed,
    SSHError,
    SSHUnreachable,
)
from bot.transports.base import CommandRunner
from bot.transports.ssh import SSHCommandRunner
from tests.sshd import SSHServer

pytestmark = [pytest.mark.sshd, pytest.mark.timeout(60)]

MakeSSHD = Callable[..., SSHServer]


@pytest.fixture
async def runner(sshd: SSHServer):
    """A runner on the shared sshd, closed after the test."""
    r = SSHCommandRunner(sshd.ssh_config(), name="test")
    try:
        yield r
    finally:
        await r.aclose()


def _other_key(tmp_path: Path) -> Path:
    path = tmp_path / "stranger_ed25519"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(path))
    path.chmod(0o600)
    return path


async def test_runner_satisfies_the_protocol(runner: SSHCommandRunner) -> None:
    """SSHCommandRunner is a CommandRunner (the engine can take it in place of the fake)."""
    assert isinstance(runner, CommandRunner)


async def test_command_output_and_exit_status(runner: SSHCommandRunner) -> None:
    """A command's stdout, stderr (kept apart) and exit status 0 come back, with a duration."""
    res = await runner.run("echo out; echo err >&2", timeout_s=10)
    assert (res.exit_status, res.stdout, res.stderr) == (0, "out\n", "err\n")
    assert res.ok and res.signal is None and not res.truncated
    assert res.command == "echo out; echo err >&2"
    assert 0 <= res.duration_s < 10


async def test_nonzero_exit_is_a_result_not_an_error(runner: SSHCommandRunner) -> None:
    """A command that ran and failed is a CommandResult with its exit status, not an exception."""
    res = await runner.run("echo partial; exit 3", timeout_s=10)
    assert res.exit_status == 3 and not res.ok
    assert res.stdout == "partial\n"


async def test_non_utf8_bytes_are_replaced_and_the_rest_kept(runner: SSHCommandRunner) -> None:
    """Invalid UTF-8 becomes U+FFFD; the text before and after it (and valid UTF-8) survives."""
    res = await runner.run(r"printf 'before \377\376 middle \342\234\223 after\n'; printf 'e\377rr' >&2",
                           timeout_s=10)
    assert res.ok
    assert res.stdout == "before \ufffd\ufffd middle \u2713 after\n"
    assert res.stderr == "e\ufffdrr"


async def test_output_cap_truncates_each_stream_and_drains_the_rest(runner: SSHCommandRunner) -> None:
    """Past max_output_bytes a stream keeps its first bytes, sets truncated, and the command
    still completes (the excess is read and dropped, so the remote side never blocks)."""
    res = await runner.run("head -c 300000 /dev/zero | tr '\\0' x; echo small >&2; echo done-marker",
                           timeout_s=20, max_output_bytes=1000)
    assert res.exit_status == 0
    assert res.truncated
    assert res.stdout == "x" * 1000
    assert res.stderr == "small\n"


async def test_output_under_the_cap_is_not_truncated(runner: SSHCommandRunner) -> None:
    """Output exactly at the cap is complete and not marked truncated."""
    res = await runner.run("printf 'abcd'", timeout_s=10, max_output_bytes=4)
    assert (res.stdout, res.truncated) == ("abcd", False)


async def test_signal_killed_command_has_no_exit_status(runner: SSHCommandRunner) -> None:
    """A command killed by a signal reports exit_status None with the signal name, never success."""
    res = await runner.run("echo before; kill -KILL $$", timeout_s=10)
    assert res.exit_status is None
    assert res.signal == "KILL"
    assert not res.ok
    assert res.stdout == "before\n"


async def test_local_deadline_raises_command_timeout(runner: SSHCommandRunner) -> None:
    """`sleep 30` with a 1 s deadline raises CommandTimeout(timeout_s=1) after about 1 s, and
    the runner (and its connection) still works afterwards."""
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        await runner.run("sleep 30", timeout_s=1)
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 2.5
    assert info.value.timeout_s == 1
    assert "\n" not in str(info.value)
    assert runner.connection_generation == 1
    assert (await runner.run("echo still-fine", timeout_s=10)).stdout == "still-fine\n"
    assert runner.connection_generation == 1


@pytest.mark.parametrize("connected_first", [True, False], ids=["established", "during-connect"])
async def test_stalled_server_times_out_within_the_deadline(
    make_sshd: MakeSSHD, connected_first: bool
) -> None:
    """With sshd frozen (SIGSTOP), a run raises CommandTimeout within its deadline, whether the
    connection was already up or is being opened; after SIGCONT the runner works again."""
    server = make_sshd()
    r = SSHCommandRunner(server.ssh_config(connect_timeout_s=10), name="stall")
    try:
        if connected_first:
            await r.run("true", timeout_s=10)
        server.pause()
        start = time.monotonic()
        with pytest.raises(CommandTimeout):
            await r.run("echo hi", timeout_s=1)
        assert time.monotonic() - start < 1.8
        server.resume()
        assert (await r.run("echo back", timeout_s=10)).stdout == "back\n"
    finally:
        server.resume()
        await r.aclose()


async def test_wrong_client_key_raises_auth_failed(sshd: SSHServer, tmp_path: Path) -> None:
    """A key the server does not accept raises SSHAuthFailed naming user@host:port on one line."""
    r = SSHCommandRunner(sshd.ssh_config(key_file=_other_key(tmp_path)), name="test")
    try:
        with pytest.raises(SSHAuthFailed) as info:
            await r.run("true", timeout_s=10)
    finally:
        await r.aclose()
    assert sshd.address in str(info.value)
    assert info.value.host == sshd.address
    assert "\n" not in str(info.value)
    assert isinstance(info.value.__cause__, asyncssh.PermissionDenied)


async def test_unknown_host_key_is_refused_before_login(make_sshd: MakeSSHD, tmp_path: Path) -> None:
    """A host absent from known_hosts raises HostKeyNotTrusted telling the admin to verify and
    record the key (ssh-keyscan); the client never authenticates."""
    server = make_sshd()
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    r = SSHCommandRunner(server.ssh_config(known_hosts=empty), name="test")
    try:
        with pytest.raises(HostKeyNotTrusted) as info:
            await r.run("true", timeout_s=10)
    finally:
        await r.aclose()
    msg = str(info.value)
    assert f"ssh-keyscan -p {server.port} 127.0.0.1 >> {empty}" in msg
    assert "fingerprint" in msg and "\n" not in msg
    assert server.count_logins() == 0


async def test_changed_host_key_is_refused_before_login(make_sshd: MakeSSHD, tmp_path: Path) -> None:
    """A host whose key differs from the recorded one raises HostKeyNotTrusted saying it
    differs; the client never authenticates (no bypass)."""
    server = make_sshd()
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{server.port} {other}\n")
    r = SSHCommandRunner(server.ssh_config(known_hosts=known), name="test")
    try:
        with pytest.raises(HostKeyNotTrusted) as info:
            await r.run("true", timeout_s=10)
    finally:
        await r.aclose()
    assert "differs" in str(info.value)
    assert "ssh-keygen -R" in str(info.value)
    assert server.count_logins() == 0


async def test_missing_known_hosts_file_is_refused(sshd: SSHServer, tmp_path: Path) -> None:
    """A known_hosts path that does not exist raises HostKeyNotTrusted (never 'trust anything')."""
    r = SSHCommandRunner(sshd.ssh_config(known_hosts=tmp_path / "nope"), name="test")
    try:
        with pytest.raises(HostKeyNotTrusted, match="ssh-keyscan"):
            await r.run("true", timeout_s=10)
    finally:
        await r.aclose()


async def test_server_down_raises_unreachable(make_sshd: MakeSSHD) -> None:
    """With sshd stopped the connect is refused: SSHUnreachable naming the host, quickly."""
    server = make_sshd()
    server.stop()
    r = SSHCommandRunner(server.ssh_config(), name="test")
    start = time.monotonic()
    try:
        with pytest.raises(SSHUnreachable) as info:
            await r.run("true", timeout_s=10)
    finally:
        await r.aclose()
    assert time.monotonic() - start < 3
    assert server.address in str(info.value)
    assert "refused" in str(info.value).lower()


async def test_unresolvable_host_raises_unreachable(sshd: SSHServer) -> None:
    """A host name that does not resolve raises SSHUnreachable (a DNS failure is not a crash)."""
    r = SSHCommandRunner(sshd.ssh_config(host="no-such-host.invalid"), name="test")
    try:
        with pytest.raises(SSHUnreachable, match="no-such-host.invalid"):
            await r.run("true", timeout_s=10)
    finally:
        await r.aclose()


async def test_missing_key_file_raises_ssh_error(sshd: SSHServer, tmp_path: Path) -> None:
    """An unreadable key file is an SSHError naming the file, not a misleading 'unreachable'."""
    r = SSHCommandRunner(sshd.ssh_config(key_file=tmp_path / "missing_key"), name="test")
    try:
        with pytest.raises(SSHError, match="missing_key") as info:
            await r.run("true", timeout_s=10)
    finally:
        await r.aclose()
    assert not isinstance(info.value, SSHUnreachable)


async def test_one_connection_serves_twenty_commands(make_sshd: MakeSSHD) -> None:
    """Twenty sequential commands use one SSH connection (one login in the sshd log)."""
    server = make_sshd()
    r = SSHCommandRunner(server.ssh_config(), name="test")
    try:
        for i in range(20):
            assert (await r.run(f"echo {i}", timeout_s=10)).stdout == f"{i}\n"
        assert r.connection_generation == 1
        assert r.is_connected
    finally:
        await r.aclose()
    assert server.count_logins() == 1


async def test_dropped_connection_is_reopened(make_sshd: MakeSSHD) -> None:
    """After the server drops the connection, the next command reconnects and succeeds."""
    server = make_sshd()
    r = SSHCommandRunner(server.ssh_config(), name="test")
    try:
        await r.run("true", timeout_s=10)
        server.drop_connections()
        for _ in range(50):  # let the client notice the EOF
            if not r.is_connected:
                break
            await asyncio.sleep(0.02)
        assert (await r.run("echo again", timeout_s=10)).stdout == "again\n"
        assert r.connection_generation == 2
    finally:
        await r.aclose()
    assert server.count_logins() == 2


async def test_connection_lost_mid_command_has_no_exit_status(make_sshd: MakeSSHD) -> None:
    """A command cut off by a lost connection reports exit_status None (never success)."""
    server = make_sshd()
    r = SSHCommandRunner(server.ssh_config(), name="test")
    try:
        task = asyncio.create_task(r.run("echo started; sleep 20", timeout_s=30))
        await asyncio.sleep(0.5)
        server.drop_connections()
        res = await asyncio.wait_for(task, 10)
        assert res.exit_status is None and not res.ok
    finally:
        await r.aclose()


async def test_twelve_concurrent_commands_complete_with_max_sessions_1(make_sshd: MakeSSHD) -> None:
    """Against sshd `MaxSessions 1` (which refuses extra channels), 12 concurrent commands all
    complete: refusals are retried with backoff and the runner shrinks its concurrency to 1."""
    server = make_sshd(max_sessions=1)
    r = SSHCommandRunner(server.ssh_config(max_sessions=8), name="test")
    try:
        results = await asyncio.gather(*(r.run(f"sleep 0.05; echo {i}", timeout_s=30) for i in range(12)))
        assert [res.stdout for res in results] == [f"{i}\n" for i in range(12)]
        assert all(res.exit_status == 0 for res in results)
        assert r.session_limit == 1
        assert r.connection_generation == 1
    finally:
        await r.aclose()
    assert "no more sessions" in server.log_text()  # the server really refused channels


async def test_adaptive_limit_settles_at_the_servers_max_sessions(make_sshd: MakeSSHD) -> None:
    """Against `MaxSessions 3`, eight concurrent commands all succeed and the runner's limit
    settles at exactly 3 (it shrinks to what the server allows, not below)."""
    server = make_sshd(max_sessions=3)
    r = SSHCommandRunner(server.ssh_config(max_sessions=8), name="test")
    try:
        results = await asyncio.gather(*(r.run("sleep 0.3", timeout_s=20) for _ in range(8)))
        assert all(res.ok for res in results)
        assert r.session_limit == 3
    finally:
        await r.aclose()


async def test_concurrency_is_bounded_by_max_sessions(sshd: SSHServer) -> None:
    """With max_sessions=2, six 0.3 s commands run at most two at a time (>= 0.9 s in total)."""
    r = SSHCommandRunner(sshd.ssh_config(max_sessions=2), name="test")
    try:
        start = time.monotonic()
        results = await asyncio.gather(*(r.run("sleep 0.3", timeout_s=20) for _ in range(6)))
        assert time.monotonic() - start >= 0.9
        assert all(res.ok for res in results)
    finally:
        await r.aclose()


async def test_aclose_is_idempotent(sshd: SSHServer) -> None:
    """aclose() closes the connection and can be called again (and before any use)."""
    r = SSHCommandRunner(sshd.ssh_config(), name="test")
    await r.aclose()
    await r.run("true", timeout_s=10)
    assert r.is_connected
    await r.aclose()
    await r.aclose()
    assert not r.is_connected


async def test_open_forward_reaches_a_remote_port(runner: SSHCommandRunner) -> None:
    """open_forward gives a local port whose connections reach host:port as seen from the SSH
    host (here a local echo server), and its closer stops listening."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        port, closer = await runner.open_forward("127.0.0.1", server.sockets[0].getsockname()[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"ping\n"
        writer.close()
        await writer.wait_closed()
        await closer()
        await closer()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
    finally:
        server.close()
        await server.wait_closed()
