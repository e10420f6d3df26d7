"""Every call the bot makes to Slack's Web API, in one place, with redaction on the way out.

:class:`SlackOut` posts, updates, sends ephemerals and uploads files. Before anything
leaves, every string of the payload (text, blocks, file contents, titles) goes through
:func:`bot.diagnosis.redact.redact_text` with the configured secrets, so no configured
secret can reach Slack whatever a renderer or a log line contains. Slack API failures
(after the client's retry handlers) become :class:`bot.errors.SlackError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.diagnosis.redact import redact_text
from bot.errors import SlackError
from handlers.blockkit import FileOut, Message

T = TypeVar("T")
UPLOAD_BLOCK = 256 * 1024  # bytes read from disk and sent per write of a streamed upload


class SlackOut:
    """The bot's outgoing Slack calls (one :class:`AsyncWebClient`)."""

    def __init__(self, client: AsyncWebClient, secrets: list[str]) -> None:
        self.client = client
        self.secrets = secrets

    def scrub(self, value: Any) -> Any:
        """``value`` with every string redacted (dicts and lists walked)."""
        if isinstance(value, str):
            return redact_text(value, self.secrets)[0]
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def _payload(self, msg: Message) -> dict[str, Any]:
        return {"text": self.scrub(msg.text), "blocks": self.scrub([b.to_dict() for b in msg.blocks])}

    async def call(self, method: str, call: Awaitable[T]) -> T:
        """Await a Web API ``call``, translating failures into :class:`SlackError`."""
        try:
            return await call
        except SlackApiError as exc:
            resp = exc.response
            data = resp.data if resp is not None else None
            if isinstance(data, dict):
                error = data.get("error")
            else:
                error = f"HTTP {resp.status_code}" if resp is not None else None
            raise SlackError(f"Slack {method} failed: {error or 'error'}", host="slack",
                             detail=error) from exc
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            base = getattr(self.client, "base_url", "the Slack Web API")
            reason = self.scrub(str(exc).splitlines()[0][:200]) if str(exc) else ""
            raise SlackError(f"Slack {method} failed: cannot reach {base} ({type(exc).__name__}"
                             + (f": {reason})" if reason else ")"), host="slack") from exc

    async def post(self, channel: str, msg: Message, *, thread_ts: str | None = None) -> str:
        """Post ``msg`` (then its files, in the same thread); returns the message ts."""
        resp = await self.call("chat.postMessage", self.client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False,
            **self._payload(msg)))
        ts = str(resp["ts"])
        if msg.files:
            await self.upload(channel, thread_ts or ts, msg.files)
        return ts

    async def update(self, channel: str, ts: str, msg: Message) -> None:
        """Replace the message ``ts`` (files of ``msg`` are posted in its thread)."""
        await self.call("chat.update", self.client.chat_update(channel=channel, ts=ts, **self._payload(msg)))
        if msg.files:
            await self.upload(channel, ts, msg.files)

    async def ephemeral(self, channel: str, user: str, msg: Message, *, thread_ts: str | None = None) -> None:
        await self.call("chat.postEphemeral", self.client.chat_postEphemeral(
            channel=channel, user=user, thread_ts=thread_ts, **self._payload(msg)))

    async def upload(self, channel: str, thread_ts: str | None, files: list[FileOut],
                     comment: str | None = None) -> None:
        """Upload files into a thread, streamed (contents redacted; paths are expected to hold
        already-redacted data, e.g. the escalation archive).

        Slack's external upload, as ``files_upload_v2`` does it but without reading a file
        into memory: ``files.getUploadURLExternal`` (name and byte length) per file, the bytes
        POSTed to the returned URL from disk in :data:`UPLOAD_BLOCK` blocks, then one
        ``files.completeUploadExternal`` sharing them all into ``channel``/``thread_ts``.
        Memory stays bounded whatever the archive size. Raises :class:`SlackError`.
        """
        done: list[dict[str, Any]] = []
        for f in files:
            data: bytes | None = None
            if f.path is not None:
                length = (await asyncio.to_thread(Path(f.path).stat)).st_size
            else:
                data = self.scrub(f.content or "").encode("utf-8")
                length = len(data)
            resp = await self.call("files.getUploadURLExternal", self.client.files_getUploadURLExternal(
                filename=f.name, length=length))
            await self._send_bytes(str(resp["upload_url"]), f, data, length)
            done.append({"id": str(resp["file_id"]), "title": self.scrub(f.title or f.name)})
        await self.call("files.completeUploadExternal", self.client.files_completeUploadExternal(
            files=done, channel_id=channel, thread_ts=thread_ts,
            initial_comment=self.scrub(comment) if comment else None))

    async def _send_bytes(self, url: str, f: FileOut, data: bytes | None, length: int) -> None:
        """POST one file's bytes to its upload URL (from disk in blocks when ``f.path`` is set)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.client.timeout,
                                        sock_read=self.client.timeout)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}

        async def blocks(path: Path) -> AsyncIterator[bytes]:
            with path.open("rb") as fh:
                while block := await asyncio.to_thread(fh.read, UPLOAD_BLOCK):
                    yield block

        body: bytes | AsyncIterator[bytes] = data if data is not None else blocks(Path(str(f.path)))
        ssl = self.client.ssl if self.client.ssl is not None else True
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, http.post(
                    url, data=body, headers=headers, ssl=ssl, proxy=self.client.proxy) as resp:
                if resp.status != 200:
                    raise SlackError(f"Slack file upload of {f.name} failed: HTTP {resp.status}", host="slack",
                                     detail=f"HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SlackError(f"Slack file upload of {f.name} failed: cannot reach the upload URL "
                             f"({type(exc).__name__})", host="slack") from exc

    async def usergroup_members(self, usergroup: str) -> set[str]:
        """User ids of a user group (``usergroups.users.list``). Raises :class:`SlackError`."""
        resp = await self.call("usergroups.users.list",
                               self.client.usergroups_users_list(usergroup=usergroup))
        return {str(u) for u in (resp.get("users") or [])}
