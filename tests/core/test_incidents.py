"""IncidentService: one use case (diagnose -> record -> propose) for every front end, and the
terminal path's exactly-once approval shared with Slack. Fake transports, a SQLite store."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import lifespan
from bot.config import load_settings
from bot.errors import ApprovalAlreadyHandled, NotAuthorized, UnknownEnvironment
from bot.incidents import Origin, OriginKind
from bot.models import StepEvent, StepPhase
from bot.state.models import ApprovalStatus, RunStatus
from bot.transports.base import EnvironmentTransports
from bot.transports.fake import FakeTransportProvider
from tests.slack.scenario import MYSQL_PASSWORD, migration_failed

CLI = Origin(kind=OriginKind.CLI)


def _settings(**env_extra):
    env = {"ssh": {"host": "127.0.0.1", "user": "root"}, "compose_project": "qcc_test",
           "mysql": {"user": "qcc", "database": "qcc_proxy", "password_env": "QCC_TEST_MYSQL_PASSWORD"},
           **env_extra}
    return load_settings(data={"environments": {"test": env}}, env={"QCC_TEST_MYSQL_PASSWORD": MYSQL_PASSWORD})


@pytest.fixture
def fakes():
    return migration_failed()


@pytest.fixture
async def services(tmp_path, fakes, monkeypatch):
    monkeypatch.setenv("QCC_TEST_MYSQL_PASSWORD", MYSQL_PASSWORD)
    shell, sql = fakes
    provider = FakeTransportProvider({"test": EnvironmentTransports("test", shell, sql)})
    async with lifespan(_settings(), transports=provider, state_url=f"sqlite+aiosqlite:///{tmp_path}/s.db") as svc:
        yield svc


async def test_cli_diagnosis_records_incident_run_steps_proposals_and_audit(services):
    """A CLI diagnosis is recorded like a Slack one: incident, run with diagnosis and bundle,
    step rows, one proposal per runnable fix (advice never), and audit rows by the CLI actor."""
    recorded = await services.incidents.diagnose("test", actor="cli:ana", origin=CLI)
    run = await services.state.get_run(recorded.run_id)
    assert run.status == RunStatus.SUCCEEDED and run.incident_id == recorded.incident_id
    assert run.diagnosis() == recorded.diagnosis and run.bundle_json
    assert run.channel is None and run.thread_ts is None
    steps = await services.state.list_steps(run.id, "diagnosis")
    assert [s.step_id for s in steps] == [s.id for s in recorded.diagnosis.steps]
    assert [p.action.id for p in recorded.proposals][:1] == ["add_column"]
    assert all(p.action.kind != "advice" and p.action.commands for p in recorded.proposals)
    assert [p.id for p in await services.state.list_proposals(run.id)] == [p.id for p in recorded.proposals]
    audit = [(e.actor, e.event) for e in reversed(await services.state.list_audit(20))]
    assert audit == [("cli:ana", "incident_opened"), ("cli:ana", "diagnosis_started"),
                     ("cli:ana", "diagnosis_finished")]
    latest = await services.incidents.latest("test")
    assert latest is not None and latest.run_id == recorded.run_id and latest.fixes == recorded.fixes


async def test_slack_origin_is_stored_and_an_open_incident_can_be_continued(services):
    """The origin's channel/thread land on the incident and run; ``incident_id`` adds a run to it."""
    first = await services.incidents.diagnose(
        "test", actor="U1", origin=Origin(kind=OriginKind.SLACK, channel="C1", thread_ts="1.1"))
    run = await services.state.get_run(first.run_id)
    assert (run.channel, run.thread_ts) == ("C1", "1.1")
    again = await services.incidents.diagnose("test", actor="trigger:alertmanager", origin=Origin(
        kind=OriginKind.TRIGGER, channel="C1", thread_ts="1.1", incident_id=first.incident_id))
    assert again.incident_id == first.incident_id and again.run_id != first.run_id
    events = [e.event for e in await services.state.list_audit(50)]
    assert events.count("incident_opened") == 1 and events.count("diagnosis_finished") == 2


async def test_progress_is_typed_events_and_redacted(services):
    """Progress arrives as StepEvents: each step runs then finishes with its (redacted) result;
    nothing is a fake `skipped` result with error "running"."""
    events: list[StepEvent] = []

    async def on_progress(event: StepEvent) -> None:
        events.append(event)

    await services.incidents.diagnose("test", actor="U", origin=CLI, on_progress=on_progress)
    finished = {e.step_id: e.result for e in events if e.phase == StepPhase.FINISHED}
    assert set(finished) == {s.id for s in services.runbook.steps}
    assert {e.step_id for e in events if e.phase == StepPhase.RUNNING} == set(finished)
    assert all(e.result is None for e in events if e.phase != StepPhase.FINISHED)
    assert all(r is not None and r.error != "running" for r in finished.values())
    assert not any(MYSQL_PASSWORD in (r.output if r else "") for r in finished.values())


async def test_unknown_environment_records_nothing(services):
    """An unknown environment raises before any incident or run is written."""
    with pytest.raises(UnknownEnvironment):
        await services.incidents.diagnose("nope", actor="U", origin=CLI)
    assert await services.state.list_audit(10) == []


async def test_cancelled_diagnosis_ends_its_run_interrupted(services, fakes):
    """A diagnosis cancelled mid-run (shutdown) leaves its run `interrupted`, not `running`."""
    shell, _ = fakes
    shell.delay_s = 30
    started = asyncio.Event()

    async def on_progress(event: StepEvent) -> None:
        if event.phase == StepPhase.RUNNING:
            started.set()

    task = asyncio.create_task(services.incidents.diagnose("test", actor="U", origin=CLI, on_progress=on_progress))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    finished = next(e for e in await services.state.list_audit(10) if e.event == "diagnosis_finished")
    assert finished.result == "interrupted"


async def test_terminal_approval_and_slack_cannot_both_run_a_proposal(services):
    """A Slack request open for a proposal blocks the terminal; after the terminal's fix succeeded,
    neither a Slack request nor another terminal approval of that proposal opens again."""
    recorded = await services.incidents.diagnose("test", actor="U", origin=CLI)
    proposal = recorded.proposals[0]
    slack = await services.state.request_approval(proposal.id, "USLACK", expiry_s=900, channel="C", thread_ts="1.1")
    with pytest.raises(ApprovalAlreadyHandled) as err:
        await services.incidents.approve_at_terminal(proposal, "cli:ana")
    assert err.value.handled_by == "USLACK" and "Slack" in str(err.value)
    await services.state.transition(slack.id, ApprovalStatus.PENDING, ApprovalStatus.REJECTED, actor="USLACK")
    approval = await services.incidents.approve_at_terminal(proposal, "cli:ana")
    assert approval.status == ApprovalStatus.APPROVED and approval.decided_by == "cli:ana"
    outcome = await services.fixes.execute(approval.id, actor="cli:ana")
    assert outcome.status == ApprovalStatus.SUCCEEDED
    with pytest.raises(ApprovalAlreadyHandled, match="already ran"):
        await services.state.request_approval(proposal.id, "USLACK", expiry_s=900, channel="C", thread_ts="1.1")
    with pytest.raises(ApprovalAlreadyHandled, match="already ran"):
        await services.incidents.approve_at_terminal(proposal, "cli:bob")
    assert (await services.state.proposal_done(proposal.id)).id == approval.id


async def test_concurrent_terminal_and_slack_claims_open_one_approval(services):
    """20 terminal approvals and 20 Slack requests of one proposal at once: exactly one opens."""
    recorded = await services.incidents.diagnose("test", actor="U", origin=CLI)
    proposal = recorded.proposals[0]

    async def one(i: int):
        try:
            if i % 2:
                return await services.incidents.approve_at_terminal(proposal, f"cli:u{i}")
            return await services.state.request_approval(proposal.id, f"U{i}", expiry_s=900, channel="C",
                                                         thread_ts="1.1")
        except ApprovalAlreadyHandled as exc:
            return exc

    results = await asyncio.gather(*[one(i) for i in range(40)])
    assert len([r for r in results if not isinstance(r, Exception)]) == 1
    events = [e.event for e in await services.state.list_audit(200)]
    assert events.count("approval_requested") == 1


async def test_production_refuses_terminal_fixes_unless_allowed(tmp_path, fakes):
    """`production: true` refuses terminal approvals; `approval.allow_terminal_fixes: true` allows them."""
    shell, sql = fakes
    for allowed in (False, True):
        provider = FakeTransportProvider({"test": EnvironmentTransports("test", shell, sql)})
        settings = _settings(production=True, approval={"allow_terminal_fixes": allowed})
        async with lifespan(settings, transports=provider,
                            state_url=f"sqlite+aiosqlite:///{tmp_path}/p{allowed}.db") as svc:
            proposal = (await svc.incidents.diagnose("test", actor="U", origin=CLI)).proposals[0]
            if allowed:
                assert (await svc.incidents.approve_at_terminal(proposal, "cli:ana")).status == "approved"
            else:
                with pytest.raises(NotAuthorized, match="production"):
                    await svc.incidents.approve_at_terminal(proposal, "cli:ana")
                assert [e.event for e in await svc.state.list_audit(50)].count("approval_requested") == 0
