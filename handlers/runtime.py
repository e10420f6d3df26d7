"""What Slack handlers share: the core :class:`~bot.app.Services` plus the Slack-side pieces.

Built once by :func:`handlers.server.build_runtime` and passed to every ``register(app, rt)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.app import Services
from bot.config import Settings
from bot.escalation import EscalationCollector
from bot.fixes import FixRunner
from bot.incidents import IncidentService
from bot.metrics import Metrics
from bot.state.store import StateStore
from handlers.slackio import SlackOut
from handlers.tasks import TaskRegistry


@dataclass
class Runtime:
    """Services (incidents, diagnosis, state, fixes) + Slack output + the background task registry.

    ``progress_interval_s`` is the minimum time between two updates of a progress message
    (Slack's chat.update is rate limited); updates in between are coalesced.
    ``drain_timeout_s`` is how long shutdown waits for running work (``shutdown_grace_s``).
    ``metrics`` are this instance's Prometheus series (``/metrics``).
    """

    services: Services
    out: SlackOut
    tasks: TaskRegistry
    escalation: EscalationCollector
    progress_interval_s: float = 1.0
    drain_timeout_s: float = 60.0
    metrics: Metrics = field(default_factory=Metrics)
    watcher: Any = None  # handlers.watching.Watcher, set by handlers.server.running_bot

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def state(self) -> StateStore:
        return self.services.state

    @property
    def fixes(self) -> FixRunner:
        return self.services.fixes

    @property
    def incidents(self) -> IncidentService:
        return self.services.incidents
