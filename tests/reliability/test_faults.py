"""The fault matrix: each fault against the real sshd / MariaDB sandbox.

Every test proves the same three things for its fault: each step affected ends with a clear
status (``error``/``timeout``/``failed``) and a one-line, secret-free message; a partial
diagnosis is still produced and delivered (posted in the Slack thread for the Slack-path
tests, printed by ``qcc-bot diagnose`` for the CLI-path ones); and nothing goes unhandled
(no loop exception-handler call, no "Task exception was never retrieved" / "Event loop is
closed", no traceback on the CLI's stderr, no unraisable exception). Each outcome is recorded
in the ``faults`` figure.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from pathlib import Path

import asyncssh
import pytest

from bot.runbook.loader import load_runbook
from bot.sandbox import scenario_from_dict
from bot.sandbox.scenario import Fault
from tests.reliability.faults_harness import (
    FAST_TIMEOUT_S,
    MakeHost,
    Noise,
    StartRig,
    check_cli_clean,
    check_slack_diagnosis,
    check_step_errors,
    outcome,
    step_deadline,
    text_of,
)

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.mariadb,
    pytest.mark.reliability,
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]

DEADLINE = step_deadline(FAST_TIMEOUT_S)
SSH_STEPS_WITHOUT_DOCKER = {"port_listeners", "host_memory", "host_disk", "host_processes", "kernel_oom",
                            "deployed_version", "checkout_head", "deploy_running"}


def _other_key(tmp_path: Path) -> Path:
    path = tmp_path / "not_authorized_ed25519"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(path))
    path.chmod(0o600)
    return path


# ----------------------------------------------------------------------------- SSH faults
async def test_sshd_down(make_host: MakeHost, start_rig: StartRig, noise: Noise) -> None:
    """sshd is not running: every SSH step is `error` "cannot reach …: Connection refused", the
    MySQL step says its tunnel failed, and the partial report is posted in the Slack thread."""
    with outcome("faults", "sshd down"):
        host = make_host()
        host.sshd.stop()
        noise.install(asyncio.get_running_loop())
        rig = await start_rig(host)
        parent, thread, elapsed = await rig.diagnose()
        _, steps = await check_slack_diagnosis(rig, parent, thread)
        assert steps["container_status"]["status"] == "error"
        assert "Connection refused" in steps["container_status"]["error"]
        assert "tunnel failed" in steps["schema_nodes"]["error"]
        assert elapsed < DEADLINE
        await rig.close()
        assert noise.problems() == []


def test_wrong_ssh_key(make_host: MakeHost, tmp_path: Path) -> None:
    """The server rejects our key: every SSH step is `error` saying the login was refused and
    what to do (add the public key to authorized_keys); the CLI still prints a report."""
    with outcome("faults", "wrong SSH key"):
        host = make_host()
        host.ssh_override = {"key_file": str(_other_key(tmp_path))}
        run, report = host.cli_diagnose()
        check_cli_clean(run, host.secrets())
        steps = check_step_errors(report["steps"], host.secrets())
        ssh = [s for s in steps.values() if s["id"] != "schema_nodes" and s["status"] != "skipped"]
        assert ssh and all(s["status"] == "error" for s in ssh), ssh
        assert all("login" in s["error"] and "authorized_keys" in s["error"] for s in ssh)
        assert report["causes"] and host.session_commands() == []


async def test_host_key_changed(make_host: MakeHost, start_rig: StartRig, noise: Noise,
                                tmp_path: Path) -> None:
    """The host presents a key other than the recorded one: the bot refuses before logging in
    (sshd logs no login, no command runs, no tunnel), and the report posted in Slack carries the
    admin instruction (verify out of band, `ssh-keygen -R`, `ssh-keyscan`) in full."""
    with outcome("faults", "host key changed"):
        host = make_host()
        other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{host.sshd.port} {other}\n")
        host.ssh_override = {"known_hosts": str(known)}
        noise.install(asyncio.get_running_loop())
        rig = await start_rig(host)
        parent, thread, _ = await rig.diagnose()
        report, steps = await check_slack_diagnosis(rig, parent, thread)
        refused = [s for s in steps.values() if s["status"] == "error"]
        assert len(refused) >= 12
        assert all("differs" in s["error"] and "refusing to connect" in s["error"] for s in refused)
        problems = next(b["text"]["text"] for b in report.blocks
                        if b.get("type") == "section" and "did not complete" in b["text"]["text"])
        for instruction in ("refusing to connect", "verify the new fingerprint out of band",
                            f"ssh-keygen -R '[127.0.0.1]:{host.sshd.port}'", "ssh-keyscan"):
            assert instruction in problems, f"{instruction!r} missing from the report"
        assert host.sshd.count_logins() == 0, "never bypassed: no login happened"
        assert host.session_commands() == [] and host.box.commands() == []
        await rig.close()
        assert noise.problems() == []


async def test_network_stall_mid_command(make_host: MakeHost, start_rig: StartRig, noise: Noise) -> None:
    """sshd and its sessions are frozen (SIGSTOP) while commands run: every step still ends
    within its own deadline (timeout + grace), the partial report is posted, and after SIGCONT
    the next diagnosis on the same bot completes with every step ok."""
    with outcome("faults", "network stall mid-command (SIGSTOP)"):
        host = make_host()
        host.box.add_fault(Fault(program="free", mode="delay", delay_s=1.0, times=1))
        noise.install(asyncio.get_running_loop())
        rig = await start_rig(host)
        reply = await rig.sim.slash("diagnose test", channel="CINC")
        assert reply.status == 200
        deadline = time.monotonic() + 10
        while not any("free -m" in c for c in host.session_commands()):
            assert time.monotonic() < deadline, "the diagnosis never reached the host"
            await asyncio.sleep(0.02)
        host.sshd.pause()
        paused_at = time.monotonic()
        try:
            await rig.idle(60)
            stalled_for = time.monotonic() - paused_at
        finally:
            host.sshd.resume()
        parent = next(m for m in rig.fake.messages.values() if m.thread_ts is None)
        _, steps = await check_slack_diagnosis(rig, parent, rig.fake.thread(parent.ts))
        assert steps["host_memory"]["status"] == "timeout", steps["host_memory"]
        assert all(s["duration_s"] <= DEADLINE + 0.5 for s in steps.values()), steps
        # Steps needing the container names start after `container_status`: two deadlines at most.
        assert stalled_for <= 2 * DEADLINE + 1.0
        parent2, thread2, elapsed2 = await rig.diagnose()
        _, again = await check_slack_diagnosis(rig, parent2, thread2)
        assert {s["status"] for s in again.values()} == {"ok"}, again
        await rig.close()
        assert noise.problems() == []


def test_command_that_never_ends(make_host: MakeHost, tmp_path: Path) -> None:
    """`free` forks a child that ignores SIGTERM, leaves `timeout`'s process group and holds the
    channel open forever: the multi-part host step (one round trip for the quick host commands)
    is `timeout` at its local deadline, every one of its parts says so, the other steps are ok,
    and the CLI prints the report."""
    with outcome("faults", "a command that never ends"):
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "free").write_text("#!/bin/sh\nsetsid sleep 600 &\n"
                                      "trap '' TERM\nwhile :; do sleep 1; done\n")
        (bin_dir / "free").chmod(0o755)
        host = make_host(path_prefix=bin_dir)
        t0 = time.monotonic()
        run, report = host.cli_diagnose()
        elapsed = time.monotonic() - t0
        check_cli_clean(run, host.secrets())
        steps = check_step_errors(report["steps"], host.secrets())
        host_parts = {p.id for p in load_runbook().step("host_facts").parts}
        for part in host_parts:
            assert steps[part]["status"] == "timeout", steps[part]
            assert "local deadline" in steps[part]["error"]
            assert steps[part]["duration_s"] <= DEADLINE + 0.5
        assert all(s["status"] == "ok" for k, s in steps.items() if k not in host_parts), steps
        assert elapsed < DEADLINE + 15  # interpreter start-up, connect, close included


def test_max_sessions_1(make_host: MakeHost) -> None:
    """Against `MaxSessions 1` every step completes ok (the transport adapts to one channel at a
    time instead of failing steps with "administratively prohibited")."""
    with outcome("faults", "MaxSessions 1"):
        host = make_host(max_sessions=1)
        run, report = host.cli_diagnose()
        check_cli_clean(run, host.secrets())
        steps = check_step_errors(report["steps"], host.secrets())
        assert {s["status"] for s in steps.values()} == {"ok"}, steps
        assert report["causes"][0]["id"] == "migration_failed"
        assert len(host.session_commands()) == len([s for s in load_runbook().steps if s.transport == "ssh"])


# ----------------------------------------------------------------------------- MySQL faults
def test_mariadb_down(make_host: MakeHost) -> None:
    """MySQL on a closed port: the schema step is `error` "unavailable", every SSH step is ok and
    the log alone still names the migration failure."""
    with outcome("faults", "MariaDB down (closed port)"):
        host = make_host(mysql="closed")
        run, report = host.cli_diagnose()
        check_cli_clean(run, host.secrets())
        steps = check_step_errors(report["steps"], host.secrets())
        assert steps["schema_nodes"]["status"] == "error" and "unavailable" in steps["schema_nodes"]["error"]
        assert all(s["status"] == "ok" for k, s in steps.items() if k != "schema_nodes"), steps
        assert report["causes"][0]["id"] == "migration_failed"


async def test_mariadb_silent(make_host: MakeHost, start_rig: StartRig, noise: Noise) -> None:
    """MySQL accepts TCP but never says a word: the schema step is `error` "no handshake within
    2s" after the connect timeout, not at the step deadline; the report is posted in Slack."""
    with outcome("faults", "MariaDB accepting TCP but silent"):
        host = make_host(mysql="silent")
        noise.install(asyncio.get_running_loop())
        rig = await start_rig(host)
        parent, thread, _ = await rig.diagnose()
        _, steps = await check_slack_diagnosis(rig, parent, thread)
        schema = steps["schema_nodes"]
        assert schema["status"] == "error" and "no handshake within 2s" in schema["error"], schema
        assert schema["duration_s"] < FAST_TIMEOUT_S
        await rig.close()
        assert noise.problems() == []


def test_mariadb_access_denied(make_host: MakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong MySQL password: the schema step is `error` "denied access: error 1045" and the
    message carries neither the wrong nor the right password."""
    with outcome("faults", "MariaDB access denied"):
        host = make_host(mysql="denied")
        wrong = "Rel-wrong-password-4242-Qx"
        monkeypatch.setenv("QCC_REL_WRONG_PASSWORD", wrong)
        run, report = host.cli_diagnose()
        check_cli_clean(run, [*host.secrets(), wrong])
        steps = check_step_errors(report["steps"], [*host.secrets(), wrong])
        schema = steps["schema_nodes"]
        assert schema["status"] == "error" and "denied access: error 1045" in schema["error"], schema
        assert all(s["status"] == "ok" for k, s in steps.items() if k != "schema_nodes"), steps


# ----------------------------------------------------------------------------- odd output
def test_fifty_megabyte_log(make_host: MakeHost) -> None:
    """A 50 MB proxy log (with a line of raw Latin-1 bytes): with the runbook's own timeouts every
    step completes ok and the report says the proxy is healthy; output stays bounded."""
    with outcome("faults", "a 50 MB log"):
        host = make_host("healthy_huge_log", runbook_cap_s=None)
        t0 = time.monotonic()
        run, report = host.cli_diagnose()
        check_cli_clean(run, host.secrets())
        steps = check_step_errors(report["steps"], host.secrets())
        assert {s["status"] for s in steps.values()} == {"ok"}, steps
        assert report["causes"][0]["id"] == "healthy"
        assert len(run.stdout) < 1_000_000
        assert time.monotonic() - t0 < 60


async def test_non_utf8_bytes(make_host: MakeHost, start_rig: StartRig, noise: Noise) -> None:
    """Raw non-UTF-8 bytes (Latin-1, 0xFF, NUL, an ANSI escape) in the proxy log and in `ss`
    output: the steps are ok, bytes become replacement characters, and the report (valid JSON
    for Slack) is posted and still names the migration failure."""
    with outcome("faults", "non-UTF-8 bytes"):
        sc = scenario_from_dict({
            "name": "migration_failed_latin1",
            "containers": {"proxy": {"logs": [{"use": "proxy_migration_failed_run"},
                                              {"encoding": "latin-1", "gap_s": 0.01,
                                               "text": "[proxy] GET /admin/caf\xe9/\xff\xfe 404 0.001s"}]}},
        }, extends="migration_failed")
        host = make_host(scenario_obj=sc)
        raw = (b"State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
               b"LISTEN 0      4096   0.0.0.0:8001 0.0.0.0:* "
               b"users:((\"caf\xe9\xff\x00\x1b[31m\",pid=7,fd=3))\n")
        host.box.add_fault(Fault(program="ss", stdout_b64=base64.b64encode(raw).decode(), exit_code=0))
        noise.install(asyncio.get_running_loop())
        rig = await start_rig(host)
        parent, thread, _ = await rig.diagnose()
        report, steps = await check_slack_diagnosis(rig, parent, thread)
        assert steps["port_listeners"]["status"] == "ok" and "\ufffd" in steps["port_listeners"]["output"]
        assert steps["proxy_logs"]["status"] == "ok" and "\ufffd" in steps["proxy_logs"]["output"]
        assert {s["status"] for s in steps.values()} == {"ok"}, steps
        assert "Unknown column" in text_of(report.blocks)
        await rig.close()
        assert noise.problems() == []


async def test_docker_cli_hanging(make_host: MakeHost, start_rig: StartRig, noise: Noise) -> None:
    """Every `docker` invocation hangs (a wedged daemon): the docker steps (the log read among
    them) are `timeout` at their deadline, the greps of the log are `skipped` with the reason, the
    host steps are ok, and the report is posted in Slack."""
    with outcome("faults", "docker CLI stand-in hanging"):
        host = make_host()
        host.box.add_fault(Fault(program="docker", mode="hang"))
        noise.install(asyncio.get_running_loop())
        rig = await start_rig(host)
        parent, thread, elapsed = await rig.diagnose()
        _, steps = await check_slack_diagnosis(rig, parent, thread)
        for sid in ("container_status", "container_inspect", "resource_usage", "port_publishers", "proxy_logs"):
            assert steps[sid]["status"] == "timeout", steps[sid]
            assert steps[sid]["duration_s"] <= DEADLINE + 0.5
        for sid in ("grep_migration", "grep_health_scheduler", "grep_panic"):
            assert steps[sid]["status"] == "skipped" and "proxy_logs timeout" in steps[sid]["error"]
        assert all(steps[sid]["status"] == "ok" for sid in SSH_STEPS_WITHOUT_DOCKER - {"kernel_oom"}), steps
        assert elapsed < DEADLINE + 5
        await rig.close()
        assert noise.problems() == []


# ----------------------------------------------------------------------------- Slack faults
async def test_slack_rate_limited_429(make_host: MakeHost, start_rig: StartRig, noise: Noise) -> None:
    """Slack answers 429 (Retry-After) to posts and updates: the client waits and retries, and
    the progress message and the report still land in the thread."""
    with outcome("faults", "Slack Web API 429"):
        host = make_host()
        noise.install(asyncio.get_running_loop())
        rig = await start_rig(host)
        rig.fake.fail("chat.postMessage", status=429, retry_after=1, times=2)
        rig.fake.fail("chat.update", status=429, retry_after=0, times=3)
        parent, thread, _ = await rig.diagnose()
        await check_slack_diagnosis(rig, parent, thread)
        assert len(rig.fake.calls_to("chat.postMessage", ok_only=False)) > len(
            rig.fake.calls_to("chat.postMessage")), "the 429s were really answered"
        await rig.close()
        assert noise.problems() == []


async def test_slack_server_error_500_transient(make_host: MakeHost, start_rig: StartRig,
                                                noise: Noise) -> None:
    """Slack answers 500 twice to posts and updates: the retries deliver the report."""
    with outcome("faults", "Slack Web API 500 (transient)"):
        host = make_host()
        noise.install(asyncio.get_running_loop())
        rig = await start_rig(host)
        rig.fake.fail("chat.postMessage", status=500, times=2)
        rig.fake.fail("chat.update", status=500, times=2)
        parent, thread, _ = await rig.diagnose()
        await check_slack_diagnosis(rig, parent, thread)
        await rig.close()
        assert noise.problems() == []


async def test_slack_server_error_500_persistent(make_host: MakeHost, start_rig: StartRig,
                                                 noise: Noise) -> None:
    """Slack answers 500 to every post and update once the diagnosis has started: the diagnosis
    is still completed and stored, an ERROR naming the run and a correlation id is logged (the
    report could not be delivered), nothing goes unhandled, and once Slack recovers the next
    `/qcc diagnose` is delivered normally."""
    with outcome("faults", "Slack Web API 500 (persistent)"):
        host = make_host()
        host.box.add_fault(Fault(program="free", mode="delay", delay_s=0.5))
        noise.install(asyncio.get_running_loop())
        rig = await start_rig(host)
        reply = await rig.sim.slash("diagnose test", channel="CINC")
        assert reply.status == 200
        await rig.fake.wait_for(lambda: len(rig.fake.calls_to("chat.postMessage")) >= 2)  # parent + progress
        for method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            rig.fake.fail(method, status=500, times=1000)
        await rig.idle(60)
        latest = await rig.rt.state.latest_diagnosis("test")
        assert latest is not None and latest.diagnosis().causes, "the diagnosis was completed and stored"
        errors = [r for r in noise.records if r.startswith("ERROR")]
        assert any(re.search(r"\[ref [0-9a-f]{8,}\]", r) and latest.id in r for r in errors), errors
        assert noise.problems(allow_errors=True) == []
        rig.fake.failures.clear()
        parent, thread, _ = await rig.diagnose()
        await check_slack_diagnosis(rig, parent, thread)
        await rig.close()
        assert noise.problems(allow_errors=True) == []
