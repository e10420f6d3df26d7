"""Build and run the Slack bot: Socket Mode by default, HTTP (``POST /slack/events``) on request.

``serve(settings, http, port)`` is what ``qcc-bot serve [--http --port N]`` awaits. It fails
fast (:class:`bot.errors.ConfigError` listing every missing token) before opening anything,
then: opens the services (state store owned by ``settings.owner``, transports) in one
lifespan, builds one ``AsyncWebClient`` (``base_url`` = ``settings.slack.api_url``, retry
handlers for 429 with Retry-After, 5xx and connection errors), marks runs a previous
instance left running as ``interrupted`` (and says so in their threads), and serves until
SIGINT/SIGTERM or ``stop``. ``GET /healthz`` and ``GET /metrics`` (:mod:`handlers.health`)
and the trigger webhooks ``POST /hooks/github`` and ``POST /hooks/alertmanager``
(:mod:`handlers.webhooks`) are served on ``port`` in both modes. Post-deploy watches this
instance left running are resumed at start-up and their loops cancelled (left running, for
the next start) before the shutdown drain.

While it runs, an upkeep task refreshes this instance's heartbeat every ``lease_s / 3`` and
marks the runs of replicas whose lease expired ``interrupted`` (announced in their threads,
never re-run). On the way out it stops taking requests, waits up to ``shutdown_grace_s`` for
the background tasks, cancels the rest (their runs end ``interrupted`` and are announced),
and closes the Slack sessions, the state database and the SSH/MySQL pools.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
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
from bot.errors import ConfigError, SlackError, StateUnavailable, UserError
from bot.escalation import EscalationCollector
from bot.metrics import Metrics
from bot.state.records import Interrupted
from bot.transports.base import TransportProvider
from handlers import approvals, blocks, commands, errors
from handlers.health import AuthProbe, Ops, socket_check
from handlers.parsing import parse_command
from handlers.runtime import Runtime
from handlers.slackio import SlackOut
from handlers.tasks import AcksFirst, TaskRegistry
from handlers.triggers import IncidentTriggers
from handlers.watching import Watcher
from handlers.webhooks import Webhooks

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


def _endpoint(settings: Settings) -> dict[str, Any]:
    token = settings.slack.bot_token.get_secret_value() if settings.slack.bot_token else None
    base = settings.slack.api_url if settings.slack.api_url.endswith("/") else settings.slack.api_url + "/"
    return {"token": token, "base_url": base}


def build_client(settings: Settings, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """The one Web API client: ``base_url`` from settings, retries for 429/5xx/connection errors."""
    return AsyncWebClient(**_endpoint(settings), session=session, timeout=30, retry_handlers=[
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=5),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ])


def probe_client(settings: Settings, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """A client for health probes: same endpoint and token, short timeout, no retries."""
    return AsyncWebClient(**_endpoint(settings), session=session, timeout=3, retry_handlers=[])


def is_retry(req: AsyncBoltRequest) -> bool:
    """A re-delivery: ``X-Slack-Retry-Num`` >= 1 (HTTP) or an envelope's ``retry_attempt`` >= 1
    (Socket Mode mirrors it into the same header; first deliveries carry ``0``)."""
    values = req.headers.get("x-slack-retry-num") or []
    value = values[0] if isinstance(values, list | tuple) and values else values
    try:
        return int(str(value or "0").strip()) > 0
    except ValueError:
        return True  # a malformed retry header is not a first delivery


async def ignore_retries(req: AsyncBoltRequest, resp: BoltResponse, next: Any) -> BoltResponse:
    """Slack re-sends a request it thinks timed out: the first delivery was already
    acknowledged and is being handled (by this replica or another), so a retry is
    acknowledged and dropped."""
    if is_retry(req):
        return BoltResponse(status=200, body="")
    return await next()


def acks_first(gate: AcksFirst) -> Any:
    """Middleware marking each request as being answered, so that work its listener (or a
    listener of the same burst) spawns starts after the acks (:class:`handlers.tasks.AcksFirst`)."""

    async def middleware(req: AsyncBoltRequest, resp: BoltResponse, next: Any) -> BoltResponse:
        with gate.answering():
            return await next()

    return middleware


def subcommand_of(text: str) -> str:
    """The ``/qcc`` subcommand for metrics (``invalid`` for text that does not parse)."""
    try:
        return parse_command(text).sub
    except UserError:
        return "invalid"


def count_commands(metrics: Metrics) -> Any:
    """Middleware counting ``/qcc`` commands by subcommand (after retries were dropped)."""

    async def middleware(req: AsyncBoltRequest, resp: BoltResponse, next: Any) -> BoltResponse:
        body = req.body if isinstance(req.body, dict) else {}
        if body.get("command"):
            metrics.command(subcommand_of(str(body.get("text") or "")))
        return await next()

    return middleware


class _SameTokenWarning(logging.Filter):
    """Drops Bolt's "As you gave `client` as well, `token` will be unused" when the token Bolt
    read from ``$SLACK_BOT_TOKEN`` is the one our client already carries (nothing is unused)."""

    def __init__(self, token: str | None) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        same = not os.environ.get("SLACK_BOT_TOKEN") or os.environ.get("SLACK_BOT_TOKEN") == self.token
        return not (same and record.getMessage() == warning_client_prioritized_and_token_skipped())


def build_app(rt: Runtime, *, http: bool) -> AsyncApp:
    """The bolt app with every listener registered (``register(app, rt)`` per family).

    Bolt reads ``$SLACK_BOT_TOKEN`` itself even when given a client; the warning it logs then
    is dropped when that token is the client's own (a different one is still reported).

    ``process_before_response=True``: every listener here acks and spawns its work (nothing
    slow runs before it returns), so Bolt answers as soon as the listener returns instead of
    polling for the ack every 10 ms on a separate task (issue 11: time to the HTTP 200 in a
    burst of commands).
    """
    secret = rt.settings.slack.signing_secret
    bolt_log = logging.getLogger("slack_bolt.AsyncApp")
    quiet = _SameTokenWarning(rt.out.client.token)
    bolt_log.addFilter(quiet)
    try:
        app = AsyncApp(name="qcc-bot", client=rt.out.client,
                       signing_secret=secret.get_secret_value() if secret else "",
                       request_verification_enabled=http, process_before_response=True)
    finally:
        bolt_log.removeFilter(quiet)
    if rt.tasks.acks_first is not None:
        app.middleware(acks_first(rt.tasks.acks_first))
    app.middleware(ignore_retries)
    app.middleware(count_commands(rt.metrics))
    errors.register(app, rt)
    commands.register(app, rt)
    approvals.register(app, rt)
    return app


def build_runtime(services: Services, client: AsyncWebClient, *, progress_interval_s: float = 1.0,
                  metrics: Metrics | None = None) -> Runtime:
    escalation = EscalationCollector(services.settings, services.diagnosis, services.transports,
                                     services.secrets)
    return Runtime(services=services, out=SlackOut(client, services.secrets), tasks=TaskRegistry(AcksFirst()),
                   escalation=escalation, progress_interval_s=progress_interval_s,
                   drain_timeout_s=services.settings.shutdown_grace_s, metrics=metrics or services.metrics)


async def announce(rt: Runtime, items: list[Interrupted]) -> None:
    """Say in each item's thread that its run was interrupted (and refresh a fix's card)."""
    for item in items:
        if not item.channel:
            continue
        try:
            await rt.out.post(item.channel, blocks.interrupted(item), thread_ts=item.thread_ts)
            if item.approval_id and item.card_ts:
                await approvals.refresh_card(rt, await rt.state.get_approval(item.approval_id))
        except SlackError as exc:
            log.warning("could not announce interrupted %s %s: %s", item.kind, item.run_id
                        or item.approval_id, exc)


async def recover(rt: Runtime) -> int:
    """Mark runs a previous instance left ``running`` as ``interrupted`` and say so in their
    threads (they are never re-run). Returns how many were marked."""
    items = await rt.state.recover_interrupted()
    await announce(rt, items)
    return len(items)


async def _upkeep(rt: Runtime) -> None:
    """Heartbeat this instance's runs and take over the announcements of dead replicas."""
    while True:
        await asyncio.sleep(rt.state.lease_s / 3)
        try:
            items = await rt.state.upkeep()
            if items:
                log.warning("marked %d run(s) of a stopped replica interrupted", len(items))
            await announce(rt, items)
        except StateUnavailable as exc:
            log.warning("state upkeep skipped: %s", exc)
        except Exception:  # this loop keeps the lease alive: log anything unexpected, never die
            log.exception("state upkeep failed")


async def shutdown(rt: Runtime) -> None:
    """Drain the background work (up to ``drain_timeout_s``), cancel the rest, then announce
    every run of this instance that ended ``interrupted`` (none is left ``running``)."""
    started = rt.state.clock()
    cancelled = await rt.tasks.drain(rt.drain_timeout_s)
    if not cancelled:
        return
    log.warning("shutdown cancelled %d background task(s)", cancelled)
    try:
        await announce(rt, await rt.state.closing_sweep(started))
    except StateUnavailable as exc:  # the next start-up marks and announces them
        log.warning("could not mark interrupted runs at shutdown: %s", exc)


def web_app(app: AsyncApp | None, ops: Ops | None = None, hooks: Webhooks | None = None) -> web.Application:
    """aiohttp application: ``POST /slack/events`` (when ``app``: commands, interactivity,
    events), ``GET /healthz`` + ``GET /metrics`` (when ``ops``) and ``POST /hooks/github`` +
    ``POST /hooks/alertmanager`` (when ``hooks``, :mod:`handlers.webhooks`)."""

    async def handle(request: web.Request) -> web.Response:
        bolt_resp = await app.async_dispatch(await to_bolt_request(request))  # type: ignore[union-attr]
        return await to_aiohttp_response(bolt_resp)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    wa = web.Application(client_max_size=1024 * 1024)
    if app is not None:
        wa.add_routes([web.post(EVENTS_PATH, handle)])
    wa.add_routes(ops.routes() if ops is not None else [web.get("/healthz", health)])
    if hooks is not None:
        wa.add_routes(hooks.routes())
    return wa


async def start_http(app: AsyncApp | None, host: str, port: int, *,
                     ops: Ops | None = None, hooks: Webhooks | None = None) -> tuple[web.AppRunner, int]:
    """Serve ``app`` (and ``ops``, ``hooks``) on ``host:port`` (0 = any free port); returns the
    runner and the bound port."""
    runner = web.AppRunner(web_app(app, ops, hooks), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    addresses = runner.addresses  # (host, port, ...) per bound socket: the real port when port=0
    return runner, int(addresses[0][1]) if addresses else port


@dataclass
class Bot:
    """A running bot: the bolt app, its runtime, its health/metrics and trigger endpoints and
    its post-deploy watches."""

    app: AsyncApp
    rt: Runtime
    ops: Ops
    hooks: Webhooks
    watcher: Watcher


@contextlib.asynccontextmanager
async def running_bot(settings: Settings, *, http: bool, transports: TransportProvider | None = None,
                      state_url: str | None = None, progress_interval_s: float = 1.0,
                      watch_options: dict[str, Any] | None = None) -> AsyncIterator[Bot]:
    """Everything but the listener: services, client, app, recovery (runs, then watches) and
    upkeep; closed in order. ``watch_options`` go to :class:`~handlers.watching.Watcher`
    (tests inject its clock, sleep and probe).

    ``ops.slack`` checks the Web API (``auth.test``); Socket Mode replaces it with the socket's
    own state (:func:`serve`).
    """
    check_credentials(settings, http=http)
    async with lifespan(settings, transports=transports, with_state=True, state_url=state_url) as services:
        metrics = services.metrics
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        rt = build_runtime(services, build_client(settings, session), progress_interval_s=progress_interval_s,
                           metrics=metrics)
        probe = AuthProbe(probe_client(settings, session), settings.slack.health_probe_s)
        ops = Ops(rt.state, metrics, probe)
        upkeep: asyncio.Task[None] | None = None
        watcher = Watcher(rt, **(watch_options or {}))
        rt.watcher = watcher
        hooks = Webhooks(rt, IncidentTriggers(rt, watcher))
        try:
            app = build_app(rt, http=http)
            await recover(rt)
            await watcher.resume()
            upkeep = asyncio.create_task(_upkeep(rt), name="state-upkeep")
            yield Bot(app=app, rt=rt, ops=ops, hooks=hooks, watcher=watcher)
        finally:
            ops.stopping = True
            try:
                await watcher.close()  # watches stay `running`: resumed at the next start
                await shutdown(rt)
            finally:
                if upkeep is not None:
                    upkeep.cancel()
                    await asyncio.gather(upkeep, return_exceptions=True)
                await session.close()


async def serve(settings: Settings, http: bool = False, port: int = 3000, *, host: str = "0.0.0.0",
                transports: TransportProvider | None = None, stop: asyncio.Event | None = None) -> None:
    """Run the bot until SIGINT/SIGTERM (or ``stop`` is set). Raises :class:`ConfigError` at once
    when a required token or secret is missing. ``port`` serves ``/slack/events`` (HTTP mode)
    and ``/healthz`` + ``/metrics`` (both modes)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with running_bot(settings, http=http, transports=transports) as bot:
            await bot.rt.out.call("auth.test", bot.rt.out.client.auth_test())  # a wrong bot token stops here
            if http:
                await _serve_http(bot, host, port, stop)
            else:
                await _serve_socket(bot, settings, host, port, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


async def _serve_http(bot: Bot, host: str, port: int, stop: asyncio.Event) -> None:
    runner, bound = await start_http(bot.app, host, port, ops=bot.ops, hooks=bot.hooks)
    log.info("qcc-bot listening on http://%s:%d%s", host, bound, EVENTS_PATH)
    try:
        await stop.wait()
    finally:
        bot.ops.stopping = True
        await runner.cleanup()


async def _serve_socket(bot: Bot, settings: Settings, host: str, port: int, stop: asyncio.Event) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    app_token = settings.slack.app_token.get_secret_value() if settings.slack.app_token else ""
    # The Socket Mode client retries a refused connection forever: probe once to fail fast.
    await bot.rt.out.call("apps.connections.open", bot.rt.out.client.apps_connections_open(
        app_token=app_token))
    handler = AsyncSocketModeHandler(bot.app, app_token, ping_interval=settings.slack.socket_ping_interval_s)
    bot.ops.slack = socket_check(handler.client)
    try:
        runner, bound = await start_http(None, host, port, ops=bot.ops, hooks=bot.hooks)
        try:
            log.info("qcc-bot health and metrics on http://%s:%d/healthz", host, bound)
            await handler.connect_async()
            log.info("qcc-bot connected to Slack (Socket Mode)")
            await stop.wait()
        finally:
            bot.ops.stopping = True
            await runner.cleanup()
    finally:
        await handler.close_async()
