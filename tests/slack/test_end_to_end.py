"""The issue's "Must show", end to end: signed Slack requests → real OpenSSH sandbox host →
real MariaDB, with every Web API call going to the fake Slack server."""

from __future__ import annotations

import asyncio

import pytest

from qcc_sandbox import MySQLTarget, SandboxDir
from tests.slack.conftest import make_settings, settings_data
from tests.slack.harness import approve_value, buttons, fix_button, open_approval, report_of, text_of

pytestmark = [pytest.mark.sshd, pytest.mark.mariadb]


@pytest.fixture
async def e2e(start_bot, fake_slack, make_sshd, mariadb, tmp_path):
    """The bot on real transports: an sshd serving the `migration_failed` sandbox (stand-in docker
    CLI, commands.log) and a MariaDB database whose `nodes` lacks health_check_model."""
    db = mariadb.create_database(with_health_check_model=False)
    sandbox = SandboxDir(tmp_path / "host")
    sandbox.load("migration_failed", database=MySQLTarget(host=db.host, port=db.port, user=db.user,
                                                          password=db.password, database=db.database))
    server = make_sshd(set_env=sandbox.sshd_env())
    env = {"ssh": server.ssh_config().model_dump(mode="json"), **sandbox.config_paths(),
           "mysql": db.mysql_config().model_dump(mode="json")}
    settings = make_settings(fake_slack.api_url, settings_data(test_env=env))
    bot = await start_bot(settings=settings, real=True)
    return bot, sandbox, db, mariadb


def has_column(helper, db) -> bool:
    rows = helper.admin_query("SELECT COUNT(*) AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s "
                              "AND TABLE_NAME='nodes' AND COLUMN_NAME='health_check_model'", (db.database,))
    return rows[0]["n"] == 1


async def test_diagnose_approve_fix_column_appears(e2e):
    """`/qcc diagnose test` → thread with progress and report → Fix → approval card → approval by
    an allowed user → nodes.health_check_model exists in MariaDB → after-check posted.
    A second approve click runs nothing. The report carries the health checklist and the
    hypothesis table (the runbook's five first, each with its verdict)."""
    bot, sandbox, db, helper = e2e
    assert not has_column(helper, db)
    parent, card = await open_approval(bot)
    thread = bot.fake.thread(parent.ts)
    progress = next(m for m in thread if "Runbook progress" in text_of(m.blocks))
    assert len(progress.versions) >= 2 and "· queued" not in text_of(progress.blocks)
    report = report_of(thread)
    assert "Unknown column 'health_check_model'" in text_of(report.blocks)
    body = text_of(report.blocks)
    assert "*Health checklist*" in body and "✗ proxy container running" in body, "the checklist is in Slack"
    assert "*Hypotheses*" in body and "`migration_failed`" in body and "`port_conflict` —" in body
    assert "ALTER TABLE nodes ADD COLUMN health_check_model" in text_of(card.blocks)
    assert sandbox.commands(), "the diagnosis ran on the sandbox host"

    value = approve_value(card)
    await bot.sim.click("qcc_approve", value, user="UAPPROVER1", message_ts=card.ts, thread_ts=parent.ts)
    await bot.idle(120)
    assert has_column(helper, db), "the column really appears in MariaDB"
    result = next(m for m in bot.fake.thread(parent.ts) if "Fix succeeded" in text_of(m.blocks))
    assert "added: `health_check_model`" in text_of(result.blocks), "the after-check is posted"
    assert not buttons(bot.fake.messages[card.ts].blocks)

    commands_before = len(sandbox.commands())
    await bot.sim.click("qcc_approve", value, user="UAPPROVER2", message_ts=card.ts, thread_ts=parent.ts)
    await bot.idle(60)
    assert "Already handled by <@UAPPROVER1>" in bot.fake.calls_to("chat.postEphemeral")[-1].params["text"]
    assert len(sandbox.commands()) == commands_before, "the second click ran nothing on the host"
    events = [e.event for e in await bot.rt.state.list_audit(200)]
    assert events.count("approval_running") == 1


async def test_fifty_concurrent_approvals_one_restart_on_the_host(e2e):
    """After the column fix, 50 concurrent approve clicks on the report's restart fix: the sandbox
    host's commands.log shows `docker compose ... restart proxy` exactly once, and the proxy is up."""
    bot, sandbox, db, helper = e2e
    parent, card = await open_approval(bot)
    await bot.sim.click("qcc_approve", approve_value(card), user="UAPPROVER1", message_ts=card.ts,
                        thread_ts=parent.ts)
    await bot.idle(120)
    assert has_column(helper, db)
    report = report_of(bot.fake.thread(parent.ts))
    restart = fix_button(report, "restart proxy")
    await bot.sim.click(restart["action_id"], restart["value"], user="UREQUESTER", message_ts=report.ts,
                        thread_ts=parent.ts)
    await bot.idle(60)
    card = [m for m in bot.fake.thread(parent.ts) if "Approval" in text_of(m.blocks)][-1]
    assert "restart proxy" in text_of(card.blocks)
    value = approve_value(card)
    replies = await asyncio.gather(*[
        bot.sim.click("qcc_approve", value, user=("UAPPROVER1", "UAPPROVER2")[i % 2], message_ts=card.ts,
                      thread_ts=parent.ts) for i in range(50)])
    assert all(r.status == 200 for r in replies)
    await bot.idle(120)
    assert sandbox.count("docker", "compose", "restart", "proxy") == 1
    assert sandbox.container_state("qcc_test_proxy") == "running"
    results = [m for m in bot.fake.thread(parent.ts) if "Fix succeeded" in text_of(m.blocks)]
    assert len(results) == 2 and "is running" in text_of(results[-1].blocks)
