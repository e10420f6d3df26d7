"""Slack rate limits and 5xx, restarts mid-fix, and shutdown draining."""

from __future__ import annotations

import asyncio

from bot.state.models import ApprovalStatus, RunKind, RunStatus
from tests.slack.harness import approve_value, buttons, open_approval, run_diagnose, text_of


async def test_rate_limited_calls_are_retried(bot):
    """chat.postMessage answered 429 (Retry-After: 0) and chat.update answered 500 are retried
    by the client's retry handlers; the diagnosis still completes with its thread."""
    bot.fake.fail("chat.postMessage", status=429, retry_after=0, times=2)
    bot.fake.fail("chat.update", status=500, times=1)
    parent, thread = await run_diagnose(bot)
    limited = bot.fake.calls_to("chat.postMessage", ok_only=False)
    assert [c.status for c in limited[:3]] == [429, 429, 200]
    assert any(c.status == 500 for c in bot.fake.calls_to("chat.update", ok_only=False))
    assert any("Diagnosis" in text_of(m.blocks) for m in thread)


async def test_slack_down_for_good_is_logged_not_crashed(bot):
    """If Slack keeps failing past the retries the flow stops with a SlackError (reported in the
    log) and the bot keeps serving the next request."""
    bot.fake.fail("chat.postMessage", status=500, times=20)
    reply = await bot.sim.slash("status")
    assert reply.status == 200
    await bot.idle()
    bot.fake.failures.clear()
    parent, thread = await run_diagnose(bot)
    assert thread


async def test_restart_mid_fix_marks_interrupted_and_never_reruns(start_bot, tmp_path):
    """A fix left `running` by a bot that died is marked `interrupted` on the next start, the
    thread says so, the card loses its buttons, and nothing is executed again."""
    url = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    first = await start_bot(state_url=url)
    parent, card = await open_approval(first)
    approval_id = approve_value(card)
    state = first.rt.state
    # What a crash after "approved -> running" leaves behind (no process finishes it):
    await state.transition(approval_id, ApprovalStatus.PENDING, ApprovalStatus.APPROVED, actor="UAPPROVER1")
    run = await state.start_run(RunKind.FIX, "test", actor="UAPPROVER1", channel="CINC", thread_ts=parent.ts)
    await state.transition(approval_id, ApprovalStatus.APPROVED, ApprovalStatus.RUNNING, actor="UAPPROVER1",
                           fix_run_id=run.id)
    executed_before = list(first.sql.executed)

    second = await start_bot(state_url=url)  # same host name = same owner: a restart
    assert (await second.rt.state.get_run(run.id)).status == RunStatus.INTERRUPTED
    assert (await second.rt.state.get_approval(approval_id)).status == ApprovalStatus.INTERRUPTED
    notes = [m for m in second.fake.thread(parent.ts) if "interrupted by a bot restart" in text_of(m.blocks)]
    assert len(notes) == 1
    assert not buttons(second.fake.messages[card.ts].blocks)
    await second.sim.click("qcc_approve", approval_id, user="UAPPROVER2", message_ts=card.ts,
                           thread_ts=parent.ts)
    await second.idle()
    assert second.sql.executed == executed_before == []
    third = await start_bot(state_url=url)
    notes = [m for m in third.fake.thread(parent.ts) if "interrupted by a bot restart" in text_of(m.blocks)]
    assert len(notes) == 1, "a run is announced as interrupted once, by the first restart only"


async def test_shutdown_drains_running_work(start_bot, fake_slack):
    """Stopping the bot waits for a diagnosis in progress to finish and post its report."""
    from bot.transports.base import EnvironmentTransports
    from bot.transports.fake import FakeTransportProvider
    from handlers.server import running_bot
    from tests.slack.conftest import make_settings
    from tests.slack.scenario import migration_failed

    shell, sql = migration_failed(delay_s=0.1)
    provider = FakeTransportProvider({"test": EnvironmentTransports("test", shell, sql)})
    settings = make_settings(fake_slack.api_url)
    from handlers.diagnose import run_diagnosis
    from handlers.parsing import SlashRequest

    async with running_bot(settings, http=True, transports=provider, progress_interval_s=0.0,
                           state_url="sqlite+aiosqlite:///:memory:") as bot:
        bot.rt.tasks.spawn(run_diagnosis(bot.rt, SlashRequest("UREQUESTER", "CINC", "diagnose"), "test"),
                           name="diag")
        await asyncio.sleep(0.05)
        assert len(bot.rt.tasks) == 1
    assert any("Diagnosis · test" in text_of(m.blocks) for m in fake_slack.messages.values())
