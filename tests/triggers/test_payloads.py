"""The pure trigger layer: GitHub signatures, workflow matching, Alertmanager v4 mapping."""

from __future__ import annotations

import pytest

from bot.config import load_settings
from bot.triggers import (
    TriggerKind,
    TriggerRejected,
    alert_events,
    check_bearer,
    github_event,
    sign_github,
    verify_github_signature,
)
from tests.triggers.conftest import alert_payload, trigger_settings_data, workflow_run

SETTINGS = load_settings(data=trigger_settings_data(), env={})
BODY = b'{"action":"completed"}'


def test_signature_roundtrip():
    """GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!"."""
    assert sign_github("It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
    verify_github_signature("It's a Secret to Everybody", b"Hello, World!",
                            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")


@pytest.mark.parametrize(("secret", "header", "reason"), [
    (None, sign_github("s", BODY), "no_secret"),
    ("s", None, "bad_signature"),
    ("s", "sha1=" + "0" * 40, "bad_signature"),
    ("s", sign_github("other", BODY), "bad_signature"),
    ("s", sign_github("s", BODY + b"x"), "bad_signature"),
])
def test_signature_refusals(secret, header, reason):
    """No secret configured, no header, the old sha1 header, another secret, another body: 401."""
    with pytest.raises(TriggerRejected) as err:
        verify_github_signature(secret, BODY, header)
    assert (err.value.status, err.value.reason) == (401, reason)


@pytest.mark.parametrize(("payload", "kind"), [
    (workflow_run("failure"), TriggerKind.DEPLOY_FAILED),
    (workflow_run("timed_out"), TriggerKind.DEPLOY_FAILED),
    (workflow_run("success"), TriggerKind.DEPLOY_SUCCEEDED),
    (workflow_run("cancelled"), None),
    (workflow_run("skipped"), None),
    (workflow_run(None, action="requested"), None),
    (workflow_run(None, action="in_progress"), None),
])
def test_workflow_run_kinds(payload, kind):
    """Only completed runs act: failure/timed_out open an incident, success closes it."""
    event = github_event(SETTINGS, "workflow_run", payload)
    assert (event.kind if event else None) == kind
    if event:
        assert event.environment == "test" and event.actor == "github:deployer"
        assert event.commit == payload["workflow_run"]["head_sha"]


@pytest.mark.parametrize(("kwargs", "env"), [
    ({"name": "Deploy test"}, "test"),  # by name
    ({"name": "Renamed", "path": ".github/workflows/deploy-prod.yml", "branch": "main"}, "prod"),  # by path
    ({"name": "Renamed", "path": ".github/workflows/deploy-prod.yml@refs/heads/main", "branch": "main"},
     "prod"),
    ({"repo": "ACME/QCC_PLUS"}, "test"),  # GitHub names are case-insensitive
])
def test_workflow_matching(kwargs, env):
    """The workflow is matched by name or file path, the repository case-insensitively."""
    assert github_event(SETTINGS, "workflow_run", workflow_run("failure", **kwargs)).environment == env


@pytest.mark.parametrize("kwargs", [{"branch": "main"}, {"repo": "acme/other"}, {"name": "CI", "path": "ci.yml"}])
def test_workflow_unknown_is_404(kwargs):
    with pytest.raises(TriggerRejected) as err:
        github_event(SETTINGS, "workflow_run", workflow_run("failure", **kwargs))
    assert err.value.status == 404


@pytest.mark.parametrize(("event", "data"), [
    ("push", workflow_run("failure")),
    ("workflow_run", {"action": "completed"}),
    ("workflow_run", []),
    ("workflow_run", {"action": "completed", "workflow_run": {"id": "x"}, "repository": {"full_name": "a/b"}}),
])
def test_github_malformed_is_400(event, data):
    with pytest.raises(TriggerRejected) as err:
        github_event(SETTINGS, event, data)
    assert err.value.status == 400


def test_ping_is_nothing():
    assert github_event(SETTINGS, "ping", {"zen": "x"}) is None


def test_alerts_fold_per_environment_and_status():
    """Alerts of one environment become one event per status, firing first; unmatched are dropped."""
    data = alert_payload("firing")
    data["alerts"] += [
        {**data["alerts"][0], "labels": {**data["alerts"][0]["labels"], "alertname": "QccHighMemory"}},
        {**data["alerts"][0], "status": "resolved", "labels": {**data["alerts"][0]["labels"], "alertname": "Old"}},
        {**data["alerts"][0], "labels": {"alertname": "Other", "env": "staging"}},
    ]
    events = alert_events(SETTINGS, data)
    assert [(e.environment, e.kind) for e in events] == [("test", TriggerKind.ALERT_FIRING),
                                                         ("test", TriggerKind.ALERT_RESOLVED)]
    assert events[0].title.startswith("QccHighMemory, QccProxyDown firing: qcc_plus proxy")


@pytest.mark.parametrize("data", [
    {"version": "3", "status": "firing", "alerts": [{"status": "firing"}]},
    {"version": "4", "status": "firing", "alerts": []},
    {"version": "4", "status": "firing"},
    "text",
])
def test_alertmanager_malformed_is_400(data):
    with pytest.raises(TriggerRejected) as err:
        alert_events(SETTINGS, data)
    assert err.value.status == 400


def test_alertmanager_unmatched_is_404():
    with pytest.raises(TriggerRejected) as err:
        alert_events(SETTINGS, alert_payload("firing", labels={"service": "other"}))
    assert err.value.status == 404


def test_bearer():
    """No token configured: anything goes; configured: exactly `Bearer <token>`."""
    check_bearer(None, None)
    check_bearer("tok", "Bearer tok")
    for header in (None, "tok", "Bearer other", "Basic dG9r"):
        with pytest.raises(TriggerRejected):
            check_bearer("tok", header)
