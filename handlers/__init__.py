"""Slack entry points (the only package that imports slack_bolt / slack_sdk).

* :mod:`handlers.server` — ``serve(settings, http, port)``: credentials check, the one
  ``AsyncWebClient`` (base URL from settings, 429/5xx retry handlers), the ``AsyncApp``,
  Socket Mode or HTTP ``/slack/events``, restart recovery, heartbeat, drain on shutdown.
* :mod:`handlers.commands` — ``/qcc`` (``register(app, rt)``); flows in :mod:`handlers.diagnose`
  and :mod:`handlers.info`.
* :mod:`handlers.approvals` — Fix / Approve / Reject buttons (``register(app, rt)``), with
  :mod:`handlers.policy` deciding who may approve.
* :mod:`handlers.errors` — the one ``@app.error`` and the shared error reporter.
* :mod:`handlers.blocks` — the one Block Kit renderer (primitives in :mod:`handlers.blockkit`).
* :mod:`handlers.slackio` — every outgoing Web API call, redacted on the way out.
* :mod:`handlers.parsing` — payloads and slash-command text to typed requests (pure).
* :mod:`handlers.tasks` — the background task registry; :mod:`handlers.runtime` — what
  handlers share (services + Slack output + tasks).
"""
