"""A local fake of Slack's Web API (aiohttp, 127.0.0.1) that records every call.

Implements what the bot uses: ``auth.test``, ``chat.postMessage``, ``chat.update``,
``chat.postEphemeral``, ``usergroups.users.list``, ``files.getUploadURLExternal``, the
upload URL it hands out, ``files.completeUploadExternal`` (and ``apps.connections.open``
answering an error, so Socket Mode fails fast against it, unless ``socket_url`` names a
websocket URL to hand out, e.g. :class:`tests.fakes.socket_mode.FakeSocketMode`'s).

State a test can read: ``calls`` (every request, in order, with parsed params), ``messages``
(by ts, with ``thread_ts`` and update history), ``ephemerals``, ``uploads``. Switches:
``fail(method, status=429, retry_after=0, times=1)`` and ``fail(method, status=500)``;
``usergroups`` maps a group id to its members (an unknown group answers an API error).
"""

from __future__ import annotations

import asyncio
import gzip
import io
import itertools
import json
import tarfile
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from pydantic_core import to_jsonable_python

from tests.fakes.waiting import wait_until

BOT_USER = "UBOT00001"


@dataclass
class Call:
    """One request the fake received."""

    method: str
    params: dict[str, Any]
    at: float
    raw: bytes = b""
    status: int = 200


@dataclass
class Posted:
    """A message as the fake holds it (``versions`` keeps every update)."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str
    blocks: list[dict[str, Any]]
    versions: list[dict[str, Any]] = field(default_factory=list)


class FakeSlackAPI:
    """Start with ``await fake.start()``; ``fake.api_url`` is the bot's ``slack.api_url``."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, Posted] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.uploads: dict[str, bytes] = {}
        self.completed: list[dict[str, Any]] = []
        self.usergroups: dict[str, list[str]] = {}
        self.secrets: set[str] = set()  # values a test asserts never reached Slack
        self.failures: dict[str, list[tuple[int, int | None]]] = {}
        self.socket_url: str | None = None  # apps.connections.open answers this URL when set
        self._ts = itertools.count(1)
        self._files = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.changed = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> FakeSlackAPI:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes([web.post("/api/{method}", self._api), web.get("/api/{method}", self._api),
                        web.post("/upload/{file_id}", self._upload)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # -- switches ----------------------------------------------------------------------
    def fail(self, method: str, *, status: int = 429, retry_after: int | None = 0, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with ``status`` (429 gets Retry-After)."""
        self.failures.setdefault(method, []).extend([(status, retry_after)] * times)

    # -- queries -----------------------------------------------------------------------
    def calls_to(self, method: str, *, ok_only: bool = True) -> list[Call]:
        return [c for c in self.calls if c.method == method and (c.status == 200 or not ok_only)]

    def thread(self, ts: str) -> list[Posted]:
        """Messages posted in the thread of ``ts`` (replies only), in order."""
        return [m for m in self.messages.values() if m.thread_ts == ts and m.ts != ts]

    def all_payload_text(self) -> str:
        """Everything the bot sent to Slack (params of every call, uploaded file contents
        including the members of uploaded .tar.gz/.gz archives), for secret scans."""
        parts = [json.dumps(to_jsonable_python(c.params, fallback=str)) for c in self.calls]
        for body in self.uploads.values():
            parts.append(_decoded(body))
        return "\n".join(parts)

    async def wait_for(self, predicate: Any, timeout_s: float = 20.0) -> None:
        """Wait until ``predicate()`` is true (re-checked whenever a call arrives)."""
        await wait_until(predicate, self.changed, timeout_s, "the fake Slack API to see the expected calls")

    # -- handlers ----------------------------------------------------------------------
    async def _params(self, request: web.Request) -> tuple[dict[str, Any], bytes]:
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "")
        if "json" in ctype:
            params = json.loads(raw or b"{}")
        else:
            params = dict(parse_qsl(raw.decode("utf-8", "replace")))
        for key, value in request.query.items():  # slack_sdk sends `params=` in the query string
            params.setdefault(key, value)
        for key in ("blocks", "file_uploads", "files", "attachments"):
            if isinstance(params.get(key), str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    pass
        return params, raw

    def _record(self, method: str, params: dict[str, Any], raw: bytes, status: int) -> None:
        self.calls.append(Call(method=method, params=params, at=time.monotonic(), raw=raw, status=status))
        self.changed.set()

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, raw = await self._params(request)
        queue = self.failures.get(method)
        if queue:
            status, retry_after = queue.pop(0)
            self._record(method, params, raw, status)
            headers = {"Retry-After": str(retry_after)} if status == 429 and retry_after is not None else {}
            body = {"ok": False, "error": "ratelimited" if status == 429 else "internal_error"}
            return web.json_response(body, status=status, headers=headers)
        self._record(method, params, raw, 200)
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(handler(params))

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def _m_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://fake.slack/", "team": "Fake", "user": "qcc", "team_id": "T0FAKE",
                "user_id": BOT_USER, "bot_id": "B0FAKE"}

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        ts = self._next_ts()
        msg = Posted(channel=p.get("channel", ""), ts=ts, thread_ts=p.get("thread_ts"), text=p.get("text",
                                                                                                   ""),
                     blocks=p.get("blocks") or [])
        msg.versions.append({"text": msg.text, "blocks": msg.blocks})
        self.messages[ts] = msg
        return {"ok": True, "channel": msg.channel, "ts": ts, "message": {"text": msg.text, "ts": ts}}

    def _m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self.messages.get(p.get("ts", ""))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        msg.text, msg.blocks = p.get("text", ""), p.get("blocks") or []
        msg.versions.append({"text": msg.text, "blocks": msg.blocks})
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "text": msg.text}

    def _m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        self.ephemerals.append(p)
        return {"ok": True, "message_ts": self._next_ts()}

    def _m_usergroups_users_list(self, p: dict[str, Any]) -> dict[str, Any]:
        group = p.get("usergroup", "")
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.usergroups[group])}

    def _m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._files):08d}"
        return {"ok": True, "file_id": file_id, "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}"}

    def _m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        self.completed.append(p)
        files = p.get("files") or []
        return {"ok": True, "files": [{"id": f.get("id"), "title": f.get("title")} for f in files]}

    def _m_apps_connections_open(self, p: dict[str, Any]) -> dict[str, Any]:
        if self.socket_url:
            return {"ok": True, "url": self.socket_url}
        return {"ok": False, "error": "not_allowed_token_type"}

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        body = await request.read()
        self.uploads[file_id] = body
        self._record("upload", {"file_id": file_id, "size": len(body)}, b"", 200)
        return web.Response(text=f"OK - {len(body)}")


def _decoded(body: bytes) -> str:
    """Text of an upload; .tar.gz members and .gz payloads are unpacked."""
    if body[:2] == b"\x1f\x8b":
        try:
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
                out = []
                for member in tar.getmembers():
                    f = tar.extractfile(member)
                    if f is not None:
                        out.append(f.read().decode("utf-8", "replace"))
                return "\n".join(out)
        except tarfile.TarError:
            return gzip.decompress(body).decode("utf-8", "replace")
    return body.decode("utf-8", "replace")
