"""The scenario's MySQL schema on a real MySQL/MariaDB (best effort, for the demo and tests).

:func:`prepare_mysql` creates the database and its ``nodes`` table (with or without
``health_check_model``, as the scenario says) and reports whether it worked; the demo keeps
running without MariaDB (the bot's MySQL step then reports its failure). The schema is the
qcc_plus ``nodes`` table up to ``health_check_method`` (``internal/store/migration.go``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qcc_sandbox.scenario import Scenario

log = logging.getLogger(__name__)

HEALTH_CHECK_MODEL_DEFAULT = "claude-haiku-4-5-20251001"
_DB_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
NODES_COLUMNS = (
    "id VARCHAR(64) PRIMARY KEY",
    "name VARCHAR(255)",
    "base_url TEXT NOT NULL",
    "api_key TEXT",
    "source_protocol VARCHAR(32) DEFAULT 'claude'",
    "health_check_method VARCHAR(10) DEFAULT 'api'",
)
HEALTH_CHECK_MODEL_COLUMN = f"health_check_model VARCHAR(128) DEFAULT '{HEALTH_CHECK_MODEL_DEFAULT}'"


@dataclass(frozen=True)
class MySQLTarget:
    """Where the sandbox's MySQL lives (as seen from the sandbox host; loopback by default).

    ``password`` is never shown (``repr=False``); it goes to aiomysql and, for the stand-ins'
    schema checks, into ``state.json`` (mode 0600), never onto a command line.
    """

    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = field(default="", repr=False)
    database: str = "qcc_demo"

    def __post_init__(self) -> None:
        if not _DB_RE.match(self.database):
            raise ValueError(f"database name must match {_DB_RE.pattern}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MySQLTarget:
        """Defaults overridden by ``QCC_DEMO_MYSQL_HOST``/``_PORT``/``_USER``/``_PASSWORD``/``_DATABASE``.

        Raises ValueError for a non-numeric port or a bad database name.
        """
        base = cls()
        return cls(
            host=env.get("QCC_DEMO_MYSQL_HOST") or base.host,
            port=int(env.get("QCC_DEMO_MYSQL_PORT") or base.port),
            user=env.get("QCC_DEMO_MYSQL_USER") or base.user,
            password=env.get("QCC_DEMO_MYSQL_PASSWORD") or base.password,
            database=env.get("QCC_DEMO_MYSQL_DATABASE") or base.database,
        )

    def as_state(self, container_database: str = "qcc_proxy") -> dict[str, Any]:
        """The ``state["database"]`` entry the stand-ins read."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
            "container_database": container_database,
        }


async def _connect(target: MySQLTarget, timeout_s: float, *, with_db: bool) -> Any:
    import aiomysql

    return await asyncio.wait_for(
        aiomysql.connect(
            host=target.host,
            port=target.port,
            user=target.user,
            password=target.password,
            db=target.database if with_db else None,
            connect_timeout=timeout_s,
            autocommit=True,
        ),
        timeout=timeout_s + 1,
    )


async def prepare_mysql(
    scenario: Scenario, target: MySQLTarget | None = None, *, timeout_s: float = 3.0
) -> bool:
    """Create ``target.database`` with a fresh ``nodes`` table shaped as ``scenario`` says.

    The table gets two rows (fake URLs, no keys); ``health_check_model`` exists only when
    ``scenario.database.nodes_has_health_check_model``. Returns True on success, False when
    the server is unreachable or refuses (the reason is logged, without credentials).
    """
    target = target or MySQLTarget()
    columns = list(NODES_COLUMNS)
    if scenario.database.nodes_has_health_check_model:
        columns.append(HEALTH_CHECK_MODEL_COLUMN)
    try:
        conn = await _connect(target, timeout_s, with_db=False)
    except Exception as exc:  # noqa: BLE001 - best effort: any failure means "no database"
        log.info("sandbox MySQL at %s:%s not usable: %s", target.host, target.port, type(exc).__name__)
        return False
    try:
        async with conn.cursor() as cur:
            await cur.execute("SET SESSION sql_notes = 0")  # no "Unknown table" warnings from IF EXISTS
            await cur.execute(f"CREATE DATABASE IF NOT EXISTS `{target.database}`")
            await cur.execute(f"DROP TABLE IF EXISTS `{target.database}`.nodes")
            await cur.execute(f"CREATE TABLE `{target.database}`.nodes ({', '.join(columns)})")
            await cur.execute(
                f"INSERT INTO `{target.database}`.nodes (id, name, base_url) VALUES "
                "('n1', 'primary', 'https://api.example.test'), "
                "('n2', 'backup', 'https://backup.example.test')"
            )
        return True
    except Exception as exc:  # noqa: BLE001
        log.info("sandbox MySQL schema set-up failed: %s", type(exc).__name__)
        return False
    finally:
        conn.close()


async def drop_database(target: MySQLTarget, *, timeout_s: float = 3.0) -> bool:
    """Drop ``target.database`` (best effort); True when it is gone."""
    try:
        conn = await _connect(target, timeout_s, with_db=False)
    except Exception:  # noqa: BLE001
        return False
    try:
        async with conn.cursor() as cur:
            await cur.execute("SET SESSION sql_notes = 0")
            await cur.execute(f"DROP DATABASE IF EXISTS `{target.database}`")
        return True
    except Exception:  # noqa: BLE001
        return False
    finally:
        conn.close()


async def has_column(target: MySQLTarget, table: str, column: str, *, timeout_s: float = 3.0) -> bool | None:
    """Whether ``table.column`` exists in ``target.database``; None when MySQL cannot be asked."""
    try:
        conn = await _connect(target, timeout_s, with_db=False)
    except Exception:  # noqa: BLE001
        return None
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s "
                "AND TABLE_NAME=%s AND COLUMN_NAME=%s",
                (target.database, table, column),
            )
            row = await cur.fetchone()
        return bool(row and row[0])
    except Exception:  # noqa: BLE001
        return None
    finally:
        conn.close()
