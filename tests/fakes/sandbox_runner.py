"""A :class:`~bot.transports.base.CommandRunner` that runs commands on a sandbox directory locally.

``SandboxRunner(box)`` runs each command with ``/bin/sh -c`` in a subprocess whose environment
is the sandbox's (stand-ins first on ``PATH``, ``QCC_SANDBOX_DIR``), as the sandbox SSH server
does, without SSH: the tests of the post-deploy watch poll a sandbox host this way, and can
swap its scenario between polls (``box.load(...)``). ``commands`` records every command run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

from bot.errors import CommandTimeout
from bot.models import CommandResult
from bot.sandbox import SandboxDir
from bot.transports.base import DEFAULT_MAX_OUTPUT_BYTES


class SandboxRunner:
    """Runs shell lines against ``box`` (see the module docstring)."""

    def __init__(self, box: SandboxDir) -> None:
        self.box = box
        self.commands: list[str] = []

    async def run(self, command: str, *, timeout_s: float,
                  max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES) -> CommandResult:
        self.commands.append(command)
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", command, env=self.box.env(), cwd=str(self.box.home), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise CommandTimeout(f"command timed out after {timeout_s:g}s", host="sandbox",
                                 timeout_s=timeout_s) from None
        return CommandResult(command=command, exit_status=proc.returncode,
                             stdout=out[:max_output_bytes].decode("utf-8", "replace"),
                             stderr=err[:max_output_bytes].decode("utf-8", "replace"),
                             duration_s=time.monotonic() - t0,
                             truncated=len(out) > max_output_bytes or len(err) > max_output_bytes)

    async def aclose(self) -> None:
        return None
