"""In-memory fakes of the transports, with state a test can read.

``FakeCommandRunner(responses)`` answers a command with the first response whose key is a
substring of the command line (a :class:`CommandResult`, a string for stdout with exit 0,
or an exception instance to raise). Every command is appended to ``commands_run``.

A multi-part runbook script (``part <id> <command or function>; ...``, see
:mod:`bot.runbook.sections`) is answered part by part: each part's command text (or the body of
the shell function it calls) is looked up like a command, and the answers are joined with the
part markers (a part that names shell functions, ``part proxy_root got root``, is looked up by
their bodies). A key starting with ``part `` answers the whole multi-part command instead.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from bot.errors import CommandTimeout
from bot.models import CommandResult
from bot.transports.base import DEFAULT_MAX_OUTPUT_BYTES, EnvironmentTransports


class FakeCommandRunner:
    """A :class:`~bot.transports.base.CommandRunner` answering from a table of responses."""

    def __init__(self, responses: Mapping[str, CommandResult | str | BaseException] | None = None,
                 *, delay_s: float = 0.0) -> None:
        self.responses = dict(responses or {})
        self.delay_s = delay_s
        self.commands_run: list[str] = []
        self.closed = False

    async def run(self, command: str, *, timeout_s: float,
                  max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES) -> CommandResult:
        self.commands_run.append(command)
        if _PART_RE.search(command) and not any(k.startswith("part ") and k in command for k in self.responses):
            return await self._parts(command)
        resp = next((r for key, r in self.responses.items() if key in command), None)
        if resp is None:
            return CommandResult(command=command, exit_status=127, stderr="fake: no response")
        if self.delay_s:
            if self.delay_s > timeout_s:
                await asyncio.sleep(timeout_s)
                raise CommandTimeout(f"command timed out after {timeout_s:g}s", timeout_s=timeout_s)
            await asyncio.sleep(self.delay_s)
        if isinstance(resp, BaseException):
            raise resp
        if isinstance(resp, str):
            return CommandResult(command=command, exit_status=0, stdout=resp)
        return resp.model_copy(update={"command": command})

    async def aclose(self) -> None:
        self.closed = True

    async def _parts(self, command: str) -> CommandResult:
        script = shlex.split(command)[-1]
        bodies = dict(_FUNC_RE.findall(script))
        out = []
        for part_id, call in _PART_RE.findall(script):
            # the part's command, or the bodies of the shell functions it names (``procs``;
            # ``got version``: a helper and the function whose output it collects)
            named = [bodies[w] for w in call.split() if w in bodies and w != "part"]
            text = " ".join(named) if named else call
            resp = next((r for key, r in self.responses.items() if key in text), None)
            if isinstance(resp, BaseException):
                raise resp
            if resp is None:
                res = CommandResult(command=text, exit_status=127, stderr="fake: no response")
            elif isinstance(resp, str):
                res = CommandResult(command=text, exit_status=0, stdout=resp)
            else:
                res = resp
            body = res.stdout if res.stdout.endswith("\n") or not res.stdout else res.stdout + "\n"
            out.append(f"@@qcc-begin {part_id}\n{body}@@qcc-end {part_id} rc={res.exit_status}\n")
        return CommandResult(command=command, exit_status=0, stdout="".join(out))


_PART_RE = re.compile(r"(?:^|;)\s*part (\w+) ([^;]+)")
_FUNC_RE = re.compile(r"(\w+)\(\) \{ (.*?) \};", re.S)


class FakeSqlRunner:
    """A :class:`~bot.transports.base.SqlRunner` over an in-memory table of query results.

    ``columns`` is the list of ``nodes`` columns returned for the schema query; ``executed``
    records write statements (an ``ADD COLUMN`` adds the column).
    """

    def __init__(self, columns: list[dict[str, Any]] | None = None, error: BaseException | None = None) -> None:
        self.columns = list(columns or [])
        self.error = error
        self.queries: list[str] = []
        self.executed: list[str] = []
        self.closed = False

    async def query(self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None, *,
                    timeout_s: float) -> list[dict[str, Any]]:
        self.queries.append(sql)
        if self.error:
            raise self.error
        return [dict(c) for c in self.columns]

    async def execute(self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None, *,
                      timeout_s: float) -> int:
        self.executed.append(sql)
        if self.error:
            raise self.error
        if "ADD COLUMN health_check_model" in sql:
            self.columns.append({"name": "health_check_model", "type": "varchar(128)", "nullable": "YES",
                                 "default_value": "'claude-haiku-4-5-20251001'"})
        return 0

    async def aclose(self) -> None:
        self.closed = True


class FakeTransportProvider:
    """A :class:`~bot.transports.base.TransportProvider` over fixed fakes per environment."""

    def __init__(self, envs: Mapping[str, EnvironmentTransports]) -> None:
        self.envs = dict(envs)
        self.closed = False

    async def get(self, env_name: str) -> EnvironmentTransports:
        from bot.errors import UnknownEnvironment

        try:
            return self.envs[env_name]
        except KeyError:
            raise UnknownEnvironment(env_name, list(self.envs)) from None

    async def aclose(self) -> None:
        for t in self.envs.values():
            await t.shell.aclose()
            if t.sql:
                await t.sql.aclose()
        self.closed = True
