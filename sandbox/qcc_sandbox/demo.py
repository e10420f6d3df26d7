"""``qcc-bot demo``: diagnose a built-in sandbox host with the real transports, zero configuration.

:func:`run_demo` starts a :class:`~qcc_sandbox.host.SandboxHost` for the scenario (an SSH
server on 127.0.0.1 whose docker CLI stand-in answers from the scenario; the scenario's
``nodes`` schema on the local MariaDB when it is there), builds settings for its one
environment and runs the normal diagnosis through :func:`bot.app.lifespan`. Without
MariaDB the run still completes; its MySQL step reports the failure.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TextIO

from bot.service import DiagnosisRun
from qcc_sandbox.database import MySQLTarget
from qcc_sandbox.host import SandboxHost
from qcc_sandbox.scenario import ScenarioError, load_scenario, scenario_names


def list_scenarios() -> list[tuple[str, str]]:
    """``(name, title)`` of every packaged scenario, sorted by name."""
    return [(name, load_scenario(name).title) for name in scenario_names()]


@contextlib.contextmanager
def exported(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block (the sandbox's MySQL password, read by the
    bot's settings through ``mysql.password_env``), then restore what was there."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def run_demo(
    scenario: str = "migration_failed", *, log: TextIO | None = None, mysql: MySQLTarget | None = None
) -> DiagnosisRun:
    """Diagnose the sandbox host playing ``scenario``; returns the finished run.

    ``mysql`` defaults to root@127.0.0.1:3306 with an empty password and database
    ``qcc_demo``, each overridable with ``QCC_DEMO_MYSQL_HOST``/``_PORT``/``_USER``/
    ``_PASSWORD``/``_DATABASE``. ``log`` receives two or three lines about the sandbox (never
    secrets). Raises :class:`qcc_sandbox.scenario.ScenarioError` (a
    :class:`bot.errors.UserError`) for an unknown scenario.
    """
    from bot.app import lifespan

    sc = load_scenario(scenario)
    if mysql is None:
        try:
            mysql = MySQLTarget.from_env(os.environ)
        except ValueError as exc:
            raise ScenarioError(f"bad QCC_DEMO_MYSQL_* setting: {exc}") from None
    async with SandboxHost(sc, mysql=mysql) as host:
        if log is not None:
            log.write(f"sandbox host: 127.0.0.1:{host.port} playing scenario {sc.name!r} ({sc.title})\n")
            if not host.mysql_ready:
                log.write(
                    f"sandbox MySQL: {host.mysql.host}:{host.mysql.port} not usable; "
                    "the schema step will report the failure\n"
                )
            log.flush()
        with exported(host.secret_env()):
            async with lifespan(host.settings()) as services:
                return await services.diagnosis.diagnose(host.env_name)
