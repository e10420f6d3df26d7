"""The demo/test host: docker CLI stand-ins (``bin/``), scenarios, and an in-process SSH server.

* :class:`~qcc_sandbox.scenario.Scenario` / :func:`~qcc_sandbox.scenario.load_scenario` —
  what the simulated host looks like (``scenarios/*.yaml``).
* :class:`~qcc_sandbox.sandboxdir.SandboxDir` — a sandbox directory: ``state.json``,
  ``commands.log``, markers, the checkout; runs stand-ins; counts executions.
* :class:`~qcc_sandbox.host.SandboxHost` — the SSH server ``qcc-bot demo`` diagnoses.
* :func:`~qcc_sandbox.database.prepare_mysql` — the scenario's ``nodes`` schema on a real MariaDB.
"""

from qcc_sandbox.database import MySQLTarget, drop_database, has_column, prepare_mysql
from qcc_sandbox.host import SandboxHost
from qcc_sandbox.sandboxdir import BIN_DIR, CommandRecord, SandboxDir
from qcc_sandbox.scenario import Scenario, ScenarioError, load_scenario, scenario_from_dict, scenario_names

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
