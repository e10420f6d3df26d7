"""Issue 11: one remote read per fact, and the whole diagnosis in one wave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.app import lifespan
from bot.config import load_settings
from bot.runbook.commands import render_script, step_variables
from bot.runbook.loader import load_runbook
from bot.runbook.sections import split_sections
from bot.runbook.steps import StepId
from bot.transports.base import EnvironmentTransports
from bot.transports.fake import FakeTransportProvider
from qcc_sandbox import SandboxDir
from tests.fakes.sandbox_runner import SandboxRunner
from tests.slack.scenario import migration_failed


async def test_proxy_log_is_read_from_the_host_once_per_diagnosis() -> None:
    """A whole diagnosis (DiagnosisService over a fake host) sends exactly one `docker logs`, and
    the three seed greps still quote from it; one command per remote step, no `inspect` twice."""
    shell, sql = migration_failed()
    settings = load_settings(data={"environments": {"test": {
        "ssh": {"host": "127.0.0.1", "user": "root"}, "compose_project": "qcc_test",
        "mysql": {"user": "qcc", "database": "qcc_proxy"}}}}, env={})
    provider = FakeTransportProvider({"test": EnvironmentTransports("test", shell, sql)})
    async with lifespan(settings, transports=provider) as services:
        run = await services.diagnosis.diagnose("test")
    sent = shell.commands_run
    proxy_reads = [c for c in sent if "mysqllog()" not in c]  # host_facts reads MySQL's log, not the proxy's
    assert sum('"$docker" logs' in c for c in proxy_reads) == 1, sent
    assert sum('"$docker" inspect' in c for c in proxy_reads) == 1
    assert len(sent) == len([s for s in load_runbook().steps if s.transport == "ssh"])
    by_id = {s.id: s for s in run.diagnosis.steps}
    assert "Error 1054" in by_id["grep_migration"].output
    assert run.diagnosis.causes[0].id == "migration_failed"


async def _run_step_alone(tmp_path: Path, scenario: str, fault: dict[str, Any], step_id: str
                          ) -> tuple[dict[str, tuple[str, int | None]], SandboxDir]:
    """Run one runbook step, rendered as the executor sends it, on a sandbox host of ``scenario``
    with ``fault``; returns its parts (``split_sections``) and the sandbox (its command log)."""
    box = SandboxDir(tmp_path / "box")
    box.load(scenario)
    box.add_fault(fault)
    env = load_settings(data={"environments": {"test": {
        "ssh": {"host": "127.0.0.1", "user": "root"}, "compose_project": "qcc_test", **box.config_paths()}}},
        env={}).environment("test")
    step = next(s for s in load_runbook().steps if s.id == step_id)
    assert step.script is not None
    result = await SandboxRunner(box).run(render_script(step.script, step_variables(env), timeout_s=step.timeout_s),
                                          timeout_s=30)
    return split_sections(result.stdout), box


async def test_mysql_log_candidates_are_read_at_once(tmp_path: Path) -> None:
    """host_facts reads MySQL's log under both candidate names at once and keeps the one that
    exists: the seed's `qcc_test-mysql-1` is not read only after `qcc_test_mysql` has failed
    (that was a second docker call in a row, 0.5 s on a busy host)."""
    parts, box = await _run_step_alone(
        tmp_path, "migration_failed_seed_naming",
        {"program": "docker", "args": ["logs", "qcc_test_mysql"], "mode": "delay", "delay_s": 1.5}, StepId.HOST_FACTS)
    text, status = parts["mysql_logs"]
    assert status == 0 and "No such container" not in text, text  # the existing one was kept
    starts = sorted(r.ts for r in box.commands() if r.prog == "docker" and r.has("logs"))
    assert len(starts) == 2, box.commands()
    assert starts[1] - starts[0] < 1.0  # the second began while the first was still held 1.5 s


async def test_http_checks_run_at_once(tmp_path: Path) -> None:
    """proxy_http sends `/version` and `/` at the same time: a proxy that holds one request costs
    one curl deadline, not two in a row (the overloaded host: both time out)."""
    parts, box = await _run_step_alone(
        tmp_path, "healthy",
        {"program": "curl", "args": ["http://127.0.0.1:8001/version"], "mode": "delay", "delay_s": 1.5}, "proxy_http")
    assert parts[StepId.DEPLOYED_VERSION][1] == 0 and '"version"' in parts[StepId.DEPLOYED_VERSION][0]
    assert parts[StepId.PROXY_ROOT][0].strip() == "200" and parts[StepId.PROXY_ROOT][1] == 0
    starts = sorted(r.ts for r in box.commands() if r.prog == "curl")
    assert len(starts) == 2, box.commands()
    assert starts[1] - starts[0] < 1.0  # `/` was asked while `/version` was still held 1.5 s
