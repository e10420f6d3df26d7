"""Issue 12's "Must show" for triggers, end to end: signed HTTP webhooks to the served bot, every
Slack call going to the local fake Slack API, state in a real SQLite file."""

from __future__ import annotations

import json

from bot.triggers import sign_github
from tests.slack.harness import text_of
from tests.triggers.conftest import alert_payload, parents, report_in, trigger_settings_data, workflow_run


async def _counts(bot) -> dict[str, int]:
    """Rows that a refused webhook must not create."""
    from sqlalchemy import func, select

    from bot.state import models as m

    out = {}
    async with bot.rt.state.engine.connect() as conn:
        for table in (m.deliveries, m.incidents, m.open_incidents, m.runs, m.watches):
            out[table.name] = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
    return out


async def test_failed_deploy_posts_a_diagnosis_in_the_incident_channel(start_trigger_bot):
    """A failed `workflow_run` with a valid signature: 202, a parent message in the environment's
    incident channel naming the run, and the diagnosis (progress + report) in its thread."""
    bot = await start_trigger_bot()
    reply = await bot.hooks.github(workflow_run("failure"))
    assert reply.status == 202, reply
    assert reply.body["events"] == [{"environment": "test", "kind": "deploy_failed"}]
    await bot.idle()
    [parent] = parents(bot.fake, "CINC")
    assert "Incident on `test`" in parent.text and "Deploy test #1 on test (4f2c9e1d0b7a) failed" in parent.text
    thread = bot.fake.thread(parent.ts)
    assert any("Runbook progress" in text_of(m.blocks) for m in thread)
    report = report_in(thread)
    assert report is not None, [m.text for m in thread]
    assert "Unknown column 'health_check_model'" in text_of(report.blocks)
    incident = await bot.rt.state.open_incident("test")
    assert incident is not None and incident.thread_ts == parent.ts
    run = await bot.rt.state.latest_diagnosis("test")
    assert run is not None and run.thread_ts == parent.ts and run.incident_id == incident.incident_id


async def test_invalid_signature_is_401_and_changes_nothing(start_trigger_bot):
    """A wrong secret, a tampered body and a missing header each get 401 with a JSON reason; no
    Slack call is made and no row is written."""
    bot = await start_trigger_bot()
    before = await _counts(bot)
    body = json.dumps(workflow_run("failure")).encode()
    wrong = await bot.hooks.github(body, secret="not-the-secret")
    tampered = await bot.hooks.github(body + b" ", signature=sign_github("gh-hook-SECRET-5150-abcdef", body))
    missing = await bot.hooks.raw("/hooks/github", body, {"X-GitHub-Event": "workflow_run",
                                                          "X-GitHub-Delivery": "d-1"})
    for reply in (wrong, tampered, missing):
        assert reply.status == 401, reply
        assert reply.body["status"] == "refused" and reply.body["reason"] == "bad_signature"
    await bot.idle()
    assert not bot.fake.calls_to("chat.postMessage")
    assert await _counts(bot) == before


async def test_second_failure_lands_in_the_open_incidents_thread(start_trigger_bot):
    """A second failed deploy while the incident is open is a note in the same thread: no new
    parent message, no second incident, no second diagnosis."""
    bot = await start_trigger_bot()
    assert (await bot.hooks.github(workflow_run("failure", run_id=9001))).status == 202
    second = await bot.hooks.github(workflow_run("timed_out", run_id=9002))
    assert second.status == 202
    await bot.idle()
    [parent] = parents(bot.fake, "CINC")
    notes = [m for m in bot.fake.thread(parent.ts) if "Another failed deploy" in m.text]
    assert len(notes) == 1 and "#2 on test" in notes[0].text and "timed_out" in notes[0].text
    counts = await _counts(bot)
    assert counts["qcc_incidents"] == 1 and counts["qcc_runs"] == 1 and counts["qcc_open_incidents"] == 1


async def test_alertmanager_firing_opens_then_adds_then_resolved_is_noted(start_trigger_bot):
    """A firing alert opens an incident with a diagnosis; a second firing alert (another
    alertname) lands in its thread; the resolved notification is noted there and closes it."""
    bot = await start_trigger_bot()
    first = await bot.hooks.alertmanager(alert_payload("firing"))
    assert first.status == 202 and first.body["events"] == [{"environment": "test", "kind": "alert_firing"}]
    await bot.idle()
    [parent] = parents(bot.fake, "CINC")
    assert "QccProxyDown firing" in parent.text
    assert report_in(bot.fake.thread(parent.ts)) is not None
    assert (await bot.hooks.alertmanager(alert_payload("firing", alertname="QccHighMemory"))).status == 202
    await bot.idle()
    assert len(parents(bot.fake, "CINC")) == 1
    assert any("Alert firing" in m.text and "QccHighMemory" in m.text for m in bot.fake.thread(parent.ts))
    resolved = await bot.hooks.alertmanager(alert_payload("resolved"))
    assert resolved.status == 202
    await bot.idle()
    last = bot.fake.thread(parent.ts)[-1]
    assert "Alert resolved" in last.text and "incident closed" in last.text
    assert await bot.rt.state.open_incident("test") is None
    assert len(parents(bot.fake, "CINC")) == 1
    events = [e.event for e in await bot.rt.state.list_audit(50)]
    assert "incident_closed" in events and "trigger_added" in events


async def test_alertmanager_bearer_token_is_required(start_trigger_bot):
    """With a token configured, a missing or wrong bearer token is 401 and changes nothing."""
    bot = await start_trigger_bot()
    before = await _counts(bot)
    for token in (None, "wrong-token"):
        reply = await bot.hooks.alertmanager(alert_payload("firing"), token=token)
        assert reply.status == 401 and reply.body["reason"] == "bad_token"
    await bot.idle()
    assert not bot.fake.calls_to("chat.postMessage") and await _counts(bot) == before


async def test_replays_are_ignored(start_trigger_bot):
    """The same X-GitHub-Delivery (or the same Alertmanager body) again: 200 `ignored`/`replay`,
    nothing posted, no row added — even after the incident it opened was closed."""
    bot = await start_trigger_bot()
    assert (await bot.hooks.github(workflow_run("failure"), delivery="d-42")).status == 202
    assert (await bot.hooks.alertmanager(alert_payload("resolved"))).status == 202
    await bot.idle()
    posts, before = len(bot.fake.calls_to("chat.postMessage")), await _counts(bot)
    again = await bot.hooks.github(workflow_run("failure"), delivery="d-42")
    am_again = await bot.hooks.alertmanager(alert_payload("resolved"))
    for reply in (again, am_again):
        assert reply.status == 200 and reply.body == {**reply.body, "status": "ignored", "reason": "replay"}
    await bot.idle()
    assert len(bot.fake.calls_to("chat.postMessage")) == posts and await _counts(bot) == before


async def test_unknown_and_malformed_are_refused_and_change_nothing(start_trigger_bot):
    """Unknown workflow/repository/branch 404, unmatched alert labels 404, non-JSON or
    wrong-shaped bodies 400, other GitHub events 400, an environment without an incident channel
    422: each a JSON body with a reason, and no Slack call, no row."""
    data = trigger_settings_data()
    data["environments"]["prod"]["slack"] = {}
    bot = await start_trigger_bot(data=data)
    before = await _counts(bot)
    cases = [
        (await bot.hooks.github(workflow_run("failure", name="Lint", path=".github/workflows/lint.yml")), 404),
        (await bot.hooks.github(workflow_run("failure", repo="evil/qcc_plus")), 404),
        (await bot.hooks.github(workflow_run("failure", branch="feature-x")), 404),
        (await bot.hooks.alertmanager(alert_payload("firing", labels={"env": "staging"})), 404),
        (await bot.hooks.github(b"{not json"), 400),
        (await bot.hooks.github({"action": "completed", "workflow_run": {"name": "x"}}), 400),
        (await bot.hooks.github(workflow_run("failure"), event="push"), 400),
        (await bot.hooks.alertmanager({"version": "3", "status": "firing", "alerts": [{"status": "firing"}]}),
         400),
        (await bot.hooks.alertmanager(b"[]"), 400),
        (await bot.hooks.github(workflow_run("failure", name="Deploy prod", path=".github/workflows/deploy-prod.yml",
                                             branch="main")), 422),
    ]
    for reply, status in cases:
        assert reply.status == status, (reply, status)
        assert reply.body["status"] == "refused" and reply.body["reason"] and reply.body["message"]
    await bot.idle()
    assert not bot.fake.calls_to("chat.postMessage")
    assert await _counts(bot) == before


async def test_not_actionable_github_events_are_ignored(start_trigger_bot):
    """A ping, a run still in progress and a cancelled run answer 200 `ignored` and change nothing."""
    bot = await start_trigger_bot()
    before = await _counts(bot)
    replies = [await bot.hooks.github({"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping"),
               await bot.hooks.github(workflow_run(None, action="in_progress")),
               await bot.hooks.github(workflow_run("cancelled"))]
    assert [r.status for r in replies] == [200, 200, 200]
    assert all(r.body["status"] == "ignored" for r in replies)
    await bot.idle()
    assert not bot.fake.calls_to("chat.postMessage") and await _counts(bot) == before


async def test_green_deploy_is_noted_in_the_thread_and_closes_the_incident(start_trigger_bot):
    """After a failed deploy, a green one says so in the incident's thread, closes the incident
    and starts the post-deploy watch there. The fake host still shows the proxy exited, so the
    watch finds it degraded and re-opens the incident in the same thread (tests/watch covers
    the watch on a sandbox host)."""
    bot = await start_trigger_bot(data=trigger_settings_data(watch={"window_min": 0.001, "interval_s": 0.01}))
    assert (await bot.hooks.github(workflow_run("failure", run_id=1))).status == 202
    await bot.idle()
    reply = await bot.hooks.github(workflow_run("success", run_id=2, sha="a" * 40))
    assert reply.status == 202 and reply.body["events"][0]["kind"] == "deploy_succeeded"
    await bot.idle()
    [parent] = parents(bot.fake, "CINC")
    texts = [m.text for m in bot.fake.thread(parent.ts)]
    assert any("Deploy succeeded" in t and "incident closed" in t for t in texts), texts
    assert any("Watching `test`" in t for t in texts), texts
    assert any("degraded" in t and "the proxy container is exited" in t for t in texts), texts
    events = [e.event for e in await bot.rt.state.list_audit(50)]
    assert events.index("incident_closed") > events.index("watch_degraded")  # newest first
    reopened = await bot.rt.state.open_incident("test")
    assert reopened is not None and reopened.opened_by == "watch" and reopened.thread_ts == parent.ts
    assert len(parents(bot.fake, "CINC")) == 1
