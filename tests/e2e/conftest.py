"""Fixtures of the end-to-end suite: ``e2e_host(scenario, ...)`` builds an :class:`E2EHost`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qcc_sandbox import BIN_DIR, MySQLTarget, SandboxDir, load_scenario
from tests.e2e.harness import E2EHost
from tests.ports import free_port


@pytest.fixture
def e2e_host(
    make_sshd: Callable[..., Any], mariadb: Any, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., E2EHost]:
    """``e2e_host("migration_failed", max_sessions=10, mysql="auto")`` -> a ready :class:`E2EHost`.

    ``mysql``: ``"auto"`` creates a MariaDB database shaped as the scenario says (and points
    the config at a closed port when the scenario says MySQL is unreachable); ``"closed"``
    creates it but points the config at a closed port; ``"none"`` configures no MySQL.
    ``with_column`` overrides the scenario's ``nodes.health_check_model`` expectation.
    ``record_sessions`` runs every SSH command through ``qcc-sandbox-session`` (sshd
    ``ForceCommand``), so ``box.sessions()`` holds the exact command lines the bot sent.
    """

    def make(
        scenario: str,
        *,
        max_sessions: int = 10,
        mysql: str = "auto",
        with_column: bool | None = None,
        record_sessions: bool = True,
    ) -> E2EHost:
        sc = load_scenario(scenario)
        workdir = tmp_path_factory.mktemp("e2e")  # no brackets: the path must fit `workdir`'s pattern
        box = SandboxDir(workdir / "host")
        db = None
        if mysql != "none":
            has_col = sc.database.nodes_has_health_check_model if with_column is None else with_column
            db = mariadb.create_database(with_health_check_model=has_col)
        target = (
            MySQLTarget(host=db.host, port=db.port, user=db.user, password=db.password, database=db.database)
            if db is not None
            else None
        )
        box.load(sc, database=target)
        extra = [f"ForceCommand {BIN_DIR / 'qcc-sandbox-session'}"] if record_sessions else []
        sshd = make_sshd(max_sessions=max_sessions, set_env=box.sshd_env(), extra_config=extra)
        host = E2EHost(scenario=sc, box=box, sshd=sshd, db=db, workdir=workdir)
        if mysql == "closed" or (mysql == "auto" and not sc.database.reachable):
            host.mysql_override = {"port": free_port()}
        host.write_config()
        return host

    return make


@pytest.fixture
def sandbox_box(tmp_path_factory: pytest.TempPathFactory) -> SandboxDir:
    """A bare sandbox directory (for tests that drive stand-ins without sshd)."""
    return SandboxDir(tmp_path_factory.mktemp("sbx"))
