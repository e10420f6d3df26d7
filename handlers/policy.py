"""Who may decide an approval, checked at click time (never trusted from the payload).

An approver is listed by Slack user id in ``environments.<env>.approval.approvers`` or is a
member of ``approver_usergroup`` (asked with ``usergroups.users.list``; any API error
refuses: fail closed). With ``allow_self_approval`` false (production's default) the
requester cannot approve their own request. No approvers configured means nobody can
approve. The requester may always withdraw (reject) their own request.
"""

from __future__ import annotations

from bot.errors import NotAuthorized, SlackError
from bot.state.records import Approval
from handlers.runtime import Runtime


async def _is_approver(rt: Runtime, env: str, user: str) -> bool:
    policy = rt.settings.environment(env).approval
    if user in policy.approvers:
        return True
    if policy.approver_usergroup:
        try:
            members = await rt.out.usergroup_members(policy.approver_usergroup)
        except SlackError as exc:
            raise NotAuthorized("could not verify approver group membership with Slack; "
                                "refusing (fail closed)") from exc
        return user in members
    return False


async def check_may_approve(rt: Runtime, approval: Approval, user: str) -> None:
    """Raise :class:`NotAuthorized` unless ``user`` may approve ``approval`` now."""
    policy = rt.settings.environment(approval.environment).approval
    if user == approval.requested_by and not policy.allow_self_approval:
        raise NotAuthorized(f"you requested this fix; in {approval.environment} someone else must approve it")
    if not policy.approvers and not policy.approver_usergroup:
        raise NotAuthorized(f"no approvers are configured for {approval.environment}; "
                            "nobody can approve fixes there")
    if not await _is_approver(rt, approval.environment, user):
        raise NotAuthorized(f"you are not an approver for {approval.environment}")


async def check_may_reject(rt: Runtime, approval: Approval, user: str) -> None:
    """Approvers may reject; the requester may withdraw their own request."""
    if user == approval.requested_by:
        return
    if not await _is_approver(rt, approval.environment, user):
        raise NotAuthorized(f"only an approver for {approval.environment} or the requester can reject this")
