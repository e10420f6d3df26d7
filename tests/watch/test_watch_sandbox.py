"""Issue 12's "Must show" for the post-deploy watch: a green deploy webhook starts a watch of a
sandbox host (the docker/free/ps/curl stand-ins of sandbox/qcc_sandbox, run locally); the watch's clock
and sleep are injected, so ten minutes of polling every 20 s run in seconds."""

from __future__ import annotations

import pytest

from bot.state.models import WatchStatus
from bot.transports.base import EnvironmentTransports
from bot.transports.fake import FakeSqlRunner, FakeTransportProvider
from tests.fakes.sandbox_runner import SandboxRunner
from tests.slack.scenario import migration_failed
from tests.triggers.conftest import parents, report_in, trigger_settings_data, workflow_run

# Whole watch windows over the sandbox stand-ins (tens of seconds): `make test` runs them, not test-fast.
pytestmark = pytest.mark.slow


def sandbox_bot_args(box, clock, **watch):
    data = trigger_settings_data(test_env=box.config_paths(), watch=watch)
    transports = FakeTransportProvider({
        "test": EnvironmentTransports("test", SandboxRunner(box), FakeSqlRunner()),
        "prod": EnvironmentTransports("prod", *migration_failed()),
    })
    return {"data": data, "transports": transports, "watch_options": {"clock": clock, "sleep": clock.sleep}}


async def test_watch_after_green_deploy_catches_workers_exhausting_memory(start_trigger_bot, box, clock):
    """Healthy at first; two minutes into the watch the host turns into the start-up
    health-check overload (10 claude/node workers, 11 MB available, /version timing out). The
    watch says the environment degraded with those reasons, opens the incident in the watch's
    thread and posts a diagnosis whose top cause is the health-check overload."""
    swapped: list[float] = []

    def overload() -> None:
        box.load("startup_health_check_overload", reset_logs=False)
        swapped.append(clock.elapsed_s())

    clock.at(120, overload)
    bot = await start_trigger_bot(**sandbox_bot_args(box, clock))
    reply = await bot.hooks.github(workflow_run("success"))
    assert reply.status == 202
    await bot.idle(120)

    assert swapped == [120.0]
    [parent] = parents(bot.fake, "CINC")
    assert "Deploy of `test` succeeded" in parent.text and "Watching it for 10 min" in parent.text
    thread = bot.fake.thread(parent.ts)
    texts = [m.text for m in thread]
    assert "Watching `test` for 10 min" in texts[0]
    degraded = next(t for t in texts if "degraded" in t)
    # two degraded polls in a row (watch.failed_polls = 2): at 2:00 and 2:20
    assert "after 2.3 min" in degraded, degraded
    assert "host memory available 11 MB, below 200 MB" in degraded
    assert "10 health-check workers (claude/node), more than 6" in degraded
    assert "/version does not answer" in degraded
    assert report_in(thread) is not None, texts
    run = await bot.rt.state.latest_diagnosis("test")
    assert run is not None and run.thread_ts == parent.ts
    assert run.diagnosis().top_cause.id == "startup_health_check_overload"
    incident = await bot.rt.state.open_incident("test")
    assert incident is not None and incident.thread_ts == parent.ts and incident.opened_by == "watch"
    assert clock.slept[:6] == [20.0] * 6  # the configured interval
    assert await bot.rt.state.active_watch("test") is None


async def test_clean_window_posts_its_figures(start_trigger_bot, box, clock):
    """A host that stays healthy for the whole window: one line, "watched 10 min: stayed
    healthy" with restarts, minimum available memory, maximum workers and the /version commit."""
    bot = await start_trigger_bot(**sandbox_bot_args(box, clock, interval_s=60))
    assert (await bot.hooks.github(workflow_run("success"))).status == 202
    await bot.idle(120)
    [parent] = parents(bot.fake, "CINC")
    last = bot.fake.thread(parent.ts)[-1].text
    assert last == ("✅ `test` watched 10 min: stayed healthy (restarts 0, min available 1098 MB, max workers 0, "
                    "/version 0a8a22f)"), last
    assert 10 <= len(clock.slept) <= 11 and sum(clock.slept) >= 600
    assert await bot.rt.state.latest_diagnosis("test") is None, "a clean window diagnoses nothing"
    events = [e.event for e in await bot.rt.state.list_audit(20)]
    assert "watch_healthy" in events


async def test_restart_counts_as_degraded(start_trigger_bot, box, clock):
    """The proxy restarted during the window (docker's RestartCount went up): degraded."""
    def restart() -> None:
        def bump(st: dict) -> None:
            next(c for c in st["containers"] if c["service"] == "proxy")["restart_count"] = 2

        box.update_state(bump)

    clock.at(60, restart)
    bot = await start_trigger_bot(**sandbox_bot_args(box, clock, failed_polls=1))
    assert (await bot.hooks.github(workflow_run("success"))).status == 202
    await bot.idle(120)
    watch_rows = [m.text for m in bot.fake.messages.values() if "degraded" in m.text]
    assert watch_rows and "the proxy restarted 2 time(s) during the watch" in watch_rows[0], watch_rows
    assert WatchStatus.DEGRADED.value in [e.result for e in await bot.rt.state.list_audit(30)]
