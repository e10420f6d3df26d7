"""State-store fixtures: a SQLite file per test and, for replica tests, a MariaDB database."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pymysql
import pytest

from bot.models import Action, ActionKind
from bot.state.models import RunKind
from bot.state.store import StateStore

ADD_COLUMN = Action(id="add_column", title="Add the missing column", kind=ActionKind.SQL,
                    commands=["ALTER TABLE nodes ADD COLUMN health_check_model VARCHAR(128)"],
                    params={"table": "nodes", "column": "health_check_model"}, verify_steps=["schema_nodes"])


@pytest.fixture
async def store(tmp_path) -> AsyncIterator[StateStore]:
    s = StateStore(f"sqlite+aiosqlite:///{tmp_path}/state.db", owner="bot-a")
    await s.open()
    try:
        yield s
    finally:
        await s.aclose()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh database on the local MariaDB (root, no password), dropped afterwards."""
    name = "qcc_state_" + secrets.token_hex(4)
    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    except pymysql.err.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"MariaDB on 127.0.0.1:3306 is required for the replica tests: {exc}")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield f"mysql+aiomysql://root@127.0.0.1:3306/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()


async def pending_approval(store: StateStore, *, requester: str = "UREQ", expiry_s: float = 900) -> str:
    """A diagnosis run with one proposal and a pending approval; returns the approval id."""
    run = await store.start_run(RunKind.DIAGNOSIS, "test", actor=requester, channel="C1", thread_ts="1.1")
    proposal = await store.create_proposal(run.id, "test", ADD_COLUMN)
    approval = await store.request_approval(proposal.id, requester, expiry_s=expiry_s, channel="C1",
                                            thread_ts="1.1")
    return approval.id
