"""Persistent state: incidents, runs, step results, approvals and the append-only audit log.

See :mod:`bot.state.store` (``StateStore``) and :mod:`bot.state.models` (tables, status enums).
"""

from bot.state.models import ApprovalStatus, RunKind, RunStatus

__all__ = ["ApprovalStatus", "RunKind", "RunStatus"]
