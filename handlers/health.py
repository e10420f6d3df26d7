"""``GET /healthz`` and ``GET /metrics``: what an orchestrator and Prometheus ask a running bot.

Served on the HTTP port in both modes (next to ``/slack/events`` with ``--http``; on a small
server of their own in Socket Mode). ``/healthz`` answers 200 when the Slack connection and
the state database are both up, else 503, always with a JSON body::

    {"status": "ok", "instance": "bot-a", "checks": {"slack": "ok", "state_db": "ok"}}
    {"status": "unhealthy", "instance": "bot-a", "reason": "slack: the Socket Mode connection ...",
     "checks": {"slack": "the Socket Mode connection ...", "state_db": "ok"}}

"The Slack connection" is the Socket Mode websocket (:func:`socket_check`) or, in HTTP mode,
whether the Web API answers ``auth.test`` (:class:`AuthProbe`, one probe per
``slack.health_probe_s``). While the bot shuts down, ``/healthz`` answers 503 ``shutting down``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.metrics import Metrics
from bot.state.store import StateStore

SlackCheck = Callable[[], Awaitable[str | None]]
CHECK_TIMEOUT_S = 3.0


def socket_check(client: Any) -> SlackCheck:
    """Socket Mode: up while the client's websocket is open and answering pings."""

    async def check() -> str | None:
        if await client.is_connected():
            return None
        return "the Socket Mode connection to Slack is down (reconnecting)"

    return check


class AuthProbe:
    """HTTP mode: Slack counts as reachable when ``auth.test`` succeeds; one probe answers for
    ``interval_s`` (concurrent health requests share it)."""

    def __init__(self, client: AsyncWebClient, interval_s: float) -> None:
        self.client = client
        self.interval_s = interval_s
        self._at = float("-inf")
        self._result: str | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> str | None:
        async with self._lock:
            if time.monotonic() - self._at < self.interval_s:
                return self._result
            try:
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    await self.client.auth_test()
                result = None
            except SlackApiError as exc:
                data = exc.response.data if exc.response is not None else None
                error = data.get("error") if isinstance(data, dict) else None
                result = f"the Slack Web API refused auth.test ({error or 'error'})"
            except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                result = f"the Slack Web API is unreachable ({type(exc).__name__})"
            self._at, self._result = time.monotonic(), result
            return result


class Ops:
    """The health and metrics endpoints of one running bot."""

    def __init__(self, state: StateStore, metrics: Metrics, slack: SlackCheck | None = None) -> None:
        self.state = state
        self.metrics = metrics
        self.slack = slack  # set by serve() once the Slack side is built
        self.stopping = False

    async def _slack(self) -> str | None:
        if self.slack is None:
            return "the Slack connection is not started"
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                return await self.slack()
        except TimeoutError:
            return f"the Slack check did not answer within {CHECK_TIMEOUT_S:g}s"

    async def health(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) of ``/healthz``."""
        slack, db = await asyncio.gather(self._slack(), self.state.check(CHECK_TIMEOUT_S))
        checks = {"slack": slack or "ok", "state_db": db or "ok"}
        reasons = [f"{name}: {value}" for name, value in checks.items() if value != "ok"]
        if self.stopping:
            reasons.insert(0, "shutting down")
        body: dict[str, Any] = {"status": "unhealthy" if reasons else "ok", "instance": self.state.owner,
                                "checks": checks}
        if reasons:
            body["reason"] = "; ".join(reasons)
        return (503 if reasons else 200), body

    def routes(self) -> list[web.RouteDef]:
        async def healthz(_: web.Request) -> web.Response:
            status, body = await self.health()
            return web.json_response(body, status=status)

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=self.metrics.render(),
                                headers={"Content-Type": self.metrics.content_type})

        return [web.get("/healthz", healthz), web.get("/metrics", metrics)]
