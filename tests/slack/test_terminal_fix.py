"""A Slack approval and a terminal fix (`qcc-bot fix`) of the same proposal share one
exactly-once state: whichever runs first, the other runs nothing and says why."""

from __future__ import annotations

import pytest
from rich.console import Console

from bot.cli_fix import terminal_fix
from bot.errors import ApprovalAlreadyHandled
from tests.slack.harness import approve_value, fix_button, open_approval, report_of, run_diagnose, text_of

ALTER = "ADD COLUMN health_check_model"


def alters(sql) -> int:
    return sum(ALTER in s for s in sql.executed)


async def _typed(prompt: str) -> str:
    return "test"


async def _terminal(bot, action: str = "add_column") -> tuple[int, str]:
    console = Console(record=True, width=200, force_terminal=False)
    code = await terminal_fix(bot.rt.services, "test", action=action, fresh=False, actor="cli:ana",
                              console=console, confirm=_typed)
    return code, console.export_text()


async def test_terminal_fix_first_then_the_slack_fix_button_runs_nothing(bot):
    """The terminal fixes the proposal of a Slack diagnosis (its report in the thread); a later
    click on that report's Fix button opens no card, runs nothing, and tells the clicker."""
    parent, thread = await run_diagnose(bot)
    code, out = await _terminal(bot)
    assert code == 0 and "fix succeeded" in out and alters(bot.sql) == 1
    report = report_of(thread)
    button = fix_button(report, "health_check_model")
    await bot.sim.click(button["action_id"], button["value"], user="UREQUESTER", message_ts=report.ts,
                        thread_ts=parent.ts)
    await bot.idle()
    assert alters(bot.sql) == 1
    assert not any("Approval" in str(m.blocks) for m in bot.fake.thread(parent.ts))
    eph = bot.fake.calls_to("chat.postEphemeral")[-1].params
    assert "already ran and succeeded" in eph["text"] and "cli:ana" in eph["text"]


async def test_open_slack_approval_blocks_the_terminal_and_slack_success_is_already_handled(bot):
    """While a Slack card is pending the terminal is refused (exit via ApprovalAlreadyHandled);
    after the Slack approval ran the fix, the terminal answers "already handled" and runs nothing."""
    parent, card = await open_approval(bot)
    with pytest.raises(ApprovalAlreadyHandled, match=r"Slack thread \(pending\)"):
        await _terminal(bot)
    assert alters(bot.sql) == 0
    await bot.sim.click("qcc_approve", approve_value(card), user="UAPPROVER1", message_ts=card.ts,
                        thread_ts=parent.ts)
    await bot.idle()
    assert alters(bot.sql) == 1
    code, out = await _terminal(bot)
    assert code == 0 and "already handled: add_column succeeded (approved by UAPPROVER1" in out
    assert alters(bot.sql) == 1
    events = [(e.actor, e.event, e.result) for e in await bot.rt.state.list_audit(100)]
    assert ("cli:ana", "terminal_fix_refused", "already handled") in events
    assert "succeeded" in text_of(bot.fake.messages[card.ts].blocks)
