"""``/qcc status``, ``/qcc logs [n]``, ``/qcc audit [n]`` and ``/qcc escalate``: one service call
each, rendered by :mod:`handlers.blocks` and posted in the channel (audit: ephemeral)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bot.bundle import Bundle
from handlers import blocks
from handlers.blockkit import FileOut
from handlers.parsing import SlashRequest
from handlers.runtime import Runtime

DEFAULT_LOG_LINES = 20
DEFAULT_AUDIT = 10


async def show_status(rt: Runtime, req: SlashRequest, env: str) -> None:
    step, containers = await rt.services.diagnosis.status(env)
    await rt.out.post(req.channel, blocks.status(env, step, containers))


async def show_logs(rt: Runtime, req: SlashRequest, env: str, n: int | None) -> None:
    step, summary = await rt.services.diagnosis.logs(env)
    await rt.out.post(req.channel, blocks.logs(env, step, summary, n or DEFAULT_LOG_LINES))


async def show_audit(rt: Runtime, req: SlashRequest, n: int | None) -> None:
    entries = await rt.state.list_audit(n or DEFAULT_AUDIT)
    await rt.out.ephemeral(req.channel, req.user, blocks.audit(entries))


async def escalate(rt: Runtime, req: SlashRequest, env: str) -> None:
    """Gather the escalation archive and upload it into a new thread."""
    parent_ts = await rt.out.post(req.channel, blocks.escalation_started(env, req.user))
    await rt.state.audit(req.user, "escalation_requested", environment=env)
    latest = await rt.state.latest_diagnosis(env)
    diagnosis = latest.diagnosis() if latest else None
    bundle = Bundle.model_validate_json(latest.bundle_json) if latest and latest.bundle_json else None
    with tempfile.TemporaryDirectory(prefix="qcc-escalate-") as tmp:
        result = await rt.escalation.gather(env, diagnosis=diagnosis, bundle=bundle, workdir=Path(tmp))
        await rt.out.upload(req.channel, parent_ts, [FileOut(result.path.name, path=result.path,
                                                             title=f"Escalation bundle ({env})")])
    await rt.out.post(req.channel, blocks.escalation_done(env, result.members, result.notes,
                                                          result.proxy_log_lines), thread_ts=parent_ts)
    await rt.state.audit(req.user, "escalation_uploaded", environment=env, result="ok",
                         detail=f"{result.path.name}; {len(result.notes)} note(s)")
