"""The HTTP edge: Slack's signature, retries, channel policy and usage, over real HTTP."""

from __future__ import annotations

import time

from tests.slack.harness import SlackSim


async def test_forged_signature_is_rejected(bot):
    """A request signed with the wrong secret gets 401 and reaches no listener."""
    body = SlackSim.slash_body("diagnose test")
    forged = SlackSim("http://unused", "not-the-signing-secret", bot.fake).verifier.generate_signature(
        timestamp=str(int(time.time())), body=body)
    reply = await bot.sim.send(body, signature=forged)
    assert reply.status == 401
    await bot.idle()
    assert bot.shell.commands_run == []
    assert not bot.fake.calls_to("chat.postMessage")


async def test_tampered_body_is_rejected(bot):
    """A correctly signed body that was changed afterwards fails verification (401)."""
    body = SlackSim.slash_body("status test")
    headers = bot.sim.headers(body)
    tampered = body.replace("status", "diagnose")
    async with bot.sim.http.post(bot.sim.url, data=tampered.encode(), headers=headers) as resp:
        assert resp.status == 401
    assert bot.shell.commands_run == []


async def test_stale_timestamp_is_rejected(bot):
    """A validly signed request older than five minutes is refused (replay protection)."""
    reply = await bot.sim.slash("diagnose test", timestamp=int(time.time()) - 10 * 60)
    assert reply.status == 401
    await bot.idle()
    assert bot.shell.commands_run == []


async def test_slack_retry_is_acknowledged_and_ignored(bot):
    """A delivery with X-Slack-Retry-Num is answered 200 and does nothing (the first one is handled)."""
    reply = await bot.sim.slash("diagnose test", retry_num=1)
    assert reply.status == 200
    await bot.idle()
    assert bot.shell.commands_run == []
    assert not bot.fake.calls_to("chat.postMessage")


async def test_channel_not_allowed_gets_ephemeral_refusal(bot):
    """/qcc in a channel outside slack.allowed_channels gets an ephemeral refusal and runs nothing."""
    reply = await bot.sim.slash("diagnose test", channel="CRANDOM")
    assert reply.status == 200
    body = reply.json()
    assert "not enabled in this channel" in body["text"]
    assert body.get("response_type", "ephemeral") == "ephemeral"
    await bot.idle()
    assert bot.shell.commands_run == []
    assert not bot.fake.calls_to("chat.postMessage")


async def test_environment_restricted_to_its_channel(bot):
    """`prod` may only be targeted from its own channel: from the test channel it is refused."""
    reply = await bot.sim.slash("diagnose prod", channel="CINC")
    assert "can only be targeted from its own channel" in reply.json()["text"]
    await bot.idle()
    assert bot.shell.commands_run == []


async def test_unknown_input_gets_short_usage(bot):
    """Unknown subcommands answer with the usage line, nothing else happens."""
    reply = await bot.sim.slash("frobnicate now")
    text = reply.json()["text"]
    assert "unknown command 'frobnicate'" in text and "/qcc diagnose [env]" in text
    await bot.idle()
    assert bot.shell.commands_run == []


async def test_unknown_environment_is_named(bot):
    """An unknown environment is refused with the configured names."""
    reply = await bot.sim.slash("status staging")
    assert "unknown environment 'staging'" in reply.json()["text"]
    assert "prod, test" in reply.json()["text"]


async def test_smart_quotes_nbsp_and_entities_are_normalized(bot):
    """Text typed with smart quotes, a non-breaking space and HTML entities still parses."""
    reply = await bot.sim.slash("\u201cstatus\u201d\u00a0\u2018test\u2019 ")
    assert reply.status == 200 and reply.body == ""
    await bot.idle()
    status = [m for m in bot.fake.messages.values() if "Containers of" in m.text
              or "qcc_test_proxy" in m.text]
    assert status, "status was not posted"


async def test_help_lists_commands_and_policy(bot):
    """`/qcc help test` answers ephemerally with the usage and the environment's approval policy."""
    reply = await bot.sim.slash("help test")
    body = reply.body
    assert "/qcc diagnose [env]" in body and "UAPPROVER1" in body and "S0OPS" in body
    assert "approvals expire after 900s" in body


async def test_missing_signing_secret_fails_fast(fake_slack):
    """HTTP mode without SLACK_SIGNING_SECRET stops at once with a clear message."""
    import pytest

    from bot.errors import ConfigError
    from handlers.server import check_credentials
    from tests.slack.conftest import make_settings

    settings = make_settings(fake_slack.api_url, SLACK_SIGNING_SECRET="")
    with pytest.raises(ConfigError) as err:
        check_credentials(settings, http=True)
    assert any("SLACK_SIGNING_SECRET is not set" in p for p in err.value.problems)
    no_app = make_settings(fake_slack.api_url, SLACK_APP_TOKEN="")
    with pytest.raises(ConfigError) as err:
        check_credentials(no_app, http=False)
    assert any("SLACK_APP_TOKEN is not set" in p for p in err.value.problems)
