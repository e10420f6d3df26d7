"""No secret leaves the bot: not to Slack, not on the CLI, not into its state database, not into a log.

The bot is configured with distinctive values (:mod:`tests.reliability.secrets_guard`): a MySQL
password with quotes and a dollar sign, Slack bot/app tokens and signing secret, a GitHub token;
the proxy prints its API key and admin password in its start-up log and carries the MySQL
password in its container environment (:mod:`tests.reliability.secrets_host`), and the CI log
echoes the GitHub token. Every command family runs against the real sshd/MariaDB sandbox, then
every byte that left is scanned, whole secrets and 12-character pieces of them: each Slack Web
API call (uploaded files unpacked), each ack reply, the CLI's stdout/stderr (with ``-v`` debug
logging) and saved bundle, every row of the state database; log records are scanned for the
whole reliability run by the session guard. The ``secrets_leaked`` figure is the count (0).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from tests.reliability.faults_harness import (
    APPROVER,
    CHANNEL,
    MakeHost,
    Noise,
    StartRig,
    check_cli_clean,
    fresh_password,
    report_message,
    text_of,
)
from tests.reliability.figures import set_number
from tests.reliability.secrets_guard import (
    APP_TOKEN,
    BOT_TOKEN,
    GITHUB_TOKEN,
    GUARD,
    PROXY_API_KEY,
    SIGNING_SECRET,
    find_leaks,
    watch,
)
from tests.reliability.secrets_host import REPO, FakeGitHub, leaky_scenario
from tests.slack.harness import buttons

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.mariadb,
    pytest.mark.reliability,
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]


def state_rows(db_path: Path) -> str:
    """Every row of every table of the (SQLite) state database, as text."""
    con = sqlite3.connect(db_path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        out = []
        for table in tables:
            for row in con.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from sqlite_master
                out.append(f"{table}: " + " | ".join(str(v) for v in row))
        return "\n".join(out)
    finally:
        con.close()


def leaky_host(make_host: MakeHost) -> tuple[object, str]:
    password = fresh_password() + "-and-a-long-tail-4242"  # longer than any 40-character echo
    host = make_host(scenario_obj=leaky_scenario(password), db_password=password)
    assert host.db.password == password
    return host, password


async def test_no_secret_reaches_slack_or_the_state_db(make_host: MakeHost, start_rig: StartRig,
                                                       noise: Noise) -> None:
    """diagnose, status, logs, escalate (with the CI log), audit, help, a Fix approved and run,
    and secrets pasted into `/qcc` by mistake: no configured secret, proxy API key or password
    appears in any Slack call, uploaded file (archives unpacked), ack reply or state-DB row."""
    host, password = leaky_host(make_host)
    github = await FakeGitHub(password).start()
    try:
        host.env_extra = {"ci_repo": REPO}
        noise.install(asyncio.get_running_loop())
        rig = await start_rig(host, github={"api_url": github.api_url})
        acks: list[str] = []
        for text in ("diagnose test", "status test", "logs 50 test", "escalate test", "audit 20",
                     "help test", f"diagnose {password}", f"logs 5 {GITHUB_TOKEN}", f"status {BOT_TOKEN}",
                     f"audit {SIGNING_SECRET}", f"help {APP_TOKEN}"):
            reply = await rig.sim.slash(text, channel=CHANNEL)
            assert reply.status == 200, (text, reply)
            acks.append(reply.body)
            await rig.idle(60)
        # A fix: the report's Fix button, approved by an approver, runs on MariaDB.
        parent = next(m for m in rig.fake.messages.values()
                      if m.thread_ts is None and "Diagnosis of" in m.text)
        report = report_message(rig.fake.thread(parent.ts))
        fix = next(b for b in buttons(report.blocks) if b["action_id"].startswith("qcc_fix_"))
        await rig.sim.click(fix["action_id"], fix["value"], user="UREQUESTER", channel=CHANNEL,
                            message_ts=report.ts, thread_ts=parent.ts)
        await rig.idle(60)
        card = next(m for m in rig.fake.thread(parent.ts) if "Approval" in text_of(m.blocks))
        approve = next(b for b in buttons(card.blocks) if b["action_id"] == "qcc_approve")
        await rig.sim.click("qcc_approve", approve["value"], user=APPROVER, channel=CHANNEL,
                            message_ts=card.ts, thread_ts=parent.ts)
        await rig.idle(120)
        await rig.close()
    finally:
        await github.stop()

    sent = rig.payload_text()
    # The secrets really went through the bot (and were redacted on the way).
    assert "API key: ***" in sent, "the proxy's start-up log was shown (redacted)"
    assert "health check failed after 60s" in sent, "the CI log was uploaded"
    assert any("Fix succeeded" in text_of(m.blocks) for m in rig.fake.messages.values()), "the fix ran"
    assert len(rig.fake.uploads) >= 1
    # The token went to the GitHub API only: never to the download's other origin.
    assert ("/repos/acme/qcc_plus/actions/runs", f"Bearer {GITHUB_TOKEN}") in github.auth
    assert all(auth == "" for path, auth in github.auth if path.startswith("/blob/")), github.auth

    secrets = host.secrets() + [password]
    leaks = (find_leaks("slack", sent, secrets) + find_leaks("ack", "\n".join(acks), secrets)
             + find_leaks("state", state_rows(host.workdir / "state.db"), secrets))
    set_number("secrets_leaked", len(GUARD.leaks))
    assert not leaks, "\n".join(str(leak) for leak in leaks)
    assert noise.problems() == []


def test_no_secret_in_cli_output_or_bundle(make_host: MakeHost, tmp_path: Path) -> None:
    """`qcc-bot diagnose` in json and text, with `-v` debug logging, `--save-bundle` (every file),
    `analyze` of that bundle and `check-config`: no secret in any output or file."""
    host, password = leaky_host(make_host)
    secrets = host.secrets() + [password]
    bundle = tmp_path / "bundle"
    runs = [host.cli("diagnose", "--env", "test", "--format", "json", "--save-bundle", str(bundle)),
            host.cli("diagnose", "--env", "test", "--format", "text", "-v"),
            host.cli("analyze", str(bundle), "--format", "text"),
            host.cli("check-config")]
    for run in runs:
        assert run.returncode == 0, run.describe()
        check_cli_clean(run, secrets)
    report = runs[0].json()
    assert report["causes"][0]["id"] == "migration_failed"
    assert "asyncssh" in runs[1].stderr or "DEBUG" in runs[1].stderr, "-v really logged"
    files = [p for p in bundle.rglob("*") if p.is_file()]
    assert files
    leaks = []
    for path in files:
        leaks += find_leaks(f"bundle {path.name}", path.read_text(errors="replace"), secrets)
    assert "API key: ***" in "".join(p.read_text(errors="replace") for p in files)
    set_number("secrets_leaked", len(GUARD.leaks))
    assert not leaks, "\n".join(str(leak) for leak in leaks)


def test_guard_catches_a_planted_leak() -> None:
    """The scanner finds a whole secret and a cut-off 12-character piece of one (self-check: a
    scanner that never fires would make the figure meaningless). Not counted as a leak."""
    before = len(GUARD.leaks)
    watch("Rel-selfcheck-secret-0123456789")
    assert GUARD.scan("selfcheck", "x Rel-selfcheck-secret-0123456789 y")
    assert GUARD.scan("selfcheck", "unknown environment 'Rel-selfcheck-secr'…")
    assert not GUARD.scan("selfcheck", "unknown environment '***'")
    assert GUARD.scan("selfcheck", json.dumps({"k": PROXY_API_KEY}))
    del GUARD.leaks[before:]
