"""Exactly once across replicas: two bot processes sharing their state in MariaDB.

Each replica is a real ``qcc-bot serve --http`` process with its own ``QCC_INSTANCE_ID``; both
talk to the same fake Slack Web API, the same sandbox host (a real sshd with the stand-in
docker CLI, whose ``commands.log`` counts executions) and the same state database.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from handlers.server import is_retry
from qcc_sandbox.scenario import Fault
from tests.reliability.figures import set_number
from tests.reliability.replica_harness import (
    APPROVERS,
    open_card,
    parents,
    replica_site,
    thread_text,
    wait_parent,
    wait_report,
)
from tests.slack.harness import SlackSim, approve_value, buttons, text_of

pytestmark = [pytest.mark.reliability, pytest.mark.sshd, pytest.mark.mariadb]
CLICKS = 100


@pytest.fixture
async def site(make_sshd, mariadb, tmp_path):
    async with replica_site(make_sshd, mariadb, tmp_path) as s:
        yield s


async def test_hundred_clicks_over_two_replicas_execute_once_and_retries_are_ignored(site):
    """Two replicas started together on one fresh state database. A /qcc diagnose delivered to
    replica A and re-delivered by Slack (X-Slack-Retry-Num 1 to B, 2 to A) runs one diagnosis.
    Then 100 concurrent, properly signed Approve clicks on the restart fix, alternating between
    the replicas and two approvers, restart the proxy exactly once on the sandbox host (its
    command log) with exactly one ``approval_running`` audit row; the 99 other clickers are told
    it was already handled."""
    a, b = await asyncio.gather(site.start("rA", lease_s=5), site.start("rB", lease_s=5))
    await asyncio.gather(a.wait_ready(), b.wait_ready())

    body = SlackSim.slash_body("diagnose test")
    first = await a.sim.send(body)
    retries = await asyncio.gather(b.sim.send(body, retry_num=1), a.sim.send(body, retry_num=2))
    assert first.status == 200 and all(r.status == 200 and r.body == "" for r in retries)
    parent = await wait_parent(site.fake, set())
    report = await wait_report(site.fake, parent.ts)
    await asyncio.sleep(1.0)  # time for a retry, had it not been dropped, to open a second thread
    assert len(parents(site.fake)) == 1, "a retried command must not start a second diagnosis"
    assert site.audit_count("command_diagnose") == 1
    assert site.query("SELECT COUNT(*) AS n FROM {db}.qcc_runs WHERE kind='diagnosis'")[0]["n"] == 1

    card = await open_card(a, site.fake, parent, report, "restart proxy")
    assert "restart proxy" in text_of(card.blocks)
    value = approve_value(card)
    assert site.restarts() == 0
    replicas = (a, b)
    t0 = time.monotonic()
    replies = await asyncio.gather(*[
        replicas[i % 2].sim.click("qcc_approve", value, user=APPROVERS[(i // 2) % 2], message_ts=card.ts,
                                  thread_ts=parent.ts) for i in range(CLICKS)])
    assert [r.status for r in replies] == [200] * CLICKS
    await site.fake.wait_for(lambda: any("Fix succeeded" in t for t in thread_text(site.fake, parent.ts)), 60)
    await site.fake.wait_for(lambda: len(site.fake.ephemerals) >= CLICKS - 1, 30)
    elapsed = time.monotonic() - t0

    executions = site.restarts()
    set_number("executions_per_100_clicks_2_replicas", executions)
    assert executions == 1, f"{executions} restarts on the sandbox host for {CLICKS} clicks"
    assert site.audit_count("approval_running", value) == 1
    assert site.audit_count("approval_approved", value) == 1
    assert len(site.fake.ephemerals) == CLICKS - 1
    assert all("Already handled by <@UAPPROVER" in e["text"] for e in site.fake.ephemerals)
    assert not buttons(site.fake.messages[card.ts].blocks)
    owners = site.query("SELECT owner FROM {db}.qcc_runs WHERE kind='fix'")
    assert len(owners) == 1 and owners[0]["owner"] in ("rA", "rB")
    print(f"\n{CLICKS} clicks over 2 replicas: {executions} execution(s) in {elapsed:.1f}s "
          f"(fix run by {owners[0]['owner']})")
    assert await a.terminate() == 0 and await b.terminate() == 0
    assert a.noise() == [] and b.noise() == []


async def test_sigkill_mid_fix_survivor_marks_interrupted_and_never_reruns(site):
    """Replica A runs an approved restart that hangs on the host (a delay fault) and is
    SIGKILLed mid-fix. Once A's lease (3 s) has expired, replica B marks the fix run and its
    approval ``interrupted``, says so once in the thread and on the card, and never re-runs
    it: the host's restart count stays 1, and a later Approve click on B runs nothing."""
    a, b = await asyncio.gather(site.start("rA", lease_s=3), site.start("rB", lease_s=3))
    await asyncio.gather(a.wait_ready(), b.wait_ready())
    site.box.add_fault(Fault(program="docker", args=["compose", "restart"], mode="delay", delay_s=60))

    await a.sim.slash("diagnose test")
    parent = await wait_parent(site.fake, set())
    report = await wait_report(site.fake, parent.ts)
    card = await open_card(a, site.fake, parent, report, "restart proxy")
    value = approve_value(card)
    reply = await a.sim.click("qcc_approve", value, user="UAPPROVER1", message_ts=card.ts,
                              thread_ts=parent.ts)
    assert reply.status == 200
    deadline = time.monotonic() + 30
    while site.restarts() < 1:
        assert time.monotonic() < deadline, "the restart never reached the host"
        await asyncio.sleep(0.05)
    run = site.query("SELECT id, owner, status FROM {db}.qcc_runs WHERE kind='fix'")
    assert [(r["owner"], r["status"]) for r in run] == [("rA", "running")]

    a.kill()
    await a.proc.wait()
    killed_at = time.monotonic()

    def interrupted_notes() -> list[str]:
        return [t for t in thread_text(site.fake, parent.ts) if "has been marked *interrupted*" in t]

    await site.fake.wait_for(lambda: bool(interrupted_notes()), 30)
    detected_s = time.monotonic() - killed_at
    assert "restart" in interrupted_notes()[0].lower()
    fix = site.query("SELECT status, owner FROM {db}.qcc_runs WHERE kind='fix'")[0]
    approval = site.query("SELECT status FROM {db}.qcc_approvals WHERE id=%s", (value,))[0]
    assert (fix["status"], fix["owner"], approval["status"]) == ("interrupted", "rA", "interrupted")
    assert site.audit_count("fix_interrupted") == 1
    await site.fake.wait_for(lambda: "interrupted" in text_of(site.fake.messages[card.ts].blocks), 10)

    await asyncio.sleep(3.5)  # another lease (B sweeps 3 more times): no second notice, no re-run
    await b.sim.click("qcc_approve", value, user="UAPPROVER2", message_ts=card.ts, thread_ts=parent.ts)
    await site.fake.wait_for(
        lambda: any("status: interrupted" in e["text"] for e in site.fake.ephemerals), 10)
    assert len(interrupted_notes()) == 1
    assert site.restarts() == 1, "the interrupted fix was run again"
    assert site.audit_count("approval_running", value) == 1
    print(f"\nSIGKILL mid-fix: survivor reported `interrupted` {detected_s:.1f}s after the kill (lease 3s)")
    assert await b.terminate() == 0
    assert b.noise() == []


@pytest.mark.parametrize(("header", "retry"), [(None, False), ("0", False), ("1", True), ("3", True),
                                              ("garbage", True)])
def test_only_redeliveries_are_dropped_as_retries(header, retry):
    """X-Slack-Retry-Num >= 1 marks a re-delivery (acked and dropped on whichever replica it
    lands); Socket Mode mirrors an envelope's ``retry_attempt`` into the same header and a
    first delivery carries ``0``, which must be handled, not dropped."""
    headers = {"x-slack-retry-num": header} if header is not None else {}
    assert is_retry(AsyncBoltRequest(body="", headers=headers)) is retry
