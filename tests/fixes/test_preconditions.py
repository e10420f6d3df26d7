"""Re-checks before a fix: each refuses when the diagnosed situation no longer holds."""

from __future__ import annotations

import pytest

from bot.app import lifespan
from bot.config import load_settings
from bot.models import Action, ActionKind, CommandResult
from bot.preconditions import FixContext, check_precondition
from bot.transports.base import EnvironmentTransports
from bot.transports.fake import FakeTransportProvider
from tests.slack.scenario import migration_failed

GOOD = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
HEAD = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"


@pytest.fixture
async def ctx_for():
    shell, sql = migration_failed()
    settings = load_settings(data={"environments": {"test": {
        "ssh": {"host": "127.0.0.1", "user": "root"}, "compose_project": "qcc_test",
        "mysql": {"user": "qcc", "database": "qcc_proxy"}}}}, env={})
    provider = FakeTransportProvider({"test": EnvironmentTransports("test", shell, sql)})
    async with lifespan(settings, transports=provider) as services:
        diagnosis = (await services.diagnosis.diagnose("test")).diagnosis

        def make(action: Action) -> FixContext:
            return FixContext(env_name="test", env=settings.environment("test"), action=action,
                              transports=provider.envs["test"], service=services.diagnosis,
                              diagnosis=diagnosis)

        yield make, shell, sql


def rollback(commit: str = GOOD, head: str = HEAD, command: str = "git checkout --detach x") -> Action:
    return Action(id="rollback", title="Roll back", kind=ActionKind.SSH, commands=[command],
                  params={"commit": commit, "head": head})


async def test_rollback_holds_with_pinned_commit_and_unmoved_head(ctx_for):
    """A full pinned SHA present in the checkout, HEAD still the diagnosed one: may run."""
    make, shell, _ = ctx_for
    shell.responses = {"cat-file": f"{HEAD}\n"}
    check = await check_precondition(make(rollback()))
    assert check.holds and not check.fixed


@pytest.mark.parametrize("action,stdout,reason", [
    (rollback(commit="HEAD~1"), "", "no pinned good commit"),
    (rollback(commit=GOOD[:12]), "", "no pinned good commit"),
    (rollback(command="git reset --hard HEAD~1"), f"{HEAD}\n", "relative to HEAD"),
    (rollback(), f"{'e' * 40}\n", "HEAD moved since the diagnosis"),
    (rollback(), f"{GOOD}\n", "at the pinned commit"),
])
async def test_rollback_refusals(ctx_for, action, stdout, reason):
    """Never roll back relative to HEAD, without a full pinned SHA, or after HEAD moved."""
    make, shell, _ = ctx_for
    shell.responses = {"cat-file": stdout}
    check = await check_precondition(make(action))
    assert not check.holds and reason in check.detail


async def test_rollback_commit_missing_from_checkout(ctx_for):
    """A pinned commit the checkout does not have refuses the rollback."""
    make, shell, _ = ctx_for
    shell.responses = {"cat-file": CommandResult(command="", exit_status=128,
                                                 stderr="fatal: Not a valid object")}
    check = await check_precondition(make(rollback()))
    assert not check.holds and "could not be found in the checkout" in check.detail
    assert "git: fatal: Not a valid object" in check.detail  # git's own words, not a guess


async def test_restart_refused_while_a_deploy_runs(ctx_for):
    """No restart while deploy-server.sh is running (it removes and rebuilds the containers)."""
    make, shell, _ = ctx_for
    shell.responses["deploy-server"] = "4242 35 /bin/bash scripts/deploy-server.sh test"
    shell.responses = {"deploy-server": shell.responses.pop("deploy-server"), **shell.responses}
    check = await check_precondition(make(Action(id="restart_proxy", title="r", commands=["x"])))
    assert not check.holds and "deploy" in check.detail


async def test_restart_refused_when_container_state_changed(ctx_for):
    """The proxy was exited when diagnosed; now it is running: the restart is not needed."""
    make, shell, _ = ctx_for
    shell.proxy_up = True
    shell._refresh()
    check = await check_precondition(make(Action(id="restart_proxy", title="r", commands=["x"])))
    assert not check.holds and check.fixed


async def test_remove_squatter_checks_the_named_container(ctx_for):
    """remove_squatter runs only while the named container still publishes the port."""
    make, shell, _ = ctx_for
    action = Action(id="remove_squatter", title="rm", commands=["docker rm -f old"],
                    params={"container": "qcc_test-proxy-old", "port": "8001"})
    check = await check_precondition(make(action))
    assert not check.holds and check.fixed and "no longer publishes" in check.detail


async def test_unknown_action_fails_closed(ctx_for):
    """An action without a defined re-check never runs."""
    make, _, _ = ctx_for
    check = await check_precondition(make(Action(id="format_disk", title="x", commands=["mkfs"])))
    assert not check.holds and "no precondition check" in check.detail


async def test_add_column_refused_when_column_exists(ctx_for):
    """The ALTER would fail with Error 1060 if the column exists: refused, reported as fixed."""
    make, _, sql = ctx_for
    sql.columns.append({"name": "health_check_model"})
    action = Action(id="add_column", title="a", kind=ActionKind.SQL,
                    commands=["ALTER TABLE nodes ADD COLUMN health_check_model VARCHAR(128)"])
    check = await check_precondition(make(action))
    assert not check.holds and check.fixed and "exists" in check.detail
