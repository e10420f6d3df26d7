"""Fixtures for the trigger tests: the bot served over HTTP with its webhook endpoints, senders
that sign like GitHub and post like Alertmanager, and payload builders.

Environment ``test`` posts incidents in ``CINC`` and is deployed by workflow ``Deploy test`` of
``acme/qcc_plus`` on branch ``test``; its alerts carry ``{service: qcc_plus, env: test}``.
``prod`` posts in ``CPROD``, deployed by ``.github/workflows/deploy-prod.yml`` on ``main``.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bot.config import Settings
from bot.transports.base import EnvironmentTransports
from bot.transports.fake import FakeTransportProvider
from bot.triggers import sign_github
from handlers.runtime import Runtime
from handlers.server import running_bot, start_http
from handlers.watching import Watcher
from tests.fakes.slack_api import FakeSlackAPI
from tests.slack.conftest import fake_slack, make_settings, mysql_password, settings_data  # noqa: F401
from tests.slack.harness import SlackSim
from tests.slack.scenario import SIGNING_SECRET, migration_failed

GITHUB_SECRET = "gh-hook-SECRET-5150-abcdef"
AM_TOKEN = "am-token-SECRET-8080"
REPO = "acme/qcc_plus"


def trigger_settings_data(*, watch: dict[str, Any] | None = None, test_env: dict[str, Any] | None = None,
                          webhooks: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Slack tests' two environments plus triggers, incident channels and the webhook secrets."""
    test = {"slack": {"incident_channel": "CINC"},
            "triggers": {"github": {"repository": REPO, "workflow": "Deploy test", "branch": "test"},
                         "alertmanager": {"match": {"service": "qcc_plus", "env": "test"}}},
            **(test_env or {})}
    data = settings_data(test_env=test)
    data["environments"]["prod"].update({
        "slack": {"incident_channel": "CPROD"},
        "triggers": {"github": {"repository": REPO, "workflow": ".github/workflows/deploy-prod.yml",
                                "branch": "main"}}})
    data["webhooks"] = {"github_secret_env": "QCC_GITHUB_WEBHOOK_SECRET",
                        "alertmanager_token_env": "QCC_ALERTMANAGER_TOKEN", **(webhooks or {})}
    data["watch"] = {"window_min": 10, "interval_s": 20, **(watch or {})}
    return data


def workflow_run(conclusion: str | None, *, action: str = "completed", name: str = "Deploy test",
                 path: str = ".github/workflows/deploy-test.yml", branch: str = "test", run_id: int = 9001,
                 sha: str = "4f2c9e1d0b7a65c3e8f1a2b3c4d5e6f708192a3b", repo: str = REPO) -> dict[str, Any]:
    """A ``workflow_run`` webhook body as GitHub sends it (the fields the bot reads and some more)."""
    return {"action": action,
            "workflow_run": {"id": run_id, "name": name, "path": path, "head_branch": branch, "head_sha": sha,
                             "status": "completed" if action == "completed" else "in_progress",
                             "conclusion": conclusion, "run_number": run_id % 1000, "event": "push",
                             "html_url": f"https://github.com/{repo}/actions/runs/{run_id}"},
            "workflow": {"id": 77, "name": name, "path": path},
            "repository": {"id": 1, "full_name": repo, "name": repo.split("/")[1]},
            "sender": {"login": "deployer"}}


def alert_payload(status: str, *, labels: dict[str, str] | None = None, alertname: str = "QccProxyDown",
                  starts: str = "2026-12-01T10:00:00Z") -> dict[str, Any]:
    """An Alertmanager v4 webhook body with one alert."""
    lab = {"alertname": alertname, "service": "qcc_plus", "env": "test", "severity": "page", **(labels or {})}
    alert = {"status": status, "labels": lab,
             "annotations": {"summary": "qcc_plus proxy is not answering /version"},
             "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-01T10:20:00Z",
             "generatorURL": "http://prometheus.invalid/graph?g0.expr=up", "fingerprint": "c0ffee1234"}
    return {"version": "4", "groupKey": "{}:{alertname=\"QccProxyDown\"}", "truncatedAlerts": 0,
            "status": status, "receiver": "qcc-bot", "groupLabels": {"alertname": alertname},
            "commonLabels": lab, "commonAnnotations": alert["annotations"],
            "externalURL": "http://alertmanager.invalid", "alerts": [alert]}


@dataclass
class HookReply:
    status: int
    body: dict[str, Any]


class HookSender:
    """Posts webhooks to the bot like GitHub (signed) and Alertmanager (bearer token) do."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        await self.http.close()

    async def raw(self, path: str, body: bytes, headers: dict[str, str]) -> HookReply:
        async with self.http.post(self.base + path, data=body, headers=headers) as resp:
            text = await resp.text()
            return HookReply(resp.status, json.loads(text) if text.startswith("{") else {"raw": text})

    async def github(self, payload: Any, *, event: str = "workflow_run", delivery: str | None = None,
                     secret: str = GITHUB_SECRET, signature: str | None = None) -> HookReply:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
                   "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
                   "X-Hub-Signature-256": signature or sign_github(secret, body),
                   "User-Agent": "GitHub-Hookshot/test"}
        return await self.raw("/hooks/github", body, headers)

    async def alertmanager(self, payload: Any, *, token: str | None = AM_TOKEN) -> HookReply:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.27.0"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.raw("/hooks/alertmanager", body, headers)


@dataclass
class TriggerBot:
    """The bot with its webhooks served on a loopback port, and the fakes behind it."""

    hooks: HookSender
    sim: SlackSim
    fake: FakeSlackAPI
    rt: Runtime
    watcher: Watcher
    settings: Settings

    async def idle(self, timeout_s: float = 60.0) -> None:
        """Wait until background work (trigger handling, diagnoses) and watch loops are done."""
        for _ in range(3):  # a trigger may start a watch whose end starts a diagnosis
            await self.rt.tasks.wait_idle(timeout_s)
            await self.watcher.wait_idle(timeout_s)


StartTriggerBot = Callable[..., Awaitable[TriggerBot]]


@pytest.fixture
def hook_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCC_GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)
    monkeypatch.setenv("QCC_ALERTMANAGER_TOKEN", AM_TOKEN)


@pytest.fixture
async def start_trigger_bot(fake_slack: FakeSlackAPI, tmp_path: Any, mysql_password: str,  # noqa: F811
                            hook_secrets: None) -> AsyncIterator[StartTriggerBot]:
    """``await start_trigger_bot(data=None, transports=None, state_url=None, watch_options=None,
    instance_id=None)``; several bots may be started (and stopped with ``stop``) in one test."""
    stack = contextlib.AsyncExitStack()

    async def start(data: dict[str, Any] | None = None, transports: Any = None, state_url: str | None = None,
                    watch_options: dict[str, Any] | None = None, exit_stack: Any = None) -> TriggerBot:
        settings = make_settings(fake_slack.api_url, data or trigger_settings_data())
        if transports is None:
            transports = FakeTransportProvider({
                "test": EnvironmentTransports("test", *migration_failed()),
                "prod": EnvironmentTransports("prod", *migration_failed()),
            })
        owner = exit_stack or stack
        bot = await owner.enter_async_context(running_bot(
            settings, http=True, transports=transports, progress_interval_s=0.0, watch_options=watch_options,
            state_url=state_url or f"sqlite+aiosqlite:///{tmp_path}/triggers.db"))
        fake_slack.secrets.update(bot.rt.services.secrets)
        runner, port = await start_http(bot.app, "127.0.0.1", 0, hooks=bot.hooks)
        owner.push_async_callback(runner.cleanup)
        base = f"http://127.0.0.1:{port}"
        hooks = HookSender(base)
        owner.push_async_callback(hooks.close)
        sim = SlackSim(base + "/slack/events", SIGNING_SECRET, fake_slack)
        owner.push_async_callback(sim.close)
        return TriggerBot(hooks=hooks, sim=sim, fake=fake_slack, rt=bot.rt, watcher=bot.watcher,
                          settings=settings)

    try:
        yield start
    finally:
        await stack.aclose()


def parents(fake: FakeSlackAPI, channel: str | None = None) -> list[Any]:
    """Top-level messages the bot posted (optionally in ``channel``), in order."""
    return [m for m in fake.messages.values() if m.thread_ts is None and (channel is None or m.channel == channel)]


def report_in(thread: list[Any]) -> Any | None:
    """The diagnosis report of a thread (a message with a 'Diagnosis' header), if any."""
    return next((m for m in thread if any(b.get("type") == "header" and "Diagnosis" in json.dumps(b)
                                          for b in m.blocks)), None)
