"""Fixtures for the Slack tests: the fake Web API, settings, and the bot served over HTTP.

``fake_slack`` checks at teardown that nothing it recorded (every call's params and every
uploaded file, archives unpacked) contains a configured secret — so the whole Slack suite
proves "no Slack payload contains a secret", test by test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bot.config import Settings, load_settings
from bot.transports.base import EnvironmentTransports
from bot.transports.fake import FakeTransportProvider
from handlers.runtime import Runtime
from handlers.server import running_bot, start_http
from tests.fakes.slack_api import FakeSlackAPI
from tests.slack.harness import SlackSim
from tests.slack.scenario import (
    APP_TOKEN,
    BOT_TOKEN,
    MYSQL_PASSWORD,
    SECRETS,
    SIGNING_SECRET,
    migration_failed,
)


def settings_data(*, test_env: dict[str, Any] | None = None, slack: dict[str, Any] | None = None) -> dict[str,
                                                                                                          Any]:
    """Two environments: ``test`` (channel CINC, approvers + a user group) and ``prod``
    (production, channel CPROD, the requester is an approver but may not self-approve)."""
    base_env = {"ssh": {"host": "127.0.0.1", "port": 2222, "user": "root"}, "compose_project": "qcc_test",
                "compose_file": "docker-compose.test.yml",
                "mysql": {"user": "qcc", "password_env": "QCC_TEST_MYSQL_PASSWORD", "database": "qcc_proxy",
                          "port": 3308}}
    test = {**base_env, "approval": {"approvers": ["UAPPROVER1", "UAPPROVER2"],
                                     "approver_usergroup": "S0OPS"}}
    test.update(test_env or {})
    prod = {**base_env, "production": True, "channels": ["CPROD"],
            "approval": {"approvers": ["UREQUESTER", "UAPPROVER1"]}}
    return {"environments": {"test": test, "prod": prod},
            "slack": {"allowed_channels": ["CINC", "CPROD"], "channel_environments": {"CINC": "test",
                                                                                      "CPROD": "prod"},
                      **(slack or {})}}


def make_settings(api_url: str, data: dict[str, Any] | None = None, **env: str) -> Settings:
    secrets = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
               "SLACK_APP_TOKEN": APP_TOKEN,
               "SLACK_API_URL": api_url, **env}
    return load_settings(data=data or settings_data(), env=secrets)


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlackAPI]:
    """The fake Slack Web API; at teardown, asserts no configured secret reached it."""
    fake = await FakeSlackAPI().start()
    fake.usergroups["S0OPS"] = ["UGROUPMEMBER"]
    try:
        yield fake
    finally:
        await fake.stop()
    sent = fake.all_payload_text()
    leaked = [s[:6] + "…" for s in {*SECRETS, *fake.secrets} if s in sent]
    assert not leaked, f"configured secrets reached the fake Slack API: {leaked}"


@pytest.fixture
def mysql_password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("QCC_TEST_MYSQL_PASSWORD", MYSQL_PASSWORD)
    return MYSQL_PASSWORD


@dataclass
class BotUnderTest:
    """A bot served over HTTP, the fakes behind it, and a Slack simulator pointed at it."""

    sim: SlackSim
    fake: FakeSlackAPI
    rt: Runtime
    shell: Any
    sql: Any

    async def idle(self, timeout_s: float = 30.0) -> None:
        """Wait until the bot's background tasks (diagnoses, fixes) are done."""
        await self.rt.tasks.wait_idle(timeout_s)


StartBot = Callable[..., Awaitable[BotUnderTest]]


@pytest.fixture
async def start_bot(fake_slack: FakeSlackAPI, tmp_path: Any, mysql_password: str) -> AsyncIterator[StartBot]:
    """``await start_bot(settings=None, shell=None, sql=None, transports=None, state_url=None,
    real=False)``; ``real=True`` uses the real SSH/MySQL transports built from ``settings``."""
    stack = contextlib.AsyncExitStack()

    async def start(settings: Settings | None = None, shell: Any = None, sql: Any = None,
                    transports: Any = None, state_url: str | None = None, real: bool = False) -> BotUnderTest:
        settings = settings or make_settings(fake_slack.api_url)
        if transports is None and not real:
            if shell is None:
                shell, sql = migration_failed()
            transports = FakeTransportProvider({
                "test": EnvironmentTransports("test", shell, sql),
                "prod": EnvironmentTransports("prod", *migration_failed()),
            })
        bot = await stack.enter_async_context(running_bot(
            settings, http=True, transports=transports, progress_interval_s=0.0,
            state_url=state_url or f"sqlite+aiosqlite:///{tmp_path}/state-{len(stack._exit_callbacks)}.db"))
        fake_slack.secrets.update(bot.rt.services.secrets)  # e.g. a real database's random password
        runner, port = await start_http(bot.app, "127.0.0.1", 0)
        stack.push_async_callback(runner.cleanup)
        sim = SlackSim(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, fake_slack)
        stack.push_async_callback(sim.close)
        return BotUnderTest(sim=sim, fake=fake_slack, rt=bot.rt, shell=shell, sql=sql)

    try:
        yield start
    finally:
        await stack.aclose()


@pytest.fixture
async def bot(start_bot: StartBot) -> BotUnderTest:
    """The default bot: environment ``test`` shows the ``Error 1054`` migration failure."""
    return await start_bot()
