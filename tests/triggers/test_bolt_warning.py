"""Bolt's start-up warning "As you gave `client` as well, `token` will be unused" is gone: Bolt
reads $SLACK_BOT_TOKEN itself, and it is the token our one client already carries."""

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
