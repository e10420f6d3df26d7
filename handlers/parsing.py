"""Slash-command text and Slack payloads turned into typed requests (pure, no I/O).

``normalize`` undoes what Slack clients do to typed text (HTML entities ``&amp; &lt; &gt;``,
smart quotes, non-breaking and other Unicode spaces); ``parse_command`` reads
``/qcc <subcommand> [args]``; ``resolve_environment`` picks the environment for a channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.errors import BadCommand, NotAuthorized

SUBCOMMANDS = ("diagnose", "status", "logs", "escalate", "audit", "watch", "help")
USAGE = (
    "Usage: `/qcc diagnose [env]` · `/qcc status [env]` · `/qcc logs [n] [env]` · "
    "`/qcc escalate [env]` · `/qcc audit [n]` · `/qcc watch [env] [minutes]` · `/qcc watch stop [env]` · "
    "`/qcc help [env]`"
)
MAX_LOG_LINES = 200
MAX_WATCH_MIN = 1440
MAX_AUDIT = 50
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
                         "\u00ab": '"', "\u00bb": '"'})
_SPACES = re.compile(r"[\s\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000\ufeff]+")


def normalize(text: str) -> str:
    """Plain, single-spaced text: entities decoded, smart quotes straightened, spaces unified."""
    text = (text or "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return _SPACES.sub(" ", text.translate(_QUOTES)).strip()


@dataclass(frozen=True)
class QccCommand:
    """A parsed ``/qcc`` invocation."""

    sub: str
    env: str | None = None
    n: int | None = None  # logs: lines · audit: rows · watch: minutes
    stop: bool = False  # `watch stop`


def parse_command(text: str) -> QccCommand:
    """Parse normalized text. Empty text is ``help``. Raises :class:`BadCommand` with the usage."""
    tokens = [t.strip("'\"`") for t in normalize(text).split(" ") if t.strip("'\"`")]
    if not tokens:
        return QccCommand("help")
    sub, args = tokens[0].lower(), tokens[1:]
    if sub not in SUBCOMMANDS:
        raise BadCommand(f"unknown command {ascii(sub[:30])}. {USAGE}")  # look-alikes show escaped
    n: int | None = None
    env: str | None = None
    stop = False
    if sub == "watch" and args and args[0].lower() == "stop":
        stop, args = True, args[1:]
    for arg in args:
        if arg.isascii() and arg.isdigit() and sub in ("logs", "audit", "watch") and n is None and not stop:
            n = int(arg)
        elif env is None and sub != "audit":
            env = arg
        else:
            raise BadCommand(f"unexpected argument {ascii(arg[:30])} for `{sub}`. {USAGE}")
    if n is not None:
        limit = {"logs": MAX_LOG_LINES, "watch": MAX_WATCH_MIN}.get(sub, MAX_AUDIT)
        if not 1 <= n <= limit:
            raise BadCommand(f"`{sub} n` takes n between 1 and {limit}")
    return QccCommand(sub, env, n, stop)


def check_channel(settings: Settings, channel: str) -> None:
    """Raise :class:`NotAuthorized` when ``/qcc`` is not enabled in ``channel``."""
    allowed = settings.slack.allowed_channels
    if allowed and channel not in allowed:
        raise NotAuthorized("/qcc is not enabled in this channel; "
                            "ask an admin to add it to slack.allowed_channels")


def resolve_environment(settings: Settings, channel: str, explicit: str | None) -> str:
    """The environment to act on: explicit, else the channel's, else the default, else the only one.

    Raises :class:`bot.errors.UnknownEnvironment`, :class:`NotAuthorized` (the environment
    is restricted to other channels) or :class:`BadCommand` (ambiguous).
    """
    name = explicit or settings.slack.channel_environments.get(channel) or settings.slack.default_environment
    if name is None and len(settings.environments) == 1:
        name = next(iter(settings.environments))
    if name is None:
        known = ", ".join(sorted(settings.environments)) or "none configured"
        raise BadCommand(f"name an environment: {known}")
    env = settings.environment(name)
    if env.channels and channel not in env.channels:
        raise NotAuthorized(f"environment {name!r} can only be targeted from its own channel(s)")
    return name


@dataclass(frozen=True)
class SlashRequest:
    """The fields of a slash-command payload the bot uses."""

    user: str
    channel: str
    text: str
    team: str | None = None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> SlashRequest:
        return cls(user=str(payload.get("user_id", "")), channel=str(payload.get("channel_id", "")),
                   text=str(payload.get("text", "")), team=payload.get("team_id"))


@dataclass(frozen=True)
class ActionRequest:
    """A button click (``block_actions``): who, where, which message, and the button's value."""

    user: str
    channel: str
    message_ts: str | None
    thread_ts: str | None
    action_id: str
    value: str

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ActionRequest:
        action = (body.get("actions") or [{}])[0]
        message = body.get("message") or {}
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
        msg_ts = message.get("ts") or container.get("message_ts")
        return cls(user=str((body.get("user") or {}).get("id", "")), channel=str(channel), message_ts=msg_ts,
                   thread_ts=message.get("thread_ts") or container.get("thread_ts") or msg_ts,
                   action_id=str(action.get("action_id", "")), value=str(action.get("value", ""))[:2000])
