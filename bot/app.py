"""The composition root: build every service once, open and close them in one lifespan.

Importing this module opens nothing and reads no environment. ``main()``-style callers do::

    settings = load_settings(path)
    async with lifespan(settings, with_state=True) as services:
        recorded = await services.incidents.diagnose("test", actor="cli:ana", origin=Origin(kind="cli"))

Every front end (CLI, Slack, webhook triggers) gets the same typed :class:`Services`.
Tests inject transports (``transports=FakeTransportProvider(...)``) or a state URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.config import Settings, known_secrets
from bot.fixes import FixRunner
from bot.incidents import IncidentService
from bot.metrics import Metrics
from bot.models import StepResult
from bot.runbook.loader import load_runbook
from bot.runbook.models import Runbook
from bot.service import DiagnosisService
from bot.state.store import StateStore, StoreObserver
from bot.transports.base import TransportProvider

MEMORY_STATE_URL = "sqlite+aiosqlite:///:memory:"


@dataclass
class Services:
    """Everything a front end (CLI, Slack, triggers) needs, built once by :func:`lifespan`.

    ``incidents`` is the diagnose -> record -> propose use case; ``fixes`` runs approved
    fixes; ``diagnosis`` runs steps without recording them (status, logs, re-checks);
    ``metrics`` are this instance's Prometheus series, fed by the store and the steps.
    """

    settings: Settings
    runbook: Runbook
    transports: TransportProvider
    diagnosis: DiagnosisService
    secrets: list[str]
    state: StateStore
    fixes: FixRunner
    incidents: IncidentService
    metrics: Metrics


@asynccontextmanager
async def lifespan(settings: Settings, *, transports: TransportProvider | None = None,
                   with_state: bool = False, state_url: str | None = None, metrics: Metrics | None = None,
                   observer: StoreObserver | None = None,
                   on_step: Callable[[StepResult], None] | None = None) -> AsyncIterator[Services]:
    """Build :class:`Services` for ``settings`` and close everything on exit.

    ``transports`` defaults to real SSH/MySQL transports. The state store is always open:
    at ``state_url`` (default ``settings.state_url``) when ``with_state`` or ``state_url`` is
    given, else in memory (nothing outlives the call; for tests and throw-away runs). It is
    owned by ``settings.owner`` with its ``lease_s``. ``metrics`` (default: new) hears about
    finished runs, approval decisions and steps, unless ``observer``/``on_step`` replace those
    hooks (tests). Raises :class:`bot.errors.RunbookError` for an invalid runbook file,
    :class:`bot.errors.ConfigError` when the state store cannot be opened.
    """
    runbook = load_runbook(settings.runbook)
    if transports is None:
        from bot.transports.provider import SSHTransportProvider

        transports = SSHTransportProvider(settings)
    secrets = known_secrets(settings)
    metrics = metrics or Metrics()
    url = state_url or (settings.state_url if with_state else MEMORY_STATE_URL)
    state = StateStore(url, owner=settings.owner, lease_s=settings.lease_s, observer=observer or metrics)
    try:
        diagnosis = DiagnosisService(settings, runbook, transports, secrets=secrets,
                                     on_step=on_step or metrics.step)
        await state.open()
        try:
            yield Services(settings=settings, runbook=runbook, transports=transports, diagnosis=diagnosis,
                           secrets=secrets, state=state, fixes=FixRunner(settings, diagnosis, transports, state),
                           incidents=IncidentService(settings, diagnosis, state), metrics=metrics)
        finally:
            await state.aclose()
    finally:
        await transports.aclose()
