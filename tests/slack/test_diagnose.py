"""`/qcc diagnose`: ack before SSH, a parent message, one progress message, the report."""

from __future__ import annotations

import asyncio
import json
import re

from bot.models import CommandResult
from tests.slack.harness import buttons, fix_button, report_of, run_diagnose, text_of
from tests.slack.scenario import migration_failed


class GatedRunner:
    """Wraps a fake runner: every command waits until the test opens the gate."""

    def __init__(self, inner):
        self.inner = inner
        self.gate = asyncio.Event()
        self.started: list[str] = []

    @property
    def commands_run(self):
        return self.inner.commands_run

    async def run(self, command: str, *, timeout_s: float, **kw) -> CommandResult:
        self.started.append(command)
        await self.gate.wait()
        return await self.inner.run(command, timeout_s=timeout_s, **kw)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_ack_arrives_before_any_ssh_command(start_bot):
    """The slash command is answered (HTTP 200) while every SSH command is still held back:
    the bot acknowledges first and runs the runbook afterwards in the background."""
    inner, sql = migration_failed()
    gated = GatedRunner(inner)
    bot = await start_bot(shell=gated, sql=sql)
    reply = await asyncio.wait_for(bot.sim.slash("diagnose test"), timeout=2.5)
    assert reply.status == 200 and reply.body == ""
    assert inner.commands_run == [], "an SSH command completed before the ack"
    gated.gate.set()
    await bot.idle()
    assert len(inner.commands_run) == len([s for s in bot.rt.services.runbook.steps if s.transport == "ssh"])


async def test_thread_progress_and_report(start_bot):
    """A parent message in the channel; in its thread ONE progress message (updated step by step
    until every step shows ok/failed/timeout with a duration) and the report with ranked causes,
    quoted evidence, summarized logs and one Fix button per runnable fix carrying an opaque id."""
    shell, sql = migration_failed(delay_s=0.05)
    bot = await start_bot(shell=shell, sql=sql)
    parent, thread = await run_diagnose(bot)
    assert "started a diagnosis of `test`" in parent.versions[0]["text"]
    assert "finished" in parent.text and "migration" in parent.text.lower()
    progress = [m for m in thread if "Runbook progress" in text_of(m.blocks)]
    assert len(progress) == 1, "exactly one progress message"
    versions = progress[0].versions
    assert len(versions) >= 3, "the progress message was updated as steps finished"
    first, last = text_of(versions[0]["blocks"]), text_of(progress[0].blocks)
    assert "queued" in first and "✅" not in first
    assert "queued" not in last and "· running" not in last
    assert re.search(r"✅ Container status \(compose labels\) · ok \d+\.\ds", last), last
    assert any("· running" in text_of(v["blocks"]) for v in versions), "steps were shown running"

    report = report_of(thread)
    text = json.dumps(report.blocks)
    assert "1. " in text and "% confidence" in text
    assert "Unknown column 'health_check_model'" in text, "evidence is quoted"
    assert "*Logs*" in text
    fix = fix_button(report, "health_check_model")
    assert fix["action_id"].startswith("qcc_fix_")
    assert 10 <= len(fix["value"]) <= 64 and "ALTER" not in fix["value"], "an opaque id only"
    assert all(len(b.get("value", "")) <= 2000 for b in buttons(report.blocks))
    assert len(report.blocks) <= 50
    assert all(len((b.get("text") or {}).get("text", "")) <= 3000 for b in report.blocks)


async def test_report_overflow_goes_to_a_file(start_bot):
    """A report too long for Block Kit is marked in the message and posted complete as a file in
    the thread (files_upload_v2: getUploadURLExternal → upload → completeUploadExternal)."""
    shell, sql = migration_failed()
    long_error = "2025-12-10T06:14:01.600000000Z 2025/12/10 06:14:01 Error 1054 (42S22): Unknown column " \
                 "'health_check_model' in 'field list' " + "x" * 250
    shell.responses["migration|health_check_model"] = "\n".join([long_error] * 40)
    shell.responses["logs --tail"] = "\n".join(
        f"2025-12-10T06:14:{i % 60:02d}.000000000Z 2025/12/10 06:14:01 request {i} failed: " + "y" * 200
        for i in range(300)) + "\n" + long_error
    bot = await start_bot(shell=shell, sql=sql)
    parent, thread = await run_diagnose(bot)
    report = report_of(thread)
    assert len(report.blocks) <= 50
    for b in report.blocks:
        assert len((b.get("text") or {}).get("text", "")) <= 3000
    assert "cut here: the full text is in" in text_of(report.blocks), "the cut is visible in the message"
    completes = bot.fake.calls_to("files.completeUploadExternal")
    assert completes and completes[-1].params.get("thread_ts") == parent.ts
    full = "\n".join(body.decode() for body in bot.fake.uploads.values())
    top = (await bot.rt.state.latest_diagnosis("test")).diagnosis().causes[0]
    assert top.evidence and all(line in full for line in top.evidence), "the file holds every evidence line"


async def test_status_and_logs(bot):
    """`/qcc status` posts container states only (one SSH command); `/qcc logs 5` a redacted summary."""
    await bot.sim.slash("status")
    await bot.idle()
    assert len(bot.shell.commands_run) == 1
    status = next(m for m in bot.fake.messages.values() if "Containers of" in json.dumps(m.blocks))
    assert "qcc_test_proxy" in json.dumps(status.blocks) and "Exited (1)" in json.dumps(status.blocks)
    await bot.sim.slash("logs 5 test")
    await bot.idle()
    logs = next(m for m in bot.fake.messages.values() if "Proxy logs of" in json.dumps(m.blocks))
    text = json.dumps(logs.blocks)
    assert "health_check_model" in text and "***" in text


async def test_audit_lists_latest_entries(bot):
    """`/qcc audit 5` answers ephemerally with the latest audit rows (who, what, where)."""
    await run_diagnose(bot)
    await bot.sim.slash("audit 5")
    await bot.idle()
    eph = bot.fake.calls_to("chat.postEphemeral")
    assert eph and "Latest audit entries" in json.dumps(eph[-1].params)
    assert "diagnosis_finished" in json.dumps(eph[-1].params)


async def test_diagnose_transport_failure_reported(start_bot):
    """When the host cannot be reached, the report says which steps failed instead of crashing."""
    from bot.errors import SSHUnreachable

    shell, sql = migration_failed()
    shell.responses = {"": SSHUnreachable("cannot reach root@127.0.0.1:2222", host="127.0.0.1")}
    bot = await start_bot(shell=shell, sql=sql)
    parent, thread = await run_diagnose(bot)
    report = report_of(thread)
    assert "cannot reach" in json.dumps(report.blocks)


async def test_escalate_uploads_redacted_archive_in_thread(bot):
    """`/qcc escalate` posts a parent message and uploads one .tar.gz into its thread with the
    complete proxy log, resources, the latest diagnosis and its replayable bundle — redacted."""
    import io
    import tarfile

    await run_diagnose(bot)
    parent, thread = await run_diagnose(bot, "escalate")
    assert "escalation bundle" in parent.text
    complete = bot.fake.calls_to("files.completeUploadExternal")[-1].params
    assert complete["thread_ts"] == parent.ts and complete["channel_id"] == "CINC"
    body = list(bot.fake.uploads.values())[-1]
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        names = tar.getnames()
        log = tar.extractfile("proxy.log").read().decode()
    assert {"proxy.log", "resources.txt", "diagnosis.json", "README.txt",
            "bundle/manifest.json"} <= set(names)
    assert "Error 1054" in log and "password=***" in log
    assert any("proxy log line" in text_of(m.blocks) for m in thread)
    assert "escalation_uploaded" in [e.event for e in await bot.rt.state.list_audit(20)]
