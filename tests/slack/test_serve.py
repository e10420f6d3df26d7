"""`serve(settings, http, port)` — the coroutine behind `qcc-bot serve [--http --port N]`."""

from __future__ import annotations

import asyncio

import pytest

from bot.errors import ConfigError, SlackError
from bot.transports.base import EnvironmentTransports
from bot.transports.fake import FakeTransportProvider
from handlers.server import serve
from tests.ports import free_port
from tests.slack.conftest import make_settings
from tests.slack.harness import SlackSim
from tests.slack.scenario import SIGNING_SECRET, migration_failed


async def test_serve_http_answers_signed_requests_and_stops(fake_slack, mysql_password, tmp_path,
                                                            monkeypatch):
    """serve(..., http=True, port=N) listens on /slack/events, handles a signed /qcc, and on stop
    drains the running work (the status reply is posted) before returning."""
    monkeypatch.chdir(tmp_path)  # the default SQLite state file lands here
    settings = make_settings(fake_slack.api_url)
    provider = FakeTransportProvider({"test": EnvironmentTransports("test", *migration_failed(delay_s=0.2))})
    port, stop = free_port(), asyncio.Event()
    server = asyncio.create_task(serve(settings, http=True, port=port, host="127.0.0.1", transports=provider,
                                       stop=stop))
    sim = SlackSim(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, fake_slack)
    try:
        for _ in range(100):
            try:
                reply = await sim.slash("status")
                break
            except OSError:
                await asyncio.sleep(0.05)
        assert reply.status == 200
        stop.set()
        await asyncio.wait_for(server, 30)
    finally:
        await sim.close()
        stop.set()
    assert any("Containers of" in str(m.blocks) for m in fake_slack.messages.values())
    assert (tmp_path / "qcc-state.db").exists()


async def test_serve_fails_fast_without_tokens(fake_slack):
    """Missing tokens stop serve() before anything is opened, naming each missing variable."""
    settings = make_settings(fake_slack.api_url, SLACK_BOT_TOKEN="", SLACK_APP_TOKEN="")
    with pytest.raises(ConfigError) as err:
        await serve(settings, http=False, port=0)
    assert any("SLACK_BOT_TOKEN" in p for p in err.value.problems)
    assert any("SLACK_APP_TOKEN" in p for p in err.value.problems)
    assert fake_slack.calls == []


async def test_socket_mode_connect_failure_is_clear(fake_slack, mysql_password, tmp_path):
    """Socket Mode against a Web API that refuses apps.connections.open stops with a SlackError."""
    settings = make_settings(fake_slack.api_url)
    provider = FakeTransportProvider({"test": EnvironmentTransports("test", *migration_failed())})
    with pytest.raises(SlackError, match="apps.connections.open failed: not_allowed_token_type"):
        await asyncio.wait_for(serve(settings, http=False, transports=provider), 20)
    assert fake_slack.calls_to("apps.connections.open")
