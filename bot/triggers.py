"""Deploy and alert triggers, pure: webhook verification, payload models, environment matching.

Two sources turn into :class:`TriggerEvent` values (the HTTP layer is
:mod:`handlers.webhooks`; nothing here does I/O):

* GitHub ``workflow_run`` webhooks, verified with :func:`verify_github_signature`
  (``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``, constant-time compare),
  matched to the environment whose ``triggers.github`` names the repository, the workflow
  (name or file path) and, optionally, the branch: :func:`github_event`.
* Alertmanager webhooks (payload ``version: "4"``), optionally with a bearer token
  (:func:`check_bearer`), each alert matched to the environment whose
  ``triggers.alertmanager.match`` labels it carries: :func:`alert_events`.

Every refusal is a :class:`TriggerRejected` carrying the HTTP status the endpoint answers
(401 bad signature/token, 400 malformed, 404 unknown environment or workflow, 409 replay).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.config import Settings
from bot.errors import UserError

SIGNATURE_PREFIX = "sha256="


class TriggerRejected(UserError):
    """A webhook the bot refuses; ``status`` is the HTTP status, ``reason`` a short code
    (``bad_signature``, ``malformed``, ``unknown_environment``, ``replay``, ...)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)


class TriggerKind(StrEnum):
    """What happened: the first two open (or add to) an incident, the last two note an end."""

    DEPLOY_FAILED = "deploy_failed"
    ALERT_FIRING = "alert_firing"
    DEPLOY_SUCCEEDED = "deploy_succeeded"
    ALERT_RESOLVED = "alert_resolved"

    @property
    def opens(self) -> bool:
        return self in (TriggerKind.DEPLOY_FAILED, TriggerKind.ALERT_FIRING)


class TriggerEvent(BaseModel):
    """One thing that happened to one environment, from a verified webhook.

    ``source`` is ``github`` or ``alertmanager``; ``title`` one line for Slack; ``url`` a link
    to the run or the alert's generator; ``actor`` who the audit log names (``github:<login>``,
    ``alertmanager``); ``commit`` the deployed head SHA (GitHub only).
    """

    model_config = ConfigDict(frozen=True)

    kind: TriggerKind
    environment: str
    source: str
    title: str
    url: str | None = None
    actor: str
    commit: str | None = None


# ---------------------------------------------------------------- GitHub
def sign_github(secret: str | bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body`` (tests and tools)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return SIGNATURE_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_github_signature(secret: str | bytes | None, body: bytes, header: str | None) -> None:
    """Check ``X-Hub-Signature-256`` against the HMAC-SHA256 of the raw ``body``.

    Raises :class:`TriggerRejected` (401) when no secret is configured, the header is missing
    or malformed, or the signature differs (compared with :func:`hmac.compare_digest`).
    """
    if not secret:
        raise TriggerRejected(401, "no_secret", "the GitHub webhook secret is not configured "
                                                "(webhooks.github_secret_env)")
    if not header or not header.startswith(SIGNATURE_PREFIX):
        raise TriggerRejected(401, "bad_signature", "missing or malformed X-Hub-Signature-256")
    if not hmac.compare_digest(sign_github(secret, body).encode(), header.strip().encode()):
        raise TriggerRejected(401, "bad_signature", "the X-Hub-Signature-256 signature does not match")


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class GitHubRepository(_Loose):
    full_name: str


class GitHubUser(_Loose):
    login: str = "github"


class WorkflowRun(_Loose):
    """The fields of ``workflow_run`` the bot reads."""

    id: int
    name: str | None = None
    path: str | None = None  # ".github/workflows/deploy.yml" (newer payloads add "@ref")
    head_branch: str | None = None
    head_sha: str | None = None
    status: str | None = None
    conclusion: str | None = None
    html_url: str | None = None
    run_number: int | None = None


class WorkflowRunPayload(_Loose):
    """A GitHub ``workflow_run`` webhook body."""

    action: str
    workflow_run: WorkflowRun
    repository: GitHubRepository
    sender: GitHubUser = Field(default_factory=GitHubUser)


FAILED_CONCLUSIONS = frozenset({"failure", "timed_out"})


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``. Raises :class:`TriggerRejected` (400)."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TriggerRejected(400, "malformed", "the body is not JSON") from None


def _validate(model: type[BaseModel], data: Any, what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise TriggerRejected(400, "malformed", f"not a {what} payload ({where}: {first['msg']})") from None


def _workflow_matches(configured: str, run: WorkflowRun) -> bool:
    path = (run.path or "").split("@", 1)[0]
    return configured in (run.name, path) or (bool(path) and path.endswith("/" + configured))


def github_environment(settings: Settings, payload: WorkflowRunPayload) -> str:
    """The environment whose ``triggers.github`` matches the run (repository, workflow, branch).

    Raises :class:`TriggerRejected` (404) when none does.
    """
    run = payload.workflow_run
    repo = payload.repository.full_name
    for name, env in settings.environments.items():
        gh = env.triggers.github
        if gh is None or gh.repository.lower() != repo.lower() or not _workflow_matches(gh.workflow, run):
            continue
        if gh.branch is not None and gh.branch != run.head_branch:
            continue
        return name
    raise TriggerRejected(404, "unknown_workflow",
                          f"no environment deploys with workflow {run.name or run.path!r} of {repo} "
                          f"on branch {run.head_branch!r}")


def github_event(settings: Settings, event_header: str | None, data: Any) -> TriggerEvent | None:
    """The :class:`TriggerEvent` of a verified GitHub webhook, or None when it is nothing to act on
    (a ``ping``, a ``workflow_run`` still ``requested``/``in_progress``, a cancelled or skipped run).

    Raises :class:`TriggerRejected`: 400 for another event type or a malformed payload, 404 when
    no environment is configured for the workflow.
    """
    if event_header == "ping":
        return None
    if event_header != "workflow_run":
        raise TriggerRejected(400, "unsupported_event",
                              f"only workflow_run events are accepted (got {str(event_header)[:40]!r})")
    payload: WorkflowRunPayload = _validate(WorkflowRunPayload, data, "workflow_run")
    env = github_environment(settings, payload)
    run = payload.workflow_run
    if payload.action != "completed":
        return None
    if run.conclusion in FAILED_CONCLUSIONS:
        kind = TriggerKind.DEPLOY_FAILED
    elif run.conclusion == "success":
        kind = TriggerKind.DEPLOY_SUCCEEDED
    else:
        return None
    label = run.name or run.path or "workflow"
    number = f" #{run.run_number}" if run.run_number is not None else ""
    sha = (run.head_sha or "")[:12]
    title = (f"{label}{number} on {run.head_branch or '?'} ({sha}) "
             f"{'failed' if kind == TriggerKind.DEPLOY_FAILED else 'succeeded'}: {run.conclusion}")
    return TriggerEvent(kind=kind, environment=env, source="github", title=title, url=run.html_url,
                        actor=f"github:{payload.sender.login}"[:64], commit=run.head_sha)


# ---------------------------------------------------------------- Alertmanager
class Alert(_Loose):
    """One alert of an Alertmanager webhook."""

    status: str  # firing | resolved
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None  # noqa: N815 - Alertmanager's field name
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str | None = None  # noqa: N815
    fingerprint: str | None = None


class AlertmanagerPayload(_Loose):
    """An Alertmanager webhook body (``version: "4"``)."""

    version: str
    status: str
    receiver: str = ""
    groupKey: str = ""  # noqa: N815
    alerts: list[Alert] = Field(min_length=1)


def check_bearer(expected: str | None, header: str | None) -> None:
    """When a token is configured, ``Authorization: Bearer <token>`` must carry it (constant time).

    Raises :class:`TriggerRejected` (401).
    """
    if not expected:
        return
    given = (header or "").removeprefix("Bearer ").strip() if (header or "").startswith("Bearer ") else ""
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise TriggerRejected(401, "bad_token", "missing or wrong bearer token")


def alert_environment(settings: Settings, labels: dict[str, str]) -> str | None:
    """The first environment whose ``triggers.alertmanager.match`` labels all appear in ``labels``."""
    for name, env in settings.environments.items():
        am = env.triggers.alertmanager
        if am is not None and am.match and all(labels.get(k) == v for k, v in am.match.items()):
            return name
    return None


def alert_events(settings: Settings, data: Any) -> list[TriggerEvent]:
    """One :class:`TriggerEvent` per environment and status in an Alertmanager webhook.

    Alerts of one environment are folded into one event per status (firing first), titled with
    their ``alertname`` labels and ``summary`` annotations. Raises :class:`TriggerRejected`:
    400 for a malformed payload or another version than 4, 404 when no alert maps to a
    configured environment.
    """
    payload: AlertmanagerPayload = _validate(AlertmanagerPayload, data, "Alertmanager v4")
    if payload.version != "4":
        raise TriggerRejected(400, "malformed", f"Alertmanager payload version {payload.version!r} "
                                                "is not supported (expected \"4\")")
    grouped: dict[tuple[str, str], list[Alert]] = {}
    for alert in payload.alerts:
        env = alert_environment(settings, alert.labels)
        if env is not None and alert.status in ("firing", "resolved"):
            grouped.setdefault((env, alert.status), []).append(alert)
    if not grouped:
        raise TriggerRejected(404, "unknown_environment",
                              "no alert's labels match an environment's triggers.alertmanager.match")
    out = []
    for (env, status), alerts in sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[0][1] != "firing")):
        names = sorted({a.labels.get("alertname", "alert") for a in alerts})
        summary = next((a.annotations.get("summary") for a in alerts if a.annotations.get("summary")), "")
        title = f"{', '.join(names)} {status}" + (f": {summary}" if summary else "")
        kind = TriggerKind.ALERT_FIRING if status == "firing" else TriggerKind.ALERT_RESOLVED
        out.append(TriggerEvent(kind=kind, environment=env, source="alertmanager", title=title[:300],
                                url=alerts[0].generatorURL, actor="alertmanager"))
    return out


def alert_delivery_id(body: bytes) -> str:
    """Alertmanager sends no delivery id: the body's SHA-256 stands for one (a resent identical
    notification is a replay; a later one for the same group differs in times or statuses)."""
    return hashlib.sha256(body).hexdigest()
