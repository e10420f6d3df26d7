"""Fix, Approve and Reject buttons. Each button carries an opaque id; the server holds the state.

* Fix (``qcc_fix_<n>``, value = proposal id) opens an approval card in the thread.
* Approve (``qcc_approve``, value = approval id): re-check who may approve, then one atomic
  ``pending -> approved``; the winner replaces the card's buttons with the decision and
  spawns the fix (``FixRunner.execute``: ``approved -> running -> succeeded|failed``), then
  posts before/after in the thread. Every other click gets an ephemeral reason.
* Reject (``qcc_reject``): ``pending -> rejected`` by an approver or the requester.

Listeners ``ack()`` first and hand the work to the task registry; a refusal is reported
ephemerally to the clicker (:func:`handlers.errors.report`), a failed fix in the thread.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.errors import ApprovalExpired, NotAuthorized
from bot.state.models import ApprovalStatus
from bot.state.records import Approval
from handlers import blocks
from handlers.errors import Target, reporter
from handlers.parsing import ActionRequest
from handlers.policy import check_may_approve, check_may_reject
from handlers.runtime import Runtime


async def refresh_card(rt: Runtime, approval: Approval) -> None:
    """Redraw an approval card in its thread to show the approval's current state (no-op without a card)."""
    if approval.channel and approval.card_ts:
        env = rt.settings.environment(approval.environment)
        await rt.out.update(approval.channel, approval.card_ts,
                            blocks.approval_card(approval, env.approval, production=env.production))


async def request_fix(rt: Runtime, req: ActionRequest) -> None:
    """Open a pending approval for the clicked proposal and post its card in the thread."""
    proposal = await rt.state.get_proposal(req.value)
    env = rt.settings.environment(proposal.environment)
    approval = await rt.state.request_approval(proposal.id, req.user, expiry_s=env.approval.expiry_s,
                                               channel=req.channel, thread_ts=req.thread_ts)
    card_ts = await rt.out.post(req.channel, blocks.approval_card(approval, env.approval,
                                                                  production=env.production),
                                thread_ts=req.thread_ts)
    await rt.state.set_card(approval.id, card_ts)


async def decide(rt: Runtime, req: ActionRequest, approve: bool) -> Approval:
    """Check policy, then move the approval atomically; raises the reason when refused."""
    approval = await rt.state.get_approval(req.value)
    try:
        if approve:
            await check_may_approve(rt, approval, req.user)
        else:
            await check_may_reject(rt, approval, req.user)
    except NotAuthorized as exc:
        await rt.state.audit(req.user, "approval_refused", environment=approval.environment,
                             subject=approval.id,
                             result="denied", detail=str(exc))
        raise
    target = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
    try:
        decided = await rt.state.transition(approval.id, ApprovalStatus.PENDING, target, actor=req.user)
    except ApprovalExpired:
        await refresh_card(rt, await rt.state.get_approval(approval.id))
        raise
    await refresh_card(rt, decided)
    return decided


async def run_fix(rt: Runtime, approval: Approval, user: str) -> None:
    """Execute the approved fix once and post the outcome in the thread."""
    outcome = await rt.fixes.execute(approval.id, actor=user)
    await rt.out.post(approval.channel or "", blocks.fix_result(outcome), thread_ts=approval.thread_ts)
    await refresh_card(rt, await rt.state.get_approval(approval.id))


def register(app: AsyncApp, rt: Runtime) -> None:
    """Install the button listeners."""

    @app.action(re.compile(r"^qcc_fix_\d+$"))
    async def on_fix(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        req = ActionRequest.from_body(body)
        rt.tasks.spawn(request_fix(rt, req), name="fix-request", on_error=reporter(rt, _clicker(req)))

    @app.action("qcc_approve")
    async def on_approve(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        req = ActionRequest.from_body(body)
        rt.tasks.spawn(approve(rt, req), name="approve", on_error=reporter(rt, _clicker(req)))

    @app.action("qcc_reject")
    async def on_reject(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        req = ActionRequest.from_body(body)
        rt.tasks.spawn(decide(rt, req, approve=False), name="reject", on_error=reporter(rt, _clicker(req)))


def _clicker(req: ActionRequest) -> Target:
    return Target(channel=req.channel, user=req.user, thread_ts=req.thread_ts)


async def approve(rt: Runtime, req: ActionRequest) -> None:
    """Decide (refusals raise to the clicker), then run the fix as its own task reporting in the thread."""
    approval = await decide(rt, req, approve=True)
    target = Target(channel=approval.channel, thread_ts=approval.thread_ts, in_thread=True)
    rt.tasks.spawn(run_fix(rt, approval, req.user), name=f"fix-{approval.id[:8]}", on_error=reporter(rt,
                                                                                                     target))
