"""The trigger endpoints, served next to ``/slack/events``, ``/healthz`` and ``/metrics``.

``POST /hooks/github``
    A GitHub webhook (content type ``application/json``). ``X-Hub-Signature-256`` must be the
    HMAC-SHA256 of the raw body with the secret in ``$<webhooks.github_secret_env>``
    (checked first, in constant time). ``X-GitHub-Event: ping`` answers 200; only
    ``workflow_run`` events are accepted. ``X-GitHub-Delivery`` is required and remembered.

``POST /hooks/alertmanager``
    An Alertmanager webhook (``version: "4"``), with ``Authorization: Bearer <token>`` when
    ``webhooks.alertmanager_token_env`` is set. The body's SHA-256 is its delivery id.

Answers (JSON ``{"status": ..., "reason": ..., "message": ...}``):

* ``202 accepted`` — the event is handled in the background (``events`` lists them);
* ``200 ignored`` — nothing to act on (a ping, a run not completed, a cancelled run), or a
  **replay**: a delivery id seen before (``reason: replay``; 200 so that senders do not retry);
* ``401`` bad signature or token · ``400`` malformed body or unsupported event ·
  ``404`` no environment for the workflow or the alert labels · ``422`` the environment has
  no ``slack.incident_channel`` · ``413`` body too large.

Every refusal and every ignored request changes nothing: no Slack message, no row (the
delivery id is stored only for accepted events).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from bot.triggers import (
    TriggerEvent,
    TriggerRejected,
    alert_delivery_id,
    alert_events,
    check_bearer,
    github_event,
    parse_json,
    verify_github_signature,
)
from handlers.errors import Target, reporter
from handlers.runtime import Runtime
from handlers.triggers import IncidentTriggers, incident_channel

log = logging.getLogger("qcc.webhooks")
GITHUB_PATH = "/hooks/github"
ALERTMANAGER_PATH = "/hooks/alertmanager"


def _answer(status: int, state: str, reason: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"status": state, "reason": reason, "message": message, **extra}, status=status)


class Webhooks:
    """The two endpoints of one running bot (``routes()`` for the aiohttp application)."""

    def __init__(self, rt: Runtime, triggers: IncidentTriggers) -> None:
        self.rt = rt
        self.triggers = triggers

    def routes(self) -> list[web.RouteDef]:
        return [web.post(GITHUB_PATH, self.github), web.post(ALERTMANAGER_PATH, self.alertmanager)]

    async def _body(self, request: web.Request) -> bytes:
        limit = self.rt.settings.webhooks.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise TriggerRejected(413, "too_large", f"the body is larger than {limit} bytes")
        body = await request.content.read(limit + 1)
        if len(body) > limit:
            raise TriggerRejected(413, "too_large", f"the body is larger than {limit} bytes")
        return body

    async def github(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
            secret = self.rt.settings.webhooks.github_secret()
            verify_github_signature(secret.get_secret_value() if secret else None, body,
                                    request.headers.get("X-Hub-Signature-256"))
            kind = request.headers.get("X-GitHub-Event")
            if kind == "ping":
                return _answer(200, "ignored", "ping", "pong")
            delivery = (request.headers.get("X-GitHub-Delivery") or "").strip()
            if not delivery or len(delivery) > 100:
                raise TriggerRejected(400, "malformed", "missing or malformed X-GitHub-Delivery")
            event = github_event(self.rt.settings, kind, parse_json(body))
            if event is None:
                return _answer(200, "ignored", "not_actionable",
                               "only completed runs that failed, timed out or succeeded are acted on")
            return await self._accept("github", delivery, [event])
        except TriggerRejected as exc:
            return self._refuse("github", exc)

    async def alertmanager(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
            token = self.rt.settings.webhooks.alertmanager_token()
            check_bearer(token.get_secret_value() if token else None, request.headers.get("Authorization"))
            events = alert_events(self.rt.settings, parse_json(body))
            return await self._accept("alertmanager", alert_delivery_id(body), events)
        except TriggerRejected as exc:
            return self._refuse("alertmanager", exc)

    def _refuse(self, source: str, exc: TriggerRejected) -> web.Response:
        log.warning("%s webhook refused (%d %s): %s", source, exc.status, exc.reason, exc)
        return _answer(exc.status, "refused", exc.reason, str(exc))

    async def _accept(self, source: str, delivery: str, events: list[TriggerEvent]) -> web.Response:
        for event in events:
            if incident_channel(self.rt, event.environment) is None:
                raise TriggerRejected(422, "no_incident_channel",
                                      f"environment {event.environment} has no slack.incident_channel")
        envs = ",".join(sorted({e.environment for e in events}))
        retention = self.rt.settings.webhooks.delivery_retention_days
        if not await self.rt.state.record_delivery(source, delivery, envs, retention_days=retention):
            return _answer(200, "ignored", "replay", f"delivery {delivery[:64]} was already received")
        for event in events:
            channel = incident_channel(self.rt, event.environment)
            self.rt.tasks.spawn(self.triggers.handle(event), name=f"trigger-{event.kind.value}",
                                on_error=reporter(self.rt, Target(channel=channel, in_thread=True)))
        return _answer(202, "accepted", "accepted", f"{len(events)} event(s) accepted",
                       events=[{"environment": e.environment, "kind": e.kind.value} for e in events])
