"""The server's part of issue 12: Bolt's start-up warning "As you gave `client` as well,
`token` will be unused" is gone (Bolt reads $SLACK_BOT_TOKEN itself, and it is the token our
one client already carries); the webhook routes are served in both modes; concurrent events
open one incident."""

from __future__ import annotations

import logging

from tests.slack.scenario import BOT_TOKEN

WARNING = "As you gave `client` as well, `token` will be unused"


async def test_no_token_warning_at_start_up(start_trigger_bot, monkeypatch, caplog):
    """With SLACK_BOT_TOKEN in the environment (as in docker compose), building the app logs
    no such warning, and the app still uses our client."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    caplog.set_level(logging.DEBUG)
    bot = await start_trigger_bot()
    assert WARNING not in caplog.text
    assert bot.rt.out.client.token == BOT_TOKEN


async def test_a_different_token_is_still_reported(start_trigger_bot, monkeypatch, caplog):
    """The filter is narrow: a $SLACK_BOT_TOKEN that differs from the client's is a real
    misconfiguration and Bolt's warning stays."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-9999-other-token")
    caplog.set_level(logging.WARNING)
    await start_trigger_bot()
    assert WARNING in caplog.text


def test_webhook_routes_are_served_in_both_modes():
    """HTTP mode serves /slack/events plus the hooks; Socket Mode (no bolt app) still serves
    /healthz, /metrics and the hooks on the same port."""
    from handlers.server import web_app

    class Hooks:
        def routes(self):
            from aiohttp import web

            async def ok(_):
                return web.Response()

            return [web.post("/hooks/github", ok), web.post("/hooks/alertmanager", ok)]

    socket_paths = {r.canonical for r in web_app(None, None, Hooks()).router.resources()}  # type: ignore[arg-type]
    assert {"/healthz", "/hooks/github", "/hooks/alertmanager"} <= socket_paths
    assert "/slack/events" not in socket_paths


async def test_concurrent_failures_open_one_incident(start_trigger_bot):
    """Five failed-deploy deliveries at once: one incident, one diagnosis, four notes in its thread."""
    import asyncio

    from tests.triggers.conftest import parents, workflow_run

    bot = await start_trigger_bot()
    replies = await asyncio.gather(*(bot.hooks.github(workflow_run("failure", run_id=100 + i)) for i in range(5)))
    assert [r.status for r in replies] == [202] * 5
    await bot.idle()
    [parent] = parents(bot.fake, "CINC")
    notes = [m for m in bot.fake.thread(parent.ts) if "Another failed deploy" in m.text]
    assert len(notes) == 4
    assert len([e for e in await bot.rt.state.list_audit(100) if e.event == "diagnosis_started"]) == 1
