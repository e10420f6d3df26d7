"""Drive the bot like Slack does: properly signed HTTP requests to ``/slack/events``.

:class:`SlackSim` sends slash-command form bodies and ``block_actions`` payloads, signed as
Slack signs them (``v0=`` HMAC-SHA256 of ``v0:<timestamp>:<body>`` with the signing secret,
the same computation as ``slack_sdk.signature.SignatureVerifier``), over real HTTP to the
bot served on a loopback port.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from tests.fakes.slack_api import FakeSlackAPI


@dataclass
class Reply:
    status: int
    body: str
    received_at: float

    def json(self) -> dict[str, Any]:
        return json.loads(self.body) if self.body.startswith("{") else {}


class SlackSim:
    """Plays Slack towards the bot at ``url`` (``http://127.0.0.1:<port>/slack/events``)."""

    def __init__(self, url: str, signing_secret: str, fake: FakeSlackAPI) -> None:
        self.url = url
        self.verifier = SignatureVerifier(signing_secret)
        self.fake = fake
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        await self.http.close()

    def headers(self, body: str, *, timestamp: int | None = None, signature: str | None = None,
                retry_num: int | None = None) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
                   "X-Slack-Signature": signature or self.verifier.generate_signature(timestamp=ts,
                                                                                      body=body)}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return headers

    async def send(self, body: str, **kwargs: Any) -> Reply:
        async with self.http.post(self.url, data=body.encode(), headers=self.headers(body, **kwargs)) as resp:
            text = await resp.text()
            return Reply(resp.status, text, time.monotonic())

    @staticmethod
    def slash_body(text: str, *, user: str = "UREQUESTER", channel: str = "CINC") -> str:
        return urlencode({"token": "legacy", "team_id": "T0FAKE", "team_domain": "fake",
                          "channel_id": channel,
                          "channel_name": "incident", "user_id": user, "user_name": user.lower(),
                          "command": "/qcc", "text": text, "api_app_id": "A0FAKE",
                          "response_url": "http://127.0.0.1:9/commands/unused", "trigger_id": "1.2.3"})

    async def slash(self, text: str, *, user: str = "UREQUESTER", channel: str = "CINC",
                    **kwargs: Any) -> Reply:
        return await self.send(self.slash_body(text, user=user, channel=channel), **kwargs)

    @staticmethod
    def action_body(action_id: str, value: str, *, user: str, channel: str, message_ts: str,
                    thread_ts: str | None) -> str:
        message: dict[str, Any] = {"type": "message", "ts": message_ts, "text": "", "user": "UBOT00001"}
        if thread_ts:
            message["thread_ts"] = thread_ts
        payload = {"type": "block_actions", "team": {"id": "T0FAKE", "domain": "fake"},
                   "user": {"id": user, "username": user.lower(),
                            "team_id": "T0FAKE"}, "api_app_id": "A0FAKE",
                   "token": "legacy", "trigger_id": "1.2.3",
                   "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                                 "is_ephemeral": False, "thread_ts": thread_ts},
                   "channel": {"id": channel, "name": "incident"}, "message": message,
                   "response_url": "http://127.0.0.1:9/actions/unused",
                   "actions": [{"type": "button", "action_id": action_id, "block_id": "b1", "value": value,
                                "action_ts": f"{time.time():.6f}", "text": {"type": "plain_text",
                                                                            "text": "x"}}]}
        return urlencode({"payload": json.dumps(payload)})

    async def click(self, action_id: str, value: str, *, user: str, channel: str = "CINC", message_ts: str,
                    thread_ts: str | None = None, **kwargs: Any) -> Reply:
        return await self.send(self.action_body(action_id, value, user=user, channel=channel,
                                                message_ts=message_ts,
                                                thread_ts=thread_ts), **kwargs)


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every button in ``blocks`` (section accessories and actions blocks)."""
    out: list[dict[str, Any]] = []
    for b in blocks:
        acc = b.get("accessory")
        if isinstance(acc, dict) and acc.get("type") == "button":
            out.append(acc)
        for el in b.get("elements") or []:
            if isinstance(el, dict) and el.get("type") == "button":
                out.append(el)
    return out


def text_of(blocks: list[dict[str, Any]]) -> str:
    """All visible text of ``blocks`` (for assertions)."""
    return json.dumps(blocks, ensure_ascii=False).replace("\\n", "\n")


async def run_diagnose(bot: Any, text: str = "diagnose test", *, user: str = "UREQUESTER",
                       channel: str = "CINC") -> tuple[Any, list[Any]]:
    """Send ``/qcc <text>``, wait for the background work, return (parent message, thread replies)."""
    before = set(bot.fake.messages)
    reply = await bot.sim.slash(text, user=user, channel=channel)
    assert reply.status == 200, reply
    await bot.idle()
    parents = [m for ts, m in bot.fake.messages.items() if ts not in before and m.thread_ts is None]
    assert len(parents) == 1, [m.text for m in parents]
    return parents[0], bot.fake.thread(parents[0].ts)


def report_of(thread: list[Any]) -> Any:
    """The diagnosis report in a thread (the message with a header block)."""
    return next(m for m in thread if any(b.get("type") == "header" and "Diagnosis" in json.dumps(b)
                                         for b in m.blocks))


def fix_button(report: Any, action: str) -> dict[str, Any]:
    """The Fix button of ``report`` whose section names ``action`` (e.g. ``health_check_model``)."""
    for b in report.blocks:
        acc = b.get("accessory") or {}
        if acc.get("type") == "button" and action in json.dumps(b):
            return acc
    raise AssertionError(f"no fix button for {action!r}")


async def open_approval(bot: Any, action: str = "health_check_model", *, requester: str = "UREQUESTER",
                        channel: str = "CINC", env: str = "test") -> tuple[Any, Any]:
    """Diagnose ``env``, click the Fix button for ``action``; returns (parent message, approval card)."""
    parent, thread = await run_diagnose(bot, f"diagnose {env}", channel=channel)
    report = report_of(thread)
    button = fix_button(report, action)
    reply = await bot.sim.click(button["action_id"], button["value"], user=requester, channel=channel,
                                message_ts=report.ts, thread_ts=parent.ts)
    assert reply.status == 200
    await bot.idle()
    cards = [m for m in bot.fake.thread(parent.ts) if "Approval" in json.dumps(m.blocks)]
    assert len(cards) == 1, [m.text for m in bot.fake.thread(parent.ts)]
    return parent, cards[0]


def approve_value(card: Any) -> str:
    """The approval id carried by the card's Approve button."""
    return next(b["value"] for b in buttons(card.blocks) if b["action_id"] == "qcc_approve")
