"""Hand out the real transports of each configured environment, one set per name, cached.

:class:`SSHTransportProvider` builds an :class:`~bot.transports.ssh.SSHCommandRunner` (and,
when the environment configures MySQL, an :class:`~bot.transports.mysql.SSHTunnelSqlRunner`
over the same SSH connection) the first time an environment is asked for, and reuses them
for every later run. Nothing connects until a command or query runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from bot.config import Settings
from bot.errors import BotError
from bot.transports.base import EnvironmentTransports
from bot.transports.mysql import SSHTunnelSqlRunner
from bot.transports.ssh import SSHCommandRunner

logger = logging.getLogger(__name__)


class SSHTransportProvider:
    """A :class:`~bot.transports.base.TransportProvider` over ``settings.environments``.

    :meth:`get` raises :class:`bot.errors.UnknownEnvironment` for an unconfigured name.
    :meth:`aclose` closes every transport it created (MySQL tunnels first, then SSH).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._envs: dict[str, EnvironmentTransports] = {}
        self._lock = asyncio.Lock()

    async def get(self, env_name: str) -> EnvironmentTransports:
        """The (cached) transports of ``env_name``; created on first use without connecting."""
        async with self._lock:
            cached = self._envs.get(env_name)
            if cached is not None:
                return cached
            env = self.settings.environment(env_name)
            shell = SSHCommandRunner(env.ssh, name=env_name)
            sql = SSHTunnelSqlRunner(env.mysql, shell) if env.mysql is not None else None
            transports = EnvironmentTransports(name=env_name, shell=shell, sql=sql)
            self._envs[env_name] = transports
            return transports

    async def aclose(self) -> None:
        """Close every cached transport (MySQL first, then SSH); idempotent.

        A failure closing one environment is logged and does not stop the others.
        """
        async with self._lock:
            envs, self._envs = list(self._envs.values()), {}
        for transports in envs:
            if transports.sql is not None:
                await _close_logged(transports.name, "mysql", transports.sql.aclose())
        for transports in envs:
            await _close_logged(transports.name, "ssh", transports.shell.aclose())


async def _close_logged(env_name: str, what: str, closing: Awaitable[None]) -> None:
    try:
        await closing
    except (BotError, OSError) as exc:
        logger.warning("closing %s transport of %s failed: %s", what, env_name, exc)
