"""The demo/test host: docker CLI stand-ins (``bin/``), scenarios, and an in-process SSH server.

* :class:`~bot.sandbox.scenario.Scenario` / :func:`~bot.sandbox.scenario.load_scenario` —
  what the simulated host looks like (``scenarios/*.yaml``).
* :class:`~bot.sandbox.sandboxdir.SandboxDir` — a sandbox directory: ``state.json``,
  ``commands.log``, markers, the checkout; runs stand-ins; counts executions.
* :class:`~bot.sandbox.host.SandboxHost` — the SSH server ``qcc-bot demo`` diagnoses.
* :func:`~bot.sandbox.database.prepare_mysql` — the scenario's ``nodes`` schema on a real MariaDB.
"""

from bot.sandbox.database import MySQLTarget, drop_database, has_column, prepare_mysql
from bot.sandbox.host import SandboxHost
from bot.sandbox.sandboxdir import BIN_DIR, CommandRecord, SandboxDir
from bot.sandbox.scenario import Scenario, ScenarioError, load_scenario, scenario_from_dict, scenario_names

__all__ = [
    "BIN_DIR",
    "CommandRecord",
    "MySQLTarget",
    "SandboxDir",
    "SandboxHost",
    "Scenario",
    "ScenarioError",
    "drop_database",
    "has_column",
    "load_scenario",
    "prepare_mysql",
    "scenario_from_dict",
    "scenario_names",
]
