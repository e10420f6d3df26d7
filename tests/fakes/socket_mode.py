"""A local fake of Slack's Socket Mode websocket endpoint (aiohttp, 127.0.0.1).

Point the fake Web API at it (``fake_slack.socket_url = socket.url``): ``apps.connections.open``
then hands out ``ws://127.0.0.1:<port>/link``. Every connection gets Slack's ``hello`` first.

Switches: ``drop_after_hello`` (how many of the next connections to cut right after their
``hello``, without a close frame, as a network failure does), ``refuse`` (cut every
connection at once, without a ``hello``: Slack unreachable). Actions: :meth:`drop` cuts the
live connection; :meth:`send_envelope` sends an envelope (``slash_commands``,
``interactive``, ``events_api``) over it and returns its ``envelope_id``.

State a test can read: ``connections`` (every websocket accepted, in order, with ``hello_sent``
and ``dropped``), ``acks`` (``envelope_id`` -> the acknowledgement the bot sent back).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.waiting import wait_until


@dataclass
class Connection:
    """One websocket the bot opened."""

    ws: web.WebSocketResponse
    transport: Any
    opened_at: float
    hello_sent: bool = False
    dropped: bool = False
    received: list[dict[str, Any]] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return not self.dropped and not self.ws.closed


class FakeSocketMode:
    """Start with ``await fake.start()``; ``fake.url`` is what ``apps.connections.open`` returns."""

    def __init__(self) -> None:
        self.connections: list[Connection] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.drop_after_hello = 0
        self.refuse = False
        self.changed = asyncio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> FakeSocketMode:
        app = web.Application()
        app.add_routes([web.get("/link", self._ws)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        for conn in self.connections:
            self._cut(conn)
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link"

    @property
    def live(self) -> Connection | None:
        """The newest live connection, if any."""
        return next((c for c in reversed(self.connections) if c.live), None)

    # -- actions -----------------------------------------------------------------------
    def _cut(self, conn: Connection) -> None:
        """Abort the TCP connection: no close frame, as when a network path dies."""
        conn.dropped = True
        if conn.transport is not None:
            conn.transport.abort()
        self.changed.set()

    def drop(self) -> None:
        """Cut the live connection (the bot should open a new one)."""
        if self.live is not None:
            self._cut(self.live)

    async def send_envelope(self, type_: str, payload: dict[str, Any], *, retry_attempt: int | None = None,
                            accepts_response_payload: bool = True) -> str:
        """Send an envelope over the live connection; returns its ``envelope_id``."""
        conn = self.live
        if conn is None:
            raise AssertionError("no live Socket Mode connection to send on")
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {"envelope_id": envelope_id, "type": type_, "payload": payload,
                                    "accepts_response_payload": accepts_response_payload}
        if retry_attempt is not None:
            envelope.update(retry_attempt=retry_attempt, retry_reason="timeout")
        await conn.ws.send_str(json.dumps(envelope))
        return envelope_id

    async def wait_for(self, predicate: Any, timeout_s: float = 20.0) -> None:
        """Wait until ``predicate()`` is true (re-checked on every socket event)."""
        await wait_until(predicate, self.changed, timeout_s, "the fake Socket Mode endpoint")

    # -- the endpoint ------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = Connection(ws=ws, transport=request.transport, opened_at=time.monotonic())
        self.connections.append(conn)
        self.changed.set()
        if self.refuse:
            self._cut(conn)
            return ws
        await ws.send_str(json.dumps({"type": "hello", "num_connections": len(self.connections),
                                      "debug_info": {"host": "fake-socket-mode"},
                                      "connection_info": {"app_id": "A0FAKE"}}))
        conn.hello_sent = True
        self.changed.set()
        if self.drop_after_hello > 0:
            self.drop_after_hello -= 1
            await asyncio.sleep(0.05)
            self._cut(conn)
            return ws
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                conn.received.append(data)
                if isinstance(data, dict) and data.get("envelope_id"):
                    self.acks[data["envelope_id"]] = data
                self.changed.set()
        self.changed.set()
        return ws
