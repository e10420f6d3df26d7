"""Build and run the Slack bot: Socket Mode by default, HTTP (``POST /slack/events``) on request.

``serve(settings, http, port)`` is what ``qcc-bot serve [--http --port N]`` awaits. It fails
fast (:class:`bot.errors.ConfigError` listing every missing token) before opening anything,
then: opens the services (state store, transports) in one lifespan, builds one
``AsyncWebClient`` (``base_url`` = ``settings.slack.api_url``, retry handlers for 429 with
Retry-After, 5xx and connection errors), marks runs a previous instance left running as
``interrupted`` (and says so in their threads), and serves until SIGINT/SIGTERM or ``stop``.
On the way out it stops taking requests, drains the background tasks, and closes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import Services, lifespan
from bot.config import Settings
from bot.errors import ConfigError, SlackError
from bot.escalation import EscalationCollector
from bot.transports.base import TransportProvider
from handlers import approvals, blocks, commands, errors
from handlers.runtime import Runtime
from handlers.slackio import SlackOut
from handlers.tasks import TaskRegistry

log = logging.getLogger("qcc.slack")
EVENTS_PATH = "/slack/events"


def check_credentials(settings: Settings, *, http: bool) -> None:
    """Raise :class:`ConfigError` naming every missing or malformed Slack credential."""
    s = settings.slack
    problems: list[str] = []
    bot = s.bot_token.get_secret_value() if s.bot_token else ""
    if not bot:
        problems.append("SLACK_BOT_TOKEN is not set: the bot token (xoxb-...) is needed to post to Slack")
    elif not bot.startswith("xoxb-"):
        problems.append("SLACK_BOT_TOKEN does not look like a bot token (expected xoxb-...)")
    if http and not (s.signing_secret and s.signing_secret.get_secret_value()):
        problems.append("SLACK_SIGNING_SECRET is not set: HTTP mode cannot verify that requests "
                        "come from Slack")
    if not http:
        app_token = s.app_token.get_secret_value() if s.app_token else ""
        if not app_token:
            problems.append("SLACK_APP_TOKEN is not set: Socket Mode needs an app-level token (xapp-..., "
                            "scope connections:write); or run `qcc-bot serve --http`")
        elif not app_token.startswith("xapp-"):
            problems.append("SLACK_APP_TOKEN does not look like an app-level token (expected xapp-...)")
    if problems:
        raise ConfigError("the Slack bot cannot start", problems)


def build_client(settings: Settings, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """The one Web API client: ``base_url`` from settings, retries for 429/5xx/connection errors."""
    token = settings.slack.bot_token.get_secret_value() if settings.slack.bot_token else None
    base = settings.slack.api_url if settings.slack.api_url.endswith("/") else settings.slack.api_url + "/"
    return AsyncWebClient(token=token, base_url=base, session=session, timeout=30, retry_handlers=[
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=5),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ])


async def ignore_retries(req: AsyncBoltRequest, resp: BoltResponse, next: Any) -> BoltResponse:
    """Slack re-sends a request it thinks timed out (``X-Slack-Retry-Num``): the first delivery
    was already acknowledged and is being handled, so a retry is acknowledged and dropped."""
    if req.headers.get("x-slack-retry-num"):
        return BoltResponse(status=200, body="")
    return await next()


def build_app(rt: Runtime, *, http: bool) -> AsyncApp:
    """The bolt app with every listener registered (``register(app, rt)`` per family)."""
    secret = rt.settings.slack.signing_secret
    app = AsyncApp(name="qcc-bot", client=rt.out.client, signing_secret=secret.get_secret_value() if secret
                   else "",
                   request_verification_enabled=http, process_before_response=False)
    app.middleware(ignore_retries)
    errors.register(app, rt)
    commands.register(app, rt)
    approvals.register(app, rt)
    return app


def build_runtime(services: Services, client: AsyncWebClient, *, progress_interval_s: float = 1.0) -> Runtime:
    escalation = EscalationCollector(services.settings, services.diagnosis, services.transports,
                                     services.secrets)
    return Runtime(services=services, out=SlackOut(client, services.secrets), tasks=TaskRegistry(),
                   escalation=escalation, progress_interval_s=progress_interval_s)


async def recover(rt: Runtime) -> int:
    """Mark runs a previous instance left ``running`` as ``interrupted`` and say so in their
    threads (they are never re-run). Returns how many were marked."""
    items = await rt.state.recover_interrupted()
    for item in items:
        if not item.channel:
            continue
        try:
            await rt.out.post(item.channel, blocks.interrupted(item), thread_ts=item.thread_ts)
            if item.approval_id and item.card_ts:
                await approvals._refresh_card(rt, await rt.state.get_approval(item.approval_id))
        except SlackError as exc:
            log.warning("could not announce interrupted %s %s: %s", item.kind, item.run_id
                        or item.approval_id, exc)
    return len(items)


async def _heartbeat(rt: Runtime) -> None:
    while True:
        await asyncio.sleep(rt.state.lease_s / 3)
        await rt.state.heartbeat()


def web_app(app: AsyncApp) -> web.Application:
    """aiohttp application serving ``POST /slack/events`` (commands, interactivity, events)."""

    async def handle(request: web.Request) -> web.Response:
        bolt_resp = await app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_resp)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    wa = web.Application(client_max_size=1024 * 1024)
    wa.add_routes([web.post(EVENTS_PATH, handle), web.get("/healthz", health)])
    return wa


async def start_http(app: AsyncApp, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0 = any free port); returns the runner and the bound port."""
    runner = web.AppRunner(web_app(app), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # the asyncio server, for the bound port when port=0
    bound = server.sockets[0].getsockname()[1] if server is not None and server.sockets else port
    return runner, bound


@dataclass
class Bot:
    """A running bot: the bolt app and its runtime (for tests and :func:`serve`)."""

    app: AsyncApp
    rt: Runtime


@contextlib.asynccontextmanager
async def running_bot(settings: Settings, *, http: bool, transports: TransportProvider | None = None,
                      state_url: str | None = None, progress_interval_s: float = 1.0) -> AsyncIterator[Bot]:
    """Everything but the listener: services, client, app, recovery and heartbeat; closed in order."""
    check_credentials(settings, http=http)
    async with lifespan(settings, transports=transports, with_state=True, state_url=state_url) as services:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        rt = build_runtime(services, build_client(settings, session), progress_interval_s=progress_interval_s)
        beat: asyncio.Task[None] | None = None
        try:
            app = build_app(rt, http=http)
            await recover(rt)
            beat = asyncio.create_task(_heartbeat(rt), name="state-heartbeat")
            yield Bot(app=app, rt=rt)
        finally:
            cancelled = await rt.tasks.drain(rt.drain_timeout_s)
            if cancelled:
                log.warning("shutdown cancelled %d background task(s)", cancelled)
            if beat is not None:
                beat.cancel()
                await asyncio.gather(beat, return_exceptions=True)
            await session.close()


async def serve(settings: Settings, http: bool = False, port: int = 3000, *, host: str = "0.0.0.0",
                transports: TransportProvider | None = None, stop: asyncio.Event | None = None) -> None:
    """Run the bot until SIGINT/SIGTERM (or ``stop`` is set). Raises :class:`ConfigError` at once
    when a required token or secret is missing."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    async with running_bot(settings, http=http, transports=transports) as bot:
        await bot.rt.out.call("auth.test", bot.rt.out.client.auth_test())  # a wrong bot token stops here
        if http:
            runner, bound = await start_http(bot.app, host, port)
            log.info("qcc-bot listening on http://%s:%d%s", host, bound, EVENTS_PATH)
            try:
                await stop.wait()
            finally:
                await runner.cleanup()
        else:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            app_token = settings.slack.app_token.get_secret_value() if settings.slack.app_token else ""
            # The Socket Mode client retries a refused connection forever: probe once to fail fast.
            await bot.rt.out.call("apps.connections.open", bot.rt.out.client.apps_connections_open(
                app_token=app_token))
            handler = AsyncSocketModeHandler(bot.app, app_token)
            await handler.connect_async()
            log.info("qcc-bot connected to Slack (Socket Mode)")
            try:
                await stop.wait()
            finally:
                await handler.close_async()
