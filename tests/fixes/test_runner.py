"""FixRunner: runs an approved action once, records the outcome, never runs advice."""

from __future__ import annotations

import pytest

from bot.app import lifespan
from bot.config import load_settings
from bot.errors import ApprovalAlreadyHandled, ApprovalError, MySQLError
from bot.models import Action, ActionKind
from bot.state.models import ApprovalStatus, RunKind, RunStatus
from bot.transports.base import EnvironmentTransports
from bot.transports.fake import FakeTransportProvider
from tests.slack.scenario import migration_failed


@pytest.fixture
async def services(tmp_path):
    shell, sql = migration_failed()
    settings = load_settings(data={"environments": {"test": {
        "ssh": {"host": "127.0.0.1", "user": "root"}, "compose_project": "qcc_test",
        "mysql": {"user": "qcc", "database": "qcc_proxy"}}}}, env={})
    provider = FakeTransportProvider({"test": EnvironmentTransports("test", shell, sql)})
    async with lifespan(settings, transports=provider, with_state=True,
                        state_url=f"sqlite+aiosqlite:///{tmp_path}/s.db") as svc:
        run = await svc.diagnosis.diagnose("test")
        diag = await svc.state.start_run(RunKind.DIAGNOSIS, "test", actor="U")
        await svc.state.finish_run(diag.id, RunStatus.SUCCEEDED, actor="U",
                                   diagnosis_json=run.diagnosis.model_dump_json(),
                                   bundle_json=run.bundle.model_dump_json())
        yield svc, diag.id, shell, sql


async def _approved(svc, run_id: str, action: Action) -> str:
    proposal = await svc.state.create_proposal(run_id, "test", action)
    approval = await svc.state.request_approval(proposal.id, "UREQ", expiry_s=900, channel="C",
                                                thread_ts="1.1")
    await svc.state.transition(approval.id, ApprovalStatus.PENDING, ApprovalStatus.APPROVED, actor="UAPP")
    return approval.id


ADD = Action(id="add_column", title="add", kind=ActionKind.SQL, verify_steps=["schema_nodes"],
             commands=["ALTER TABLE nodes ADD COLUMN health_check_model VARCHAR(128)"])


async def test_executes_once_then_refuses(services):
    """The first execute runs the SQL and succeeds; a second execute of the same approval raises."""
    svc, run_id, _, sql = services
    approval_id = await _approved(svc, run_id, ADD)
    outcome = await svc.fixes.execute(approval_id, actor="UAPP")
    assert outcome.status == ApprovalStatus.SUCCEEDED and outcome.ran and outcome.verification.fixed
    assert [s.id for s in outcome.before] == [s.id for s in outcome.after] == ["schema_nodes"]
    with pytest.raises(ApprovalAlreadyHandled):
        await svc.fixes.execute(approval_id, actor="UAPP")
    assert len(sql.executed) == 1
    assert (await svc.state.get_approval(approval_id)).status == ApprovalStatus.SUCCEEDED
    fix_run = await svc.state.get_run((await svc.state.get_approval(approval_id)).fix_run_id)
    assert fix_run.status == RunStatus.SUCCEEDED
    phases = {s.phase for s in await svc.state.list_steps(fix_run.id)}
    assert phases == {"before", "after"}


async def test_sql_error_marks_failed(services):
    """A statement the server rejects ends the approval `failed` with the server's error."""
    svc, run_id, _, sql = services
    approval_id = await _approved(svc, run_id, ADD)

    async def boom(*a, **k):
        raise MySQLError("Error 1142 (42000): ALTER command denied", host="db")

    sql.execute = boom
    outcome = await svc.fixes.execute(approval_id, actor="UAPP")
    assert outcome.status == ApprovalStatus.FAILED and "ALTER command denied" in outcome.commands[0].stderr
    assert (await svc.state.get_approval(approval_id)).status == ApprovalStatus.FAILED


async def test_advice_is_never_executed(services):
    """Advice actions have nothing to run; execute refuses them."""
    svc, run_id, _, _ = services
    approval_id = await _approved(svc, run_id, Action(id="delay_first_health_check", title="advice",
                                                      kind=ActionKind.ADVICE))
    with pytest.raises(ApprovalError):
        await svc.fixes.execute(approval_id, actor="UAPP")
