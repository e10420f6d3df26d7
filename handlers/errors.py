"""The one error handler: known errors become a short ephemeral, unknown ones a correlation id.

Errors that are not the user's own (transport, Slack, unexpected) are logged with a reference
id that the message repeats, so a report in Slack can be found in the logs.

``register(app, rt)`` installs the single ``@app.error`` (errors raised by a listener before
its work is handed off). The work after ``ack()`` runs in the task registry, whose failures
go through the same :func:`report` via :func:`reporter` — ephemeral to the user who asked,
or visibly in the thread for a fix. Nothing swallows an exception silently.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.errors import ApprovalAlreadyHandled, BotError, SlackError, UserError
from handlers import blocks
from handlers.blockkit import Message, esc
from handlers.runtime import Runtime

log = logging.getLogger("qcc.slack")
USER_ID_RE = re.compile(r"^[UW][A-Z0-9]{2,30}$")


def new_ref() -> str:
    """A correlation id for one reported error: logged as ``[ref <id>]`` and shown to the user."""
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Target:
    """Where to tell someone about an error: ephemeral to ``user`` or into ``thread_ts``."""

    channel: str | None
    user: str | None = None
    thread_ts: str | None = None
    in_thread: bool = False  # post visibly in the thread instead of an ephemeral

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Target:
        channel = body.get("channel_id") or (body.get("channel") or {}).get("id") \
            or (body.get("container") or {}).get("channel_id")
        user = body.get("user_id") or (body.get("user") or {}).get("id")
        message = body.get("message") or {}
        return cls(channel=channel, user=user, thread_ts=message.get("thread_ts") or message.get("ts"))


def describe(exc: BaseException) -> tuple[Message, str | None]:
    """The message for ``exc`` and, for unexpected errors, the correlation id that was logged."""
    if isinstance(exc, ApprovalAlreadyHandled):
        who = exc.handled_by if exc.handled_by and USER_ID_RE.match(exc.handled_by) else None
        text = esc(str(exc))
        if who and text.startswith("already handled"):
            text = text.replace("already handled", f"Already handled by <@{who}>", 1)
        elif who:
            text += f" (requested by <@{who}>)"
        return blocks.simple(f"✋ {text}"), None
    if isinstance(exc, UserError):
        return blocks.simple(f"✋ {esc(str(exc))}"), None
    if isinstance(exc, BotError):  # transport and runbook errors carry secret-free, one-line messages
        return blocks.error(str(exc)), None
    cid = new_ref()
    log.error("unexpected error [%s]", cid, exc_info=exc)
    return blocks.error("unexpected error", cid), cid


async def report(rt: Runtime, exc: BaseException, target: Target) -> None:
    """Tell the user about ``exc``; logs and gives up when Slack itself cannot be reached.

    Every error that is not the user's own carries a correlation id: logged as ``[ref <id>]``
    and shown in the message. When Slack cannot take the message either, the ERROR log line
    (with the id, the original error and where it was meant to go) is what remains.
    """
    msg, cid = describe(exc)
    if not isinstance(exc, UserError):
        if cid is None:  # a known (transport) error: its one-line message is shown, plus the id
            cid = new_ref()
            msg = blocks.error(f"{exc} (ref {cid})")
        log.warning("reporting %s to %s [ref %s]: %s", type(exc).__name__, target.channel, cid, exc)
    if target.channel is None:
        return
    try:
        if target.in_thread or target.user is None:
            await rt.out.post(target.channel, msg, thread_ts=target.thread_ts)
        else:
            await rt.out.ephemeral(target.channel, target.user, msg, thread_ts=target.thread_ts)
    except SlackError as slack_exc:
        log.error("could not report an error to Slack in %s [ref %s]: %s; the error was %s: %s",
                  target.channel, cid or new_ref(), slack_exc, type(exc).__name__, exc)


def reporter(rt: Runtime, target: Target) -> Callable[[BaseException], Awaitable[None]]:
    """An ``on_error`` hook for :meth:`handlers.tasks.TaskRegistry.spawn` reporting to ``target``."""

    async def hook(exc: BaseException) -> None:
        await report(rt, exc, target)

    return hook


def register(app: AsyncApp, rt: Runtime) -> None:
    """Install the app's single error handler."""

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        await report(rt, error, Target.from_body(body or {}))
