"""Real bot processes for the replica and lifecycle tests.

:func:`replica_site` builds one "site": the fake Slack Web API (in the test's loop), a sandbox
host served by a real ``sshd`` (stand-in docker CLI, ``commands.log``), a MariaDB database for
the environment and a fresh MariaDB database for the bots' shared state. :meth:`Site.start`
launches a replica: ``python -m bot serve --http --port N --config <yaml>`` as a subprocess
with its own ``QCC_INSTANCE_ID``; its stderr goes to a file the tests assert on.

The Slack side is driven with :class:`tests.slack.harness.SlackSim` (properly signed requests)
and observed on the fake Web API; replicas being other processes, "done" is always a
condition on what the fake received (:func:`wait_report`, :func:`wait_card`), never ``idle()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from qcc_sandbox import MySQLTarget, SandboxDir
from tests.fakes.slack_api import FakeSlackAPI, Posted
from tests.ports import free_port
from tests.reliability.secrets_guard import BOT_TOKEN, SIGNING_SECRET, find_leaks, watch
from tests.slack.harness import SlackSim, fix_button, report_of, text_of

REPO = Path(__file__).resolve().parents[2]
APPROVERS = ("UAPPROVER1", "UAPPROVER2")
# What a clean shutdown never prints (asyncio/aiohttp/aiomysql leak and teardown warnings).
NOISE = ("Event loop is closed", "Task was destroyed but it is pending", "Unclosed", "unclosed",
         "never retrieved", "was never awaited", "Traceback")


@dataclass
class Replica:
    """One ``qcc-bot serve --http`` process."""

    name: str
    port: int
    proc: asyncio.subprocess.Process
    stderr_path: Path
    sim: SlackSim

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def noise(self) -> list[str]:
        """Lines of stderr holding shutdown noise (see :data:`NOISE`)."""
        return [line for line in self.stderr().splitlines() if any(n in line for n in NOISE)]

    async def get(self, path: str) -> tuple[int, str]:
        async with self.sim.http.get(self.base + path) as resp:
            return resp.status, await resp.text()

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until ``/healthz`` answers 200 (Slack and the state database up)."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise AssertionError(f"replica {self.name} exited {self.proc.returncode}:\n{self.stderr()}")
            try:
                status, last = await self.get("/healthz")
                if status == 200:
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"replica {self.name} not healthy in {timeout_s}s ({last}):\n{self.stderr()}")

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye (a crashed host or OOM kill)."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)

    async def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait for the exit code."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout_s)


@dataclass
class Site:
    """Everything the replicas share (see the module docstring)."""

    fake: FakeSlackAPI
    box: SandboxDir
    sshd: Any
    db: Any
    mariadb: Any
    state_db: str
    tmp: Path
    replicas: list[Replica] = field(default_factory=list)

    @property
    def state_url(self) -> str:
        return f"mysql+aiomysql://root@127.0.0.1:3306/{self.state_db}"

    def config(self, **top: Any) -> dict[str, Any]:
        """The YAML every replica reads; ``top`` overrides top-level keys (``lease_s``...)."""
        env = {"ssh": self.sshd.ssh_config().model_dump(mode="json"), "compose_project": "qcc_test",
               "compose_file": "docker-compose.test.yml", **self.box.config_paths(),
               "mysql": self.db.mysql_config().model_dump(mode="json"),
               "approval": {"approvers": list(APPROVERS)}}
        slack = {"allowed_channels": ["CINC"], "channel_environments": {"CINC": "test"},
                 "health_probe_s": 1.0}
        data: dict[str, Any] = {"environments": {"test": env}, "state_url": self.state_url, "slack": slack}
        data.update(top)
        return data

    async def start(self, name: str, **top: Any) -> Replica:
        """Launch replica ``name`` (its ``QCC_INSTANCE_ID``) with the site config plus ``top``."""
        cfg = self.tmp / f"{name}.yaml"
        cfg.write_text(yaml.safe_dump(self.config(**top)))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "QCC_INSTANCE"))}
        env.update(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                   SLACK_API_URL=self.fake.api_url, QCC_INSTANCE_ID=name, PYTHONUNBUFFERED="1",
                   PYTHONWARNINGS="default::ResourceWarning", PYTHONPATH=str(REPO))
        stderr_path = self.tmp / f"{name}.stderr"
        with stderr_path.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "serve", "--http", "--host", "127.0.0.1", "--port", str(port),
                "--config", str(cfg), stdin=asyncio.subprocess.DEVNULL, stdout=err, stderr=err, env=env,
                cwd=str(self.tmp))
        replica = Replica(name, port, proc, stderr_path,
                          SlackSim(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, self.fake))
        self.replicas.append(replica)
        return replica

    def query(self, sql: str, args: Any = None) -> list[dict[str, Any]]:
        """Run ``sql`` (``{db}`` = the state database) as root on MariaDB."""
        return self.mariadb.admin_query(sql.replace("{db}", f"`{self.state_db}`"), args)

    def audit_count(self, event: str, subject: str | None = None) -> int:
        sql = "SELECT COUNT(*) AS n FROM {db}.qcc_audit_log WHERE event=%s"
        args: tuple[Any, ...] = (event,)
        if subject is not None:
            sql += " AND subject=%s"
            args += (subject,)
        return int(self.query(sql, args)[0]["n"])

    def restarts(self) -> int:
        """``docker compose ... restart proxy`` executions on the sandbox host."""
        return self.box.count("docker", "compose", "restart", "proxy")

    async def aclose(self) -> None:
        for replica in self.replicas:
            if replica.proc.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await replica.terminate(20)
            if replica.proc.returncode is None:
                replica.kill()
                await replica.proc.wait()
            await replica.sim.close()
            leaks = find_leaks(f"stderr of {replica.name}", replica.stderr())
            assert not leaks, f"secrets in the stderr of {replica.name}: {leaks}"


@contextlib.asynccontextmanager
async def replica_site(make_sshd: Callable[..., Any], mariadb: Any, tmp: Path, *,
                       scenario: str = "migration_failed", with_column: bool = True) -> AsyncIterator[Site]:
    """A :class:`Site` for ``scenario`` (default: the proxy died on the missing column, which
    has been added since, so the report offers "restart the proxy")."""
    db = mariadb.create_database(with_health_check_model=with_column)
    watch(db.password)
    box = SandboxDir(tmp / "host")
    box.load(scenario, database=MySQLTarget(host=db.host, port=db.port, user=db.user, password=db.password,
                                            database=db.database))
    server = make_sshd(set_env=box.sshd_env())
    state_db = f"qcc_state_{secrets.token_hex(4)}"
    mariadb.admin_query(f"CREATE DATABASE `{state_db}`")
    fake = await FakeSlackAPI().start()
    site = Site(fake=fake, box=box, sshd=server, db=db, mariadb=mariadb, state_db=state_db, tmp=tmp)
    try:
        yield site
    finally:
        try:
            await site.aclose()
        finally:
            await fake.stop()
            mariadb.admin_query(f"DROP DATABASE IF EXISTS `{state_db}`")
        leaks = find_leaks("slack", fake.all_payload_text())
        assert not leaks, f"secrets reached the fake Slack API: {leaks}"


# -- driving Slack against processes ------------------------------------------------------

def parents(fake: FakeSlackAPI) -> list[Posted]:
    """Top-level messages (not in a thread), in order."""
    return [m for m in fake.messages.values() if m.thread_ts is None]


async def wait_report(fake: FakeSlackAPI, parent_ts: str, timeout_s: float = 60.0) -> Posted:
    """The diagnosis report in the thread of ``parent_ts``, once posted."""

    def ready() -> bool:
        try:
            report_of(fake.thread(parent_ts))
        except StopIteration:
            return False
        return True

    await fake.wait_for(ready, timeout_s)
    return report_of(fake.thread(parent_ts))


async def wait_parent(fake: FakeSlackAPI, before: set[str], timeout_s: float = 30.0) -> Posted:
    """The first top-level message posted after ``before`` (a set of known ts)."""
    await fake.wait_for(lambda: any(m.ts not in before for m in parents(fake)), timeout_s)
    return next(m for m in parents(fake) if m.ts not in before)


async def open_card(replica: Replica, fake: FakeSlackAPI, parent: Posted, report: Posted, action: str,
                    timeout_s: float = 30.0) -> Posted:
    """Click the report's Fix button for ``action`` on ``replica``; the approval card it posts."""
    button = fix_button(report, action)

    def cards() -> list[Posted]:
        return [m for m in fake.thread(parent.ts) if "Approval" in json.dumps(m.blocks)]

    reply = await replica.sim.click(button["action_id"], button["value"], user="UREQUESTER",
                                    message_ts=report.ts, thread_ts=parent.ts)
    assert reply.status == 200, reply
    await fake.wait_for(lambda: bool(cards()), timeout_s)
    return cards()[-1]


def thread_text(fake: FakeSlackAPI, parent_ts: str) -> list[str]:
    """The visible text of every message in the thread (latest version of each)."""
    return [text_of(m.blocks) for m in fake.thread(parent_ts)]
