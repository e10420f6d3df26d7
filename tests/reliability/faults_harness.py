"""Harness of the reliability suite: a sandbox host served by a real sshd, and the bot against it.

* ``make_host(scenario, ...)`` (fixture) builds a :class:`Host`: a
  :class:`~qcc_sandbox.SandboxDir` loaded with a scenario, a real ``sshd`` whose ``ForceCommand``
  (``qcc-sandbox-session``) records every command line in ``sessions.log``, a per-test MariaDB
  database, and the environment ``test`` pointing at both. ``mysql=`` chooses the database
  fault (``"ok"``, ``"closed"``, ``"silent"``, ``"denied"``, ``"none"``).
* ``host.cli_diagnose()`` runs the real CLI (``python -m bot diagnose --format json``).
* ``start_rig(host)`` (fixture) starts the Slack bot in HTTP mode on the host, with the fake
  Slack Web API and a :class:`~tests.slack.harness.SlackSim` sending signed requests.
* :class:`Noise` collects what must never happen: loop exception-handler calls ("Task
  exception was never retrieved"), "Event loop is closed", unraisable exceptions.

Every bot is configured with the distinctive secrets of :mod:`tests.reliability.secrets_guard`
and a copy of the runbook whose step timeouts are capped (``FAST_TIMEOUT_S``) so that faults
that hang resolve in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import secrets as pysecrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import Settings, load_settings
from bot.runbook.executor import LOCAL_GRACE_S
from bot.runbook.loader import load_runbook
from handlers.runtime import Runtime
from handlers.server import running_bot, start_http
from qcc_sandbox import BIN_DIR, MySQLTarget, SandboxDir, load_scenario
from qcc_sandbox.scenario import Scenario
from tests.e2e.harness import CliRun, run_cli
from tests.fakes.slack_api import FakeSlackAPI
from tests.ports import free_port
from tests.reliability.figures import record
from tests.reliability.secrets_guard import (
    APP_TOKEN,
    BOT_TOKEN,
    GITHUB_TOKEN,
    SIGNING_SECRET,
    find_leaks,
    watch,
)
from tests.slack.harness import SlackSim

FAST_TIMEOUT_S = 5.0
CHANNEL = "CINC"
APPROVER = "UAPPROVER1"
STEP_STATUSES = {"ok", "failed", "timeout", "error", "skipped"}
BAD_NOISE = ("Task exception was never retrieved", "Event loop is closed", "Exception ignored",
             "was never awaited", "Unclosed", "unclosed")


def secret_env(api_url: str = "http://127.0.0.1:9/api/") -> dict[str, str]:
    """The Slack and GitHub secrets every reliability bot (and CLI run) is configured with."""
    return {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET, "GITHUB_TOKEN": GITHUB_TOKEN, "SLACK_API_URL": api_url}


def fast_runbook(directory: Path, cap_s: float | None = FAST_TIMEOUT_S) -> Path:
    """The packaged runbook with every step timeout capped at ``cap_s`` seconds (None: the
    runbook's own timeouts), as a file for ``runbook:`` in the configuration."""
    data = load_runbook().model_dump(mode="json")
    for step in data["steps"]:
        step["timeout_s"] = min(step["timeout_s"], cap_s or step["timeout_s"])
    path = directory / "runbook-fast.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def step_deadline(step_timeout_s: float) -> float:
    """The longest a step may take: its timeout plus the executor's local grace."""
    return step_timeout_s + LOCAL_GRACE_S


# --------------------------------------------------------------------------------- noise
@dataclass
class Noise:
    """Unhandled-exception evidence of one test: loop handler calls and bad log records."""

    loop_errors: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Route the loop's exception handler here (the default one would only log)."""

        def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            exc = context.get("exception")
            self.loop_errors.append(f"{context.get('message')}: {exc!r}")

        loop.set_exception_handler(handler)

    def problems(self, *, allow_errors: bool = False) -> list[str]:
        """Everything unhandled seen so far (runs a GC pass first, so orphaned tasks report)."""
        gc.collect()
        bad = list(self.loop_errors)
        bad += [r for r in self.records if any(p in r for p in BAD_NOISE)]
        if not allow_errors:
            bad += [r for r in self.records if r.startswith(("ERROR", "CRITICAL"))]
        return bad


class _NoiseHandler(logging.Handler):
    def __init__(self, noise: Noise) -> None:
        super().__init__(level=logging.WARNING)
        self.noise = noise
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.noise.records.append(self.format(record))
        except Exception:  # noqa: BLE001 - keep the test going; the record is lost, not the run
            self.noise.records.append(f"{record.levelname} {record.name}: <unformattable>")


@pytest.fixture
def noise() -> Iterator[Noise]:
    """A :class:`Noise` collecting WARNING+ records during the test. Async tests call
    ``noise.install(asyncio.get_running_loop())`` to catch loop errors too; unraisable
    exceptions are turned into errors by the modules' ``filterwarnings`` mark."""
    n = Noise()
    handler = _NoiseHandler(n)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield n
    finally:
        root.removeHandler(handler)


@contextlib.contextmanager
def outcome(category: str, label: str) -> Iterator[None]:
    """Record ``label`` in ``category`` as survived/blocked when the block finishes without error."""
    ok = False
    try:
        yield
        ok = True
    finally:
        record(category, label, ok)


# --------------------------------------------------------------------------------- host
class SilentMySQL:
    """A TCP listener that never accepts: connections complete (kernel backlog) and hear nothing."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()


@dataclass
class Host:
    """One sandbox host: scenario, sshd (sessions logged), database and config of env ``test``."""

    scenario: Scenario
    box: SandboxDir
    sshd: Any  # tests.sshd.SSHServer
    db: Any  # tests.sshd.MySQLTestDB | None
    workdir: Path
    runbook: Path
    mysql_override: dict[str, Any] = field(default_factory=dict)
    ssh_override: dict[str, Any] = field(default_factory=dict)
    env_extra: dict[str, Any] = field(default_factory=dict)  # more keys of environments.test

    def env_config(self) -> dict[str, Any]:
        """The ``environments.test`` mapping."""
        ssh: dict[str, Any] = {"host": self.sshd.host, "port": self.sshd.port, "user": self.sshd.user,
                               "key_file": str(self.sshd.key_file), "known_hosts": str(self.sshd.known_hosts),
                               "connect_timeout_s": 3.0}
        ssh.update(self.ssh_override)
        env: dict[str, Any] = {"ssh": ssh, "compose_project": self.scenario.compose.project,
                               "compose_file": self.scenario.compose.file, **self.box.config_paths(),
                               "proxy_service": "proxy", "mysql_service": "mysql", "proxy_port": 8001,
                               "channels": [CHANNEL], "approval": {"approvers": [APPROVER]}}
        if self.db is not None:
            mysql = {"host": self.db.host, "port": self.db.port, "user": self.db.user,
                     "password_env": self.db.password_env, "database": self.db.database,
                     "connect_timeout_s": 2.0}
            mysql.update(self.mysql_override)
            env["mysql"] = mysql
        env.update(self.env_extra)
        return env

    def settings_data(self, **top: Any) -> dict[str, Any]:
        """The whole configuration (also written as ``qcc.yaml`` for the CLI)."""
        data: dict[str, Any] = {
            "environments": {"test": self.env_config()},
            "runbook": str(self.runbook),
            "step_concurrency": 16,
            "state_url": f"sqlite+aiosqlite:///{self.workdir}/state.db",
            "slack": {"allowed_channels": [CHANNEL], "channel_environments": {CHANNEL: "test"}},
        }
        data.update(top)
        return data

    def settings(self, api_url: str, **top: Any) -> Settings:
        return load_settings(data=self.settings_data(**top), env=secret_env(api_url))

    @property
    def config_path(self) -> Path:
        return self.workdir / "qcc.yaml"

    def cli(self, *args: str, timeout_s: float = 120.0) -> CliRun:
        """``qcc-bot ARGS --config qcc.yaml`` as a subprocess (secrets in its environment)."""
        self.config_path.write_text(yaml.safe_dump(self.settings_data()))
        return run_cli([*args, "--config", str(self.config_path)], cwd=self.workdir, timeout_s=timeout_s,
                       env=secret_env())

    def cli_diagnose(self) -> tuple[CliRun, dict[str, Any]]:
        """``qcc-bot diagnose --env test --format json``: the run and its report (exit 0 asserted)."""
        run = self.cli("diagnose", "--env", "test", "--format", "json")
        assert run.returncode == 0, run.describe()
        return run, run.json()

    def session_commands(self) -> list[str]:
        """Every command line sshd ran for the bot (from the ForceCommand log)."""
        return [s["command"] for s in self.box.sessions() if s.get("command")]

    def secrets(self) -> list[str]:
        out = list(self.scenario.secrets())
        if self.db is not None:
            out.append(self.db.password)
        return out


MakeHost = Callable[..., Host]


@pytest.fixture
def make_host(make_sshd: Callable[..., Any], mariadb: Any, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[MakeHost]:
    """``make_host("migration_failed", max_sessions=10, mysql="ok", scenario_obj=None,
    record_sessions=True, runbook_cap_s=FAST_TIMEOUT_S, db_password=None, path_prefix=None)``
    -> a ready :class:`Host` (``runbook_cap_s=None``: the runbook's own timeouts)."""
    silent: list[SilentMySQL] = []

    def make(scenario: str = "migration_failed", *, max_sessions: int = 10, mysql: str = "ok",
             scenario_obj: Scenario | None = None, record_sessions: bool = True,
             runbook_cap_s: float | None = FAST_TIMEOUT_S,
             db_password: str | None = None, path_prefix: Path | None = None) -> Host:
        sc = scenario_obj or load_scenario(scenario)
        workdir = tmp_path_factory.mktemp("rel")
        box = SandboxDir(workdir / "host")
        db = None
        if mysql != "none":
            db = mariadb.create_database(with_health_check_model=sc.database.nodes_has_health_check_model)
            if db_password is not None:
                mariadb.admin_query(f"ALTER USER '{db.user}'@'%%' IDENTIFIED BY %s", (db_password,))
                os.environ[db.password_env] = db_password  # monkeypatched by the helper: restored after
                db = dataclasses.replace(db, password=db_password)
            watch(db.password)
        target = (MySQLTarget(host=db.host, port=db.port, user=db.user, password=db.password,
                              database=db.database) if db is not None else None)
        box.load(sc, database=target)
        extra = [f"ForceCommand {BIN_DIR / 'qcc-sandbox-session'}"] if record_sessions else []
        env = box.sshd_env()
        if path_prefix is not None:  # programs that shadow the stand-ins
            env["PATH"] = f"{path_prefix}:{env['PATH']}"
        sshd = make_sshd(max_sessions=max_sessions, set_env=env, extra_config=extra)
        runbook = fast_runbook(workdir, runbook_cap_s)
        host = Host(scenario=sc, box=box, sshd=sshd, db=db, workdir=workdir, runbook=runbook)
        if mysql == "closed":
            host.mysql_override = {"port": free_port()}
        elif mysql == "silent":
            listener = SilentMySQL()
            silent.append(listener)
            host.mysql_override = {"port": listener.port}
        elif mysql == "denied":
            host.mysql_override = {"password_env": "QCC_REL_WRONG_PASSWORD"}
        return host

    try:
        yield make
    finally:
        for listener in silent:
            listener.close()


# --------------------------------------------------------------------------------- bot
@dataclass
class Rig:
    """The bot in HTTP mode against a :class:`Host`, driven over signed HTTP."""

    host: Host
    fake: FakeSlackAPI
    sim: SlackSim
    rt: Runtime
    url: str
    stack: contextlib.AsyncExitStack

    async def close(self) -> None:
        """Stop the bot (drain, close transports and the state store); idempotent."""
        await self.stack.aclose()

    async def idle(self, timeout_s: float = 60.0) -> None:
        await self.rt.tasks.wait_idle(timeout_s)

    async def diagnose(self, text: str = "diagnose test", *, timeout_s: float = 60.0
                       ) -> tuple[Any, list[Any], float]:
        """``/qcc <text>``: (parent message, thread replies, seconds until the work was done)."""
        before = set(self.fake.messages)
        t0 = time.monotonic()
        reply = await self.sim.slash(text, channel=CHANNEL)
        assert reply.status == 200 and reply.body == "", reply
        assert reply.received_at - t0 < 3.0, "no ack within Slack's 3 s"
        await self.idle(timeout_s)
        elapsed = time.monotonic() - t0
        parents = [m for ts, m in self.fake.messages.items() if ts not in before and m.thread_ts is None]
        assert len(parents) == 1, [m.text for m in parents]
        return parents[0], self.fake.thread(parents[0].ts), elapsed

    def payload_text(self) -> str:
        return self.fake.all_payload_text()


StartRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def start_rig(tmp_path: Path) -> AsyncIterator[StartRig]:
    """``await start_rig(host, **settings_top)``: the bot served over HTTP on a free port."""
    stack = contextlib.AsyncExitStack()

    async def start(host: Host, **top: Any) -> Rig:
        own = contextlib.AsyncExitStack()
        stack.push_async_callback(own.aclose)
        fake = await FakeSlackAPI().start()
        own.push_async_callback(fake.stop)
        settings = host.settings(fake.api_url, **top)
        bot = await own.enter_async_context(running_bot(settings, http=True, progress_interval_s=0.0))
        fake.secrets.update(bot.rt.services.secrets)
        runner, port = await start_http(bot.app, "127.0.0.1", 0)
        own.push_async_callback(runner.cleanup)
        sim = SlackSim(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, fake)
        own.push_async_callback(sim.close)
        return Rig(host=host, fake=fake, sim=sim, rt=bot.rt, url=f"http://127.0.0.1:{port}", stack=own)

    try:
        yield start
    finally:
        await stack.aclose()


# --------------------------------------------------------------------------------- checks
def text_of(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False).replace("\\n", "\n")


def report_message(thread: list[Any]) -> Any:
    """The diagnosis report in a thread (the message whose header says Diagnosis)."""
    found = [m for m in thread if any(b.get("type") == "header" and "Diagnosis" in json.dumps(b)
                                      for b in m.blocks)]
    assert len(found) == 1, [m.text for m in thread]
    return found[0]


def check_step_errors(steps: list[dict[str, Any]], secrets: list[str]) -> dict[str, dict[str, Any]]:
    """Every step has a known status; each not-ok one a one-line, secret-free error. By id."""
    by_id = {}
    for s in steps:
        assert s["status"] in STEP_STATUSES, s
        if s["status"] in ("failed", "timeout", "error", "skipped"):
            err = s.get("error") or ""
            assert err.strip(), f"step {s['id']} is {s['status']} without a message"
            assert "\n" not in err and "\r" not in err, f"step {s['id']}: multi-line error {err!r}"
            assert "Traceback" not in err and "internal error" not in err, err
            assert not find_leaks(f"step {s['id']} error", err, secrets), err
        by_id[s["id"]] = s
    return by_id


def check_cli_clean(run: CliRun, secrets: list[str]) -> None:
    """No traceback or unhandled-asyncio noise on the CLI's stderr; no secret anywhere."""
    for pattern in ("Traceback", *BAD_NOISE):
        assert pattern not in run.stderr, run.describe()
    leaks = find_leaks("cli", run.stdout + run.stderr, secrets)
    assert not leaks, "a secret in the CLI output: " + "; ".join(str(leak) for leak in leaks)


def fresh_password() -> str:
    """A distinctive MySQL password (quotes and a dollar sign included)."""
    return f"Rel-MySQL'pw$4242-{pysecrets.token_hex(6)}"


async def check_slack_diagnosis(rig: Rig, parent: Any, thread: list[Any]
                                ) -> tuple[Any, dict[str, dict[str, Any]]]:
    """The Slack side of a partial diagnosis: the parent says it finished, the progress message
    shows every step finished, the report is in the thread and names each step that did not
    complete; step errors are one-line and secret-free; nothing secret reached Slack.

    Returns the report message and the stored steps by id.
    """
    assert "finished" in parent.text, parent.text
    progress = [m for m in thread if "Runbook progress" in text_of(m.blocks)]
    assert len(progress) == 1 and "· finished" in text_of(progress[0].blocks)
    assert "· running" not in text_of(progress[0].blocks) and "· queued" not in text_of(progress[0].blocks)
    report = report_message(thread)
    latest = await rig.rt.state.latest_diagnosis("test")
    assert latest is not None, "the diagnosis is stored"
    diagnosis = latest.diagnosis()
    steps = check_step_errors([s.model_dump(mode="json") for s in diagnosis.steps], rig.host.secrets())
    shown = text_of(report.blocks)
    for s in steps.values():
        if s["status"] in ("failed", "timeout", "error"):
            assert s["title"] in shown, f"the report does not name failing step {s['id']}"
    assert diagnosis.causes, "a partial diagnosis still names a cause (or says what is missing)"
    assert not find_leaks("slack", rig.payload_text(), rig.host.secrets())
    return report, steps
