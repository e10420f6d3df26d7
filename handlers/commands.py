"""The ``/qcc`` slash command: ack first, parse, route to one flow in the task registry.

Parsing and channel/environment checks are pure and answered in the ``ack()`` itself (an
ephemeral response): usage, help, refusals in channels where ``/qcc`` is not enabled,
unknown environments. Everything that touches a host, the database or Slack runs after
``ack()`` in the background task registry (drained on shutdown); its errors are reported
ephemerally to the requester by :func:`handlers.errors.report`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Coroutine
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.errors import UserError
from handlers import blocks
from handlers.diagnose import run_diagnosis
from handlers.errors import Target, describe, reporter
from handlers.info import escalate, show_audit, show_logs, show_status
from handlers.parsing import QccCommand, SlashRequest, check_channel, parse_command, resolve_environment
from handlers.runtime import Runtime


def plan(rt: Runtime, req: SlashRequest) -> tuple[QccCommand, str | None]:
    """Parse and check a request without I/O. Raises :class:`UserError` subclasses."""
    check_channel(rt.settings, req.channel)
    cmd = parse_command(req.text)
    if cmd.sub == "audit":
        return cmd, None
    if cmd.sub == "help":
        return cmd, cmd.env if cmd.env and cmd.env in rt.settings.environments else None
    return cmd, resolve_environment(rt.settings, req.channel, cmd.env)


def flow(rt: Runtime, req: SlashRequest, cmd: QccCommand, env: str | None) -> Coroutine[Any, Any, None]:
    """The background coroutine for a command that needs I/O."""
    if cmd.sub == "diagnose":
        return run_diagnosis(rt, req, env or "")
    if cmd.sub == "status":
        return show_status(rt, req, env or "")
    if cmd.sub == "logs":
        return show_logs(rt, req, env or "", cmd.n)
    if cmd.sub == "escalate":
        return escalate(rt, req, env or "")
    if cmd.sub == "watch":
        return watch(rt, req, env or "", cmd)
    return show_audit(rt, req, cmd.n)


def register(app: AsyncApp, rt: Runtime) -> None:
    """Install the ``/qcc`` listener."""

    @app.command("/qcc")
    async def on_qcc(ack: Any, command: dict[str, Any]) -> None:
        req = SlashRequest.from_payload(command)
        # A secret pasted by mistake is redacted before anything reads the text: refusals echo
        # (cut) pieces of it, and the audit row keeps it.
        req = dataclasses.replace(req, text=rt.out.scrub(req.text))
        try:
            cmd, env = plan(rt, req)
        except UserError as exc:
            await ack(**rt.out.scrub(describe(exc)[0].ack_kwargs()))
            return
        if cmd.sub == "help":
            await ack(**rt.out.scrub(blocks.help_text(rt.settings, env).ack_kwargs()))
            return
        await ack()
        rt.tasks.spawn(run(rt, req, cmd, env), name=f"qcc-{cmd.sub}",
                       on_error=reporter(rt, Target(channel=req.channel, user=req.user)))


async def watch(rt: Runtime, req: SlashRequest, env: str, cmd: QccCommand) -> None:
    """``/qcc watch [env] [minutes]`` starts the post-deploy watch in this channel;
    ``/qcc watch stop [env]`` stops it (any replica's). Raises
    :class:`bot.state.triggerstore.WatchAlreadyRunning` (shown to the requester)."""
    if rt.watcher is None:
        raise UserError("the post-deploy watch is not available in this bot")
    if cmd.stop:
        if await rt.watcher.stop(env, req.user) is None:
            await rt.out.ephemeral(req.channel, req.user, blocks.simple(f"No watch of `{env}` is running."))
        return
    await rt.watcher.start(env, actor=req.user, channel=req.channel, minutes=float(cmd.n) if cmd.n else None,
                           origin="started by hand")


async def run(rt: Runtime, req: SlashRequest, cmd: QccCommand, env: str | None) -> None:
    """Audit the command, then run its flow."""
    await rt.state.audit(req.user, f"command_{cmd.sub}", environment=env, detail=req.text[:200])
    await flow(rt, req, cmd, env)
