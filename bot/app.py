"""The composition root: build every service once, open and close them in one lifespan.

Importing this module opens nothing and reads no environment. ``main()``-style callers do::

    settings = load_settings(path)
    async with lifespan(settings) as services:
        run = await services.diagnosis.diagnose("test")

Tests inject transports (``transports=FakeTransportProvider(...)``) or a state URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings, known_secrets
from bot.models import StepResult
from bot.runbook.loader import load_runbook
from bot.runbook.models import Runbook
from bot.service import DiagnosisService
from bot.transports.base import TransportProvider


@dataclass
class Services:
    """Everything a front end (CLI or Slack) needs, built once.

    ``state`` (the SQLAlchemy store) and ``fixes`` (the approved-fix runner) are None
    when the front end does not need them (the CLI's diagnose/analyze).
    """

    settings: Settings
    runbook: Runbook
    transports: TransportProvider
    diagnosis: DiagnosisService
    secrets: list[str]
    state: Any = None
    fixes: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def lifespan(settings: Settings, *, transports: TransportProvider | None = None,
                   with_state: bool = False, state_url: str | None = None, observer: Any = None,
                   on_step: Callable[[StepResult], None] | None = None) -> AsyncIterator[Services]:
    """Build :class:`Services` for ``settings`` and close everything on exit.

    ``transports`` defaults to real SSH/MySQL transports. ``with_state`` opens the state
    store at ``state_url`` (default ``settings.state_url``), owned by ``settings.owner`` with
    its ``lease_s``, and the fix runner. ``observer`` (a
    :class:`bot.state.store.StoreObserver`) and ``on_step`` are the metrics hooks.
    Raises :class:`bot.errors.RunbookError` for an invalid runbook file.
    """
    runbook = load_runbook(settings.runbook)
    if transports is None:
        from bot.transports.provider import SSHTransportProvider

        transports = SSHTransportProvider(settings)
    secrets = known_secrets(settings)
    diagnosis = DiagnosisService(settings, runbook, transports, secrets=secrets, on_step=on_step)
    services = Services(settings=settings, runbook=runbook, transports=transports, diagnosis=diagnosis,
                        secrets=secrets)
    try:
        if with_state:
            from bot.fixes import FixRunner
            from bot.state.store import StateStore

            services.state = StateStore(state_url or settings.state_url, owner=settings.owner,
                                        lease_s=settings.lease_s, observer=observer)
            await services.state.open()
            services.fixes = FixRunner(settings, services.diagnosis, transports, services.state)
        yield services
    finally:
        if services.state is not None:
            await services.state.aclose()
        await transports.aclose()
