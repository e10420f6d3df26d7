"""The sshd fixture's guarantees that other tests build on (SetEnv PATH, session refusals)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.errors import CommandTimeout
from bot.transports.ssh import SSHCommandRunner
from tests.sshd import SSHServer

pytestmark = [pytest.mark.sshd, pytest.mark.timeout(60)]

MakeSSHD = Callable[..., SSHServer]


async def test_setenv_path_reaches_commands_exactly(make_sshd: MakeSSHD, tmp_path: Path) -> None:
    """`SetEnv PATH=<stand-in dir>:...` and `QCC_SANDBOX_DIR` reach a command run through the
    transport unchanged (the user's ~/.bashrc cannot prepend to PATH), so a `docker` stand-in
    placed first in PATH is the one that runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text("#!/bin/sh\necho stand-in docker \"$@\"\n")
    docker.chmod(0o755)
    path = f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"
    server = make_sshd(set_env={"PATH": path, "QCC_SANDBOX_DIR": str(tmp_path)})
    r = SSHCommandRunner(server.ssh_config(), name="sandbox")
    try:
        res = await r.run('printf "%s\\n" "$PATH" "$QCC_SANDBOX_DIR"; docker ps', timeout_s=10)
    finally:
        await r.aclose()
    assert res.stdout.splitlines() == [path, str(tmp_path), "stand-in docker ps"]
    assert server.remote_env()["PATH"] == path


async def test_max_sessions_setting_makes_sshd_refuse_a_second_channel(make_sshd: MakeSSHD) -> None:
    """With MaxSessions 1 and the one session busy, a runner limited to its deadline reports
    the server's refusals in the CommandTimeout message (the fixture really limits sessions)."""
    server = make_sshd(max_sessions=1)
    r = SSHCommandRunner(server.ssh_config(), name="busy")
    try:
        busy = asyncio.create_task(r.run("sleep 1.5", timeout_s=10))
        await asyncio.sleep(0.3)
        with pytest.raises(CommandTimeout, match="refused"):
            await r.run("true", timeout_s=0.8)
        assert (await busy).ok
    finally:
        await r.aclose()


async def test_aclose_during_a_stall_does_not_hang(make_sshd: MakeSSHD) -> None:
    """Closing the runner while sshd is frozen returns promptly (shutdown during an outage)."""
    server = make_sshd()
    r = SSHCommandRunner(server.ssh_config(), name="stall")
    try:
        await r.run("true", timeout_s=10)
        server.pause()
        start = time.monotonic()
        await r.aclose()
        assert time.monotonic() - start < 6
        assert not r.is_connected
    finally:
        server.resume()
