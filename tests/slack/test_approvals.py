"""Approval-gated fixes: the card, the policy at click time, one atomic transition, one run."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tests.slack.conftest import make_settings, settings_data
from tests.slack.harness import approve_value, buttons, open_approval, text_of

ALTER = "ADD COLUMN health_check_model"


def alters(sql) -> int:
    return sum(ALTER in s for s in sql.executed)


async def test_card_shows_exact_sql_env_diagnosis_and_requester(bot):
    """The Fix button opens a card in the thread with the exact SQL, the environment, the diagnosis
    it came from, who requested it, and Approve/Reject buttons carrying only the approval id."""
    parent, card = await open_approval(bot)
    text = text_of(card.blocks)
    assert ("ALTER TABLE nodes ADD COLUMN health_check_model VARCHAR(128) "
            "DEFAULT 'claude-haiku-4-5-20251001' AFTER health_check_method") in text
    assert "*Environment:* `test`" in text and "<@UREQUESTER>" in text and "*From diagnosis:*" in text
    ids = {b["action_id"]: b["value"] for b in buttons(card.blocks)}
    assert set(ids) == {"qcc_approve", "qcc_reject"}
    assert ids["qcc_approve"] == ids["qcc_reject"] and len(ids["qcc_approve"]) <= 64
    assert card.thread_ts == parent.ts
    assert alters(bot.sql) == 0, "nothing runs before approval"


async def test_authorized_approval_runs_fix_once_and_posts_before_after(bot):
    """An approver's click replaces the buttons with the decision, runs the ALTER exactly once
    (precondition re-checked first), re-runs the schema check and posts before/after."""
    parent, card = await open_approval(bot)
    reply = await bot.sim.click("qcc_approve", approve_value(card), user="UAPPROVER1", message_ts=card.ts,
                                thread_ts=parent.ts)
    assert reply.status == 200
    await bot.idle()
    assert alters(bot.sql) == 1
    assert any("health_check_model" == c["name"] for c in bot.sql.columns)
    card_now = bot.fake.messages[card.ts]
    assert not buttons(card_now.blocks), "buttons were replaced by the decision"
    assert "succeeded" in text_of(card_now.blocks) and "<@UAPPROVER1>" in text_of(card_now.blocks)
    assert any("approved" in text_of(v["blocks"]) for v in card_now.versions)
    result = next(m for m in bot.fake.thread(parent.ts) if "Fix succeeded" in text_of(m.blocks))
    text = text_of(result.blocks)
    assert "is missing" in text and "exists" in text, "before and after of the precondition"
    assert "added: `health_check_model`" in text, "before/after of the schema check"
    steps = [e.event for e in await bot.rt.state.list_audit(50)]
    for event in ("approval_requested", "approval_approved", "approval_running", "approval_succeeded"):
        assert event in steps


async def test_second_approve_click_runs_nothing(bot):
    """Clicking Approve again (or Slack delivering the click twice) runs nothing and tells the
    clicker who already handled it."""
    parent, card = await open_approval(bot)
    value = approve_value(card)
    await bot.sim.click("qcc_approve", value, user="UAPPROVER1", message_ts=card.ts, thread_ts=parent.ts)
    await bot.idle()
    await bot.sim.click("qcc_approve", value, user="UAPPROVER2", message_ts=card.ts, thread_ts=parent.ts)
    await bot.idle()
    assert alters(bot.sql) == 1
    eph = bot.fake.calls_to("chat.postEphemeral")[-1].params
    assert eph["user"] == "UAPPROVER2" and "Already handled by <@UAPPROVER1>" in eph["text"]


async def test_fifty_concurrent_approvals_execute_once(bot):
    """50 approve clicks at the same moment (different approvers and repeats) produce exactly one
    execution; the 49 others get an ephemeral "already handled" reason."""
    parent, card = await open_approval(bot)
    value = approve_value(card)
    users = ["UAPPROVER1", "UAPPROVER2"]
    replies = await asyncio.gather(*[
        bot.sim.click("qcc_approve", value, user=users[i % 2], message_ts=card.ts, thread_ts=parent.ts)
        for i in range(50)])
    assert all(r.status == 200 for r in replies)
    await bot.idle()
    assert alters(bot.sql) == 1
    handled = [c for c in bot.fake.calls_to("chat.postEphemeral") if "Already handled" in c.params.get("text",
                                                                                                       "")]
    assert len(handled) == 49
    events = [e.event for e in await bot.rt.state.list_audit(200)]
    assert events.count("approval_approved") == 1 and events.count("approval_running") == 1


async def test_unauthorized_user_is_refused(bot):
    """A user who is neither listed nor in the approver group gets an ephemeral refusal; nothing runs."""
    parent, card = await open_approval(bot)
    await bot.sim.click("qcc_approve", approve_value(card), user="URANDOM", message_ts=card.ts,
                        thread_ts=parent.ts)
    await bot.idle()
    assert alters(bot.sql) == 0
    eph = bot.fake.calls_to("chat.postEphemeral")[-1].params
    assert eph["user"] == "URANDOM" and "not an approver for test" in eph["text"]
    assert buttons(bot.fake.messages[card.ts].blocks), "the card stays open"
    assert "approval_refused" in [e.event for e in await bot.rt.state.list_audit(20)]


async def test_usergroup_member_may_approve(bot):
    """Membership of the approver user group (usergroups.users.list) is enough to approve."""
    parent, card = await open_approval(bot)
    await bot.sim.click("qcc_approve", approve_value(card), user="UGROUPMEMBER", message_ts=card.ts,
                        thread_ts=parent.ts)
    await bot.idle()
    assert bot.fake.calls_to("usergroups.users.list")
    assert alters(bot.sql) == 1


async def test_usergroup_api_error_fails_closed(bot):
    """When Slack cannot tell the group's members, approval is refused (fail closed)."""
    parent, card = await open_approval(bot)
    bot.fake.usergroups.clear()
    await bot.sim.click("qcc_approve", approve_value(card), user="UGROUPMEMBER", message_ts=card.ts,
                        thread_ts=parent.ts)
    await bot.idle()
    assert alters(bot.sql) == 0
    assert "fail closed" in bot.fake.calls_to("chat.postEphemeral")[-1].params["text"]


async def test_self_approval_refused_in_production(bot):
    """In production the requester cannot approve their own request, even as a listed approver;
    another approver can."""
    parent, card = await open_approval(bot, channel="CPROD", env="prod")
    await bot.sim.click("qcc_approve", approve_value(card), user="UREQUESTER", channel="CPROD",
                        message_ts=card.ts, thread_ts=parent.ts)
    await bot.idle()
    eph = bot.fake.calls_to("chat.postEphemeral")[-1].params
    assert "someone else must approve" in eph["text"]
    assert "approved" not in text_of(bot.fake.messages[card.ts].blocks).replace("Approve", "")
    await bot.sim.click("qcc_approve", approve_value(card), user="UAPPROVER1", channel="CPROD",
                        message_ts=card.ts, thread_ts=parent.ts)
    await bot.idle()
    assert "succeeded" in text_of(bot.fake.messages[card.ts].blocks)


async def test_self_approval_allowed_outside_production(bot):
    """Outside production (default policy) a listed approver may approve their own request."""
    parent, card = await open_approval(bot, requester="UAPPROVER1")
    await bot.sim.click("qcc_approve", approve_value(card), user="UAPPROVER1", message_ts=card.ts,
                        thread_ts=parent.ts)
    await bot.idle()
    assert alters(bot.sql) == 1


async def test_expired_approval_is_refused(bot):
    """A click after the expiry is refused with an ephemeral reason; the card shows it expired."""
    parent, card = await open_approval(bot)
    real = bot.rt.state.clock
    bot.rt.state.clock = lambda: real() + timedelta(seconds=901)
    await bot.sim.click("qcc_approve", approve_value(card), user="UAPPROVER1", message_ts=card.ts,
                        thread_ts=parent.ts)
    await bot.idle()
    assert alters(bot.sql) == 0
    assert "expired" in bot.fake.calls_to("chat.postEphemeral")[-1].params["text"]
    card_now = bot.fake.messages[card.ts]
    assert not buttons(card_now.blocks) and "expired" in text_of(card_now.blocks)


async def test_reject_closes_the_card(bot):
    """An approver's Reject closes the card; a later Approve runs nothing."""
    parent, card = await open_approval(bot)
    value = approve_value(card)
    await bot.sim.click("qcc_reject", value, user="UAPPROVER2", message_ts=card.ts, thread_ts=parent.ts)
    await bot.idle()
    assert "rejected" in text_of(bot.fake.messages[card.ts].blocks)
    await bot.sim.click("qcc_approve", value, user="UAPPROVER1", message_ts=card.ts, thread_ts=parent.ts)
    await bot.idle()
    assert alters(bot.sql) == 0
    assert "Already handled by <@UAPPROVER2>" in bot.fake.calls_to("chat.postEphemeral")[-1].params["text"]


async def test_precondition_no_longer_holds_runs_nothing(bot):
    """If the column appeared between diagnosis and approval, the fix is not run (no Error 1060)."""
    parent, card = await open_approval(bot)
    bot.sql.columns.append({"name": "health_check_model", "type": "varchar(128)"})
    await bot.sim.click("qcc_approve", approve_value(card), user="UAPPROVER1", message_ts=card.ts,
                        thread_ts=parent.ts)
    await bot.idle()
    assert alters(bot.sql) == 0
    assert any("Fix not run" in text_of(m.blocks) and "exists" in text_of(m.blocks)
               for m in bot.fake.thread(parent.ts))


@pytest.mark.slow  # waits out the fix's settle window (10 s)
async def test_restart_fix_verifies_container_is_back(bot):
    """The restart fix (shell) runs once after checking the proxy is still exited, and the
    after-check shows it running."""
    parent, card = await open_approval(bot, action="Restart the proxy service")
    await bot.sim.click("qcc_approve", approve_value(card), user="UAPPROVER1", message_ts=card.ts,
                        thread_ts=parent.ts)
    await bot.idle()
    restarts = [c for c in bot.shell.commands_run if c.endswith("restart proxy")]
    assert len(restarts) == 1
    result = next(m for m in bot.fake.thread(parent.ts) if "Fix succeeded" in text_of(m.blocks))
    assert "still exited" in text_of(result.blocks) and "is running" in text_of(result.blocks)


async def test_no_approvers_configured_nobody_can_approve(start_bot, fake_slack):
    """An environment without approvers or group cannot have fixes approved (fail closed)."""
    data = settings_data(test_env={"approval": {"approvers": []}})
    bot = await start_bot(settings=make_settings(fake_slack.api_url, data))
    parent, card = await open_approval(bot)
    await bot.sim.click("qcc_approve", approve_value(card), user="UAPPROVER1", message_ts=card.ts,
                        thread_ts=parent.ts)
    await bot.idle()
    assert alters(bot.sql) == 0
    assert "no approvers are configured" in bot.fake.calls_to("chat.postEphemeral")[-1].params["text"]
