"""Lifecycle: SIGTERM, a dropped Socket Mode socket, ``/healthz`` and ``/metrics``.

SIGTERM is tested on real ``qcc-bot serve`` processes (their stderr and exit code); Socket
Mode, health and metrics on the bot served in the test's own loop, against the fake Web API,
a fake Socket Mode websocket endpoint and (for the state database) MariaDB behind a TCP
forwarder the test can cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.config import Settings, load_settings
from bot.metrics import Metrics
from bot.transports.base import EnvironmentTransports
from bot.transports.fake import FakeTransportProvider
from handlers.server import running_bot, serve, start_http
from qcc_sandbox.scenario import Fault
from tests.fakes.slack_api import FakeSlackAPI
from tests.fakes.socket_mode import FakeSocketMode
from tests.fakes.tcp_proxy import TcpProxy
from tests.ports import free_port
from tests.reliability.replica_harness import parents, replica_site, thread_text, wait_parent
from tests.reliability.secrets_guard import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET
from tests.slack.conftest import settings_data
from tests.slack.harness import SlackSim, approve_value, open_approval, report_of, run_diagnose, text_of
from tests.slack.scenario import MYSQL_PASSWORD, migration_failed

pytestmark = [pytest.mark.reliability]


def _settings(api_url: str, **top: Any) -> Settings:
    data = settings_data(slack=top.pop("slack", None))
    data.update(top)
    return load_settings(data=data, env={"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN,
                                         "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": api_url})


def _fake_transports() -> FakeTransportProvider:
    return FakeTransportProvider({"test": EnvironmentTransports("test", *migration_failed()),
                                  "prod": EnvironmentTransports("prod", *migration_failed())})


async def _get(url: str) -> tuple[int, dict[str, Any] | str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text.startswith("{") else text)


async def _until(url: str, status: int, timeout_s: float = 20.0) -> dict[str, Any]:
    """Poll ``url`` until it answers ``status``; returns the JSON body."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            code, body = await _get(url)
            last = (code, body)
            if code == status:
                return body if isinstance(body, dict) else {}
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} within {timeout_s}s (last: {last})")


@pytest.fixture
def mysql_password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("QCC_TEST_MYSQL_PASSWORD", MYSQL_PASSWORD)
    return MYSQL_PASSWORD


@pytest.fixture
async def fake_slack():
    fake = await FakeSlackAPI().start()
    try:
        yield fake
    finally:
        await fake.stop()


# -- SIGTERM ---------------------------------------------------------------------------------

@pytest.fixture
async def site(make_sshd, mariadb, tmp_path):
    async with replica_site(make_sshd, mariadb, tmp_path) as s:
        yield s


def _ssh_sessions(site: Any) -> tuple[int, int]:
    """(logins, clean disconnects) in the sandbox sshd's log."""
    log = site.sshd.log_text()
    clean = re.findall(r"Received disconnect from 127\.0\.0\.1", log)
    return log.count("Accepted publickey for "), len(clean)


@pytest.mark.sshd
@pytest.mark.mariadb
async def test_sigterm_drains_a_running_diagnosis_and_exits_cleanly(site):
    """SIGTERM during a diagnosis whose `docker stats` step takes 3 s: the process stops taking
    requests, lets the diagnosis finish and post its report, closes its SSH connection (sshd
    logs a clean disconnect for every login) and database pools, and exits 0 with no
    "Event loop is closed" / "Task was destroyed" / "Unclosed" noise on stderr."""
    site.box.add_fault(Fault(program="docker", args=["stats"], mode="delay", delay_s=3))
    bot = await site.start("rT", shutdown_grace_s=30)
    await bot.wait_ready()
    await bot.sim.slash("diagnose test")
    parent = await wait_parent(site.fake, set())
    await site.fake.wait_for(lambda: any("Runbook progress" in t for t in thread_text(site.fake, parent.ts)))
    await asyncio.sleep(0.5)  # the steps are running on the host
    assert not any("Diagnosis ·" in t for t in thread_text(site.fake, parent.ts))

    t0 = time.monotonic()
    rc = await bot.terminate(40)
    took = time.monotonic() - t0
    assert rc == 0, bot.stderr()
    report_of(site.fake.thread(parent.ts))  # the drained diagnosis posted its report
    assert site.query("SELECT status FROM {db}.qcc_runs")[0]["status"] == "succeeded"
    assert bot.noise() == [], bot.stderr()
    logins, clean = _ssh_sessions(site)
    assert logins >= 1 and clean == logins, site.sshd.log_text()[-2000:]
    print(f"\nSIGTERM drained a running diagnosis in {took:.1f}s; exit 0; stderr clean")


@pytest.mark.sshd
@pytest.mark.mariadb
async def test_sigterm_past_the_grace_marks_the_diagnosis_interrupted(site):
    """SIGTERM with ``shutdown_grace_s: 1`` during a diagnosis stuck 20 s on a step: after the
    grace the diagnosis is cancelled, its run is stored ``interrupted`` and the thread says so;
    the process still exits 0 within a few seconds, with clean SSH disconnects and no noise."""
    site.box.add_fault(Fault(program="docker", args=["stats"], mode="delay", delay_s=20))
    bot = await site.start("rT", shutdown_grace_s=1)
    await bot.wait_ready()
    await bot.sim.slash("diagnose test")
    parent = await wait_parent(site.fake, set())
    await site.fake.wait_for(lambda: any("Runbook progress" in t for t in thread_text(site.fake, parent.ts)))
    await asyncio.sleep(0.5)

    t0 = time.monotonic()
    rc = await bot.terminate(20)
    took = time.monotonic() - t0
    assert rc == 0, bot.stderr()
    assert took < 10, f"shutdown took {took:.1f}s with a 1 s grace"
    notes = [t for t in thread_text(site.fake, parent.ts) if "diagnosis was interrupted" in t]
    assert len(notes) == 1, thread_text(site.fake, parent.ts)
    assert site.query("SELECT status FROM {db}.qcc_runs")[0]["status"] == "interrupted"
    assert bot.noise() == [], bot.stderr()
    logins, clean = _ssh_sessions(site)
    assert logins >= 1 and clean == logins, site.sshd.log_text()[-2000:]
    assert len(parents(site.fake)) == 1
    print(f"\nSIGTERM past a 1 s grace: diagnosis marked interrupted, exit 0 in {took:.1f}s")


# -- Socket Mode -----------------------------------------------------------------------------

def _slash_payload(text: str) -> dict[str, Any]:
    return {"token": "legacy", "team_id": "T0FAKE", "team_domain": "fake", "channel_id": "CINC",
            "channel_name": "incident", "user_id": "UREQUESTER", "user_name": "urequester", "command": "/qcc",
            "text": text, "api_app_id": "A0FAKE", "response_url": "http://127.0.0.1:9/commands/unused",
            "trigger_id": "1.2.3"}


async def test_socket_mode_reconnects_after_a_dropped_socket_and_reports_health(fake_slack, mysql_password,
                                                                               tmp_path):
    """Socket Mode: the first websocket is cut right after its `hello` (no close frame). The bot
    opens a new one (a second `apps.connections.open` and `hello`), then handles a `/qcc status`
    envelope sent over it, acking it with its envelope_id and posting the status. ``/healthz``
    on --port answers 200 while connected and 503 with a JSON reason while Slack refuses the
    socket, and 200 again once it reconnects; ``/metrics`` counted the command."""
    ws = await FakeSocketMode().start()
    fake_slack.socket_url = ws.url
    ws.drop_after_hello = 1
    settings = _settings(fake_slack.api_url, state_url=f"sqlite+aiosqlite:///{tmp_path}/state.db",
                         slack={"socket_ping_interval_s": 0.5})
    port, stop = free_port(), asyncio.Event()
    server = asyncio.create_task(serve(settings, http=False, port=port, host="127.0.0.1",
                                       transports=_fake_transports(), stop=stop))
    health = f"http://127.0.0.1:{port}/healthz"
    try:
        await ws.wait_for(lambda: len(ws.connections) >= 2 and ws.live is not None, 20)
        assert ws.connections[0].dropped and ws.connections[1].hello_sent
        assert len(fake_slack.calls_to("apps.connections.open")) >= 3  # probe, first socket, reconnect
        body = await _until(health, 200)
        assert body["checks"] == {"slack": "ok", "state_db": "ok"}

        envelope_id = await ws.send_envelope("slash_commands", _slash_payload("status"))
        await ws.wait_for(lambda: envelope_id in ws.acks, 10)
        assert ws.acks[envelope_id]["envelope_id"] == envelope_id
        await fake_slack.wait_for(lambda: any("Containers of" in str(m.blocks)
                                              for m in fake_slack.messages.values()), 20)

        ws.refuse = True
        ws.drop()
        body = await _until(health, 503)
        assert body["status"] == "unhealthy" and "slack" in body["reason"]
        assert body["checks"]["state_db"] == "ok"
        ws.refuse = False
        body = await _until(health, 200)

        status, metrics = await _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert 'qcc_commands_total{subcommand="status"} 1.0' in str(metrics)
    finally:
        stop.set()
        await asyncio.wait_for(server, 30)
        await ws.stop()


# -- /healthz in HTTP mode -------------------------------------------------------------------

@pytest.mark.mariadb
async def test_healthz_is_503_with_a_reason_while_the_state_database_or_slack_is_down(
        fake_slack, mysql_password, mariadb):
    """HTTP mode with the state in MariaDB reached through a TCP forwarder: ``/healthz`` is 200
    when both are up; 503 ``state_db: ...`` while the forwarder is cut (the database host is
    gone) and 200 again once it is back; 503 ``slack: ...`` while the Web API fails auth.test."""
    db = f"qcc_health_{int(time.time() * 1000) % 10**8}"
    mariadb.admin_query(f"CREATE DATABASE `{db}`")
    proxy = await TcpProxy("127.0.0.1", 3306).start()
    settings = _settings(fake_slack.api_url, slack={"health_probe_s": 0})
    try:
        async with running_bot(settings, http=True, transports=_fake_transports(),
                               state_url=f"mysql+aiomysql://root@127.0.0.1:{proxy.port}/{db}") as bot:
            runner, port = await start_http(bot.app, "127.0.0.1", 0, ops=bot.ops)
            url = f"http://127.0.0.1:{port}/healthz"
            try:
                body = await _until(url, 200)
                assert body == {"status": "ok", "instance": settings.owner,
                                "checks": {"slack": "ok", "state_db": "ok"}}
                await proxy.down()
                body = await _until(url, 503)
                assert body["reason"].startswith("state_db: the state database is unreachable")
                assert body["checks"]["slack"] == "ok"
                await proxy.up()
                await _until(url, 200)

                fake_slack.fail("auth.test", status=500, times=1)
                status, body = await _get(url)
                assert status == 503 and body["reason"].startswith("slack: ")  # type: ignore[index]
                await _until(url, 200)
            finally:
                await runner.cleanup()
    finally:
        await proxy.stop()
        mariadb.admin_query(f"DROP DATABASE IF EXISTS `{db}`")


# -- /metrics --------------------------------------------------------------------------------

def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_commands_runs_steps_approvals_and_latencies(fake_slack, mysql_password,
                                                                         tmp_path):
    """``/metrics`` (per-app registry; nothing lands in prometheus_client's global one) counts
    /qcc commands by subcommand (a retried delivery is not counted), runs by kind and outcome,
    step outcomes by step and status, approval decisions, and observes the diagnosis duration
    and approval decision latency histograms."""
    settings = _settings(fake_slack.api_url)
    async with running_bot(settings, http=True, transports=_fake_transports(), progress_interval_s=0.0,
                           state_url=f"sqlite+aiosqlite:///{tmp_path}/state.db") as bot:
        runner, port = await start_http(bot.app, "127.0.0.1", 0, ops=bot.ops)
        sim = SlackSim(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, fake_slack)
        drive = SimpleNamespace(sim=sim, fake=fake_slack, idle=lambda t=30.0: bot.rt.tasks.wait_idle(t))
        try:
            parent, card = await open_approval(drive)  # one diagnosis, one approval request
            await sim.click("qcc_approve", approve_value(card), user="UAPPROVER1", message_ts=card.ts,
                            thread_ts=parent.ts)
            await drive.idle()
            _, thread = await run_diagnose(drive)  # a second diagnosis, whose fix is rejected
            report = report_of(thread)
            button = next(b["accessory"] for b in report.blocks
                          if (b.get("accessory") or {}).get("type") == "button")
            await sim.click(button["action_id"], button["value"], user="UREQUESTER", message_ts=report.ts,
                            thread_ts=report.thread_ts)
            await drive.idle()
            card2 = [m for m in fake_slack.thread(report.thread_ts) if "Approval" in text_of(m.blocks)][-1]
            await sim.click("qcc_reject", approve_value(card2), user="UAPPROVER2", message_ts=card2.ts,
                            thread_ts=report.thread_ts)
            await sim.slash("bogus words")
            await sim.slash("diagnose test", retry_num=1)
            await drive.idle()
            async with sim.http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain")
                samples = _samples(await resp.text())
        finally:
            await sim.close()
            await runner.cleanup()

    assert _value(samples, "qcc_commands_total", subcommand="diagnose") == 2
    assert _value(samples, "qcc_commands_total", subcommand="invalid") == 1
    assert _value(samples, "qcc_runs_total", kind="diagnosis", outcome="succeeded") == 2
    assert _value(samples, "qcc_runs_total", kind="fix", outcome="succeeded") == 1
    assert _value(samples, "qcc_step_outcomes_total", step="container_status", status="ok") >= 2
    assert _value(samples, "qcc_step_outcomes_total", step="schema_nodes", status="ok") >= 3  # + after-check
    assert _value(samples, "qcc_approvals_total", decision="approved") == 1
    assert _value(samples, "qcc_approvals_total", decision="rejected") == 1
    assert _value(samples, "qcc_diagnosis_duration_seconds_count") == 2
    assert _value(samples, "qcc_fix_duration_seconds_count") == 1
    assert _value(samples, "qcc_approval_decision_latency_seconds_count", decision="approved") == 1
    assert _value(samples, "qcc_approval_decision_latency_seconds_count", decision="rejected") == 1
    assert not [m for m in prometheus_client.REGISTRY.collect() if m.name.startswith("qcc_")]
    one, two = Metrics(), Metrics()  # two bots in one process count apart
    one.command("status")
    assert b'qcc_commands_total{subcommand="status"} 1.0' in one.render()
    assert b"qcc_commands_total{" not in two.render()
