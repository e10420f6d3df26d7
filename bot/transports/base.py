"""The small protocols the engine talks to; asyncssh/aiomysql live behind them.

* :class:`CommandRunner` runs one shell line on an environment's host.
* :class:`SqlRunner` runs parameterised SQL on the environment's MySQL (through SSH).
* :class:`EnvironmentTransports` bundles both for one environment.
* :class:`TransportProvider` hands out (and caches) transports per environment name and
  closes them all in :meth:`aclose`.

Errors: connection-level failures raise :class:`bot.errors.TransportError` subclasses;
a command that ran and failed is *not* an error (see ``CommandResult.exit_status``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bot.models import CommandResult

DEFAULT_MAX_OUTPUT_BYTES = 8 * 1024 * 1024


def one_line(text: object, limit: int) -> str:
    """``text`` on one line, whitespace collapsed, at most ``limit`` characters (for error messages)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@runtime_checkable
class CommandRunner(Protocol):
    """Runs shell lines on one host."""

    async def run(
        self, command: str, *, timeout_s: float, max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    ) -> CommandResult:
        """Run ``command`` (already quoted) with a local deadline of ``timeout_s`` seconds.

        Output beyond ``max_output_bytes`` (per stream) is dropped and ``truncated`` set.
        Raises :class:`bot.errors.CommandTimeout` past the deadline and
        :class:`bot.errors.SSHError` subclasses when the host cannot be used.
        """
        ...

    async def aclose(self) -> None:
        """Close connections; idempotent."""
        ...


@runtime_checkable
class SqlRunner(Protocol):
    """Runs SQL on one environment's MySQL."""

    async def query(
        self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None, *, timeout_s: float
    ) -> list[dict[str, Any]]:
        """Run a read-only query; rows as dicts. Raises :class:`bot.errors.MySQLError` subclasses
        and :class:`bot.errors.CommandTimeout`."""
        ...

    async def execute(
        self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None, *, timeout_s: float
    ) -> int:
        """Run one write statement (approved fixes only); returns affected rows."""
        ...

    async def aclose(self) -> None:
        """Close connections and the tunnel; idempotent."""
        ...


@dataclass
class EnvironmentTransports:
    """The transports of one environment; ``sql`` is None when no MySQL is configured."""

    name: str
    shell: CommandRunner
    sql: SqlRunner | None


class TransportProvider(Protocol):
    """Gives the transports for an environment name, reusing connections across runs."""

    async def get(self, env_name: str) -> EnvironmentTransports:
        """Transports for ``env_name``. Raises :class:`bot.errors.UnknownEnvironment`."""
        ...

    async def aclose(self) -> None:
        """Close every transport it opened."""
        ...
