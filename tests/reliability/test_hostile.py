"""Hostile slash-command input, sent as properly signed ``/qcc`` requests to the bot in HTTP mode,
backed by a real sshd sandbox whose ``ForceCommand`` logs every command line it runs.

The proof is read on the host, not in the bot: after a normal baseline (`diagnose`, `status`,
`logs`), no hostile request adds a single command to the host's session or command log, and no
piece of hostile text (4+ characters that are not also part of the normal commands) appears in
either log. Each request is answered in the ack, well within Slack's 3 s, with the usage or an
"unknown environment" refusal, and the bot stays healthy. Each outcome is recorded in the
``hostile`` figure.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from bot.runbook.loader import load_runbook
from handlers.parsing import normalize
from tests.reliability.faults_harness import (
    CHANNEL,
    MakeHost,
    Noise,
    Rig,
    StartRig,
)
from tests.reliability.figures import record
from tests.reliability.hostile_corpus import CLEAR_REPLIES, CORPUS, leaked_fragments

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.mariadb,
    pytest.mark.reliability,
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]

ACK_LIMIT_S = 3.0


def host_log(rig: Rig) -> tuple[list[str], list[str]]:
    """(session command lines, stand-in argv lines) the host has recorded so far."""
    sessions = [s.get("command") or "" for s in rig.host.box.sessions()]
    argv = [" ".join(c.argv) for c in rig.host.box.commands()]
    return sessions, argv


async def baseline(rig: Rig) -> str:
    """Run the normal commands once; returns everything they put in the host's logs."""
    for text in ("diagnose test", "status test", "logs 5 test"):
        reply = await rig.sim.slash(text, channel=CHANNEL)
        assert reply.status == 200 and reply.body == "", (text, reply)
        await rig.idle(60)
    sessions, argv = host_log(rig)
    remote_steps = [s for s in load_runbook().steps if s.transport == "ssh"]
    assert len(sessions) >= len(remote_steps) and argv, "the baseline really ran on the host"
    return "\n".join(sessions + argv)


def test_corpus_is_big_and_varied() -> None:
    """At least 30 hostile texts, covering the classes the issue names."""
    assert len(CORPUS) >= 30
    texts = "".join(t for _, t in CORPUS)
    for needle in ("$(", "`", ";", "|", "&&", "\n", "\x00", "\u0435", "\uff54", "\u202e", "&lt;", "&amp;",
                   "<@U123>", "<#C123|x>", "--env=prod", "../", "' OR '"):
        assert needle in texts, needle
    assert any(len(t) >= 10_000 for _, t in CORPUS)


async def test_hostile_slash_commands_never_reach_a_shell(make_host: MakeHost, start_rig: StartRig,
                                                          noise: Noise) -> None:
    """Every hostile `/qcc` text is refused in the ack (usage or "unknown environment", under 3 s),
    runs nothing on the host (no new session or command, no fragment of the text in the host's
    logs), echoes no live mention and no look-alike, bidi or control character unescaped, and
    the bot afterwards still serves a normal `/qcc status`."""
    host = make_host()
    noise.install(asyncio.get_running_loop())
    rig = await start_rig(host)
    normal = await baseline(rig)
    sessions_before, argv_before = host_log(rig)
    posts_before = len(rig.fake.calls)
    failures: list[str] = []
    for label, text in CORPUS:
        problems: list[str] = []
        try:
            t0 = time.monotonic()
            reply = await rig.sim.slash(text, channel=CHANNEL)
            took = reply.received_at - t0
            await rig.idle(30)
            if reply.status != 200:
                problems.append(f"HTTP {reply.status}")
            if took >= ACK_LIMIT_S:
                problems.append(f"ack after {took:.2f}s")
            body = reply.json()
            shown = body.get("text", "") + json.dumps(body.get("blocks", []), ensure_ascii=False)
            if not any(marker in shown for marker in CLEAR_REPLIES):
                problems.append(f"no clear reply: {shown[:200]!r}")
            if body.get("response_type", "ephemeral") != "ephemeral":
                problems.append("the reply is not ephemeral")
            for live in ("<@U123", "<#C123", "<!channel>"):
                if live in shown:
                    problems.append(f"the reply carries a live mention {live!r}")
            echoed = {c for c in text if not c.isascii() or not c.isprintable()} & set(shown)
            if echoed - {" "}:  # a look-alike, a bidi override or a control char shown as-is
                problems.append(f"the reply echoes {sorted(echoed)!r} unescaped")
            sessions, argv = host_log(rig)
            if sessions != sessions_before or argv != argv_before:
                problems.append(f"ran on the host: {sessions[len(sessions_before):][:3]}"
                                f" {argv[len(argv_before):][:3]}")
            logged = "\n".join(sessions + argv)
            for variant in {text, normalize(text)}:
                leaks = leaked_fragments(variant, logged, normal)
                if leaks:
                    problems.append(f"text reached a shell: {leaks[:3]}")
            if len(rig.fake.calls) != posts_before:
                problems.append(f"Slack calls: {[c.method for c in rig.fake.calls[posts_before:]]}")
            sessions_before, argv_before, posts_before = sessions, argv, len(rig.fake.calls)
        except Exception as exc:  # noqa: BLE001 - one broken case must not hide the others
            problems.append(f"{type(exc).__name__}: {exc}")
        record("hostile", label, not problems)
        if problems:
            failures.append(f"{label}: {'; '.join(problems)}")
    assert not failures, "\n".join(failures)

    # Still healthy: the health endpoint answers and a normal command runs the normal commands.
    async with rig.sim.http.get(rig.url + "/healthz") as resp:
        assert resp.status == 200, await resp.text()
    reply = await rig.sim.slash("status test", channel=CHANNEL)
    assert reply.status == 200 and reply.body == ""
    await rig.idle(30)
    assert any("Containers of" in m.text or "qcc_test_proxy" in m.text
               for m in list(rig.fake.messages.values())[-2:]), "status was posted"
    sessions, _ = host_log(rig)
    assert sessions[len(sessions_before):] and all(c in normal for c in sessions[len(sessions_before):])
    await rig.close()
    assert noise.problems() == []
