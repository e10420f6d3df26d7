"""Issue 11: one remote read per fact, and the whole diagnosis in one wave."""

from __future__ import annotations

from bot.app import lifespan
from bot.config import load_settings
from bot.runbook.loader import load_runbook
from bot.transports.base import EnvironmentTransports
from bot.transports.fake import FakeTransportProvider
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
