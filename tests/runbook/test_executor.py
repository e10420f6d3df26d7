"""The executor runs steps concurrently, isolates failures and resolves containers."""

from __future__ import annotations

import asyncio
import json

from bot.config import load_settings
from bot.errors import CommandTimeout, SSHUnreachable
from bot.models import CommandResult, StepStatus
from bot.runbook.executor import RunbookExecutor
from bot.runbook.loader import load_runbook
from bot.transports.base import EnvironmentTransports
from bot.transports.fake import FakeCommandRunner, FakeSqlRunner

SETTINGS = load_settings(data={"environments": {"test": {
    "ssh": {"host": "127.0.0.1", "user": "root"}, "compose_project": "qcc_test",
    "mysql": {"user": "qcc", "database": "qcc_proxy"}}}}, env={})
ENV = SETTINGS.environment("test")


def ps_line(name: str, service: str | None, state: str = "exited", status: str = "Exited (1) 1 minute ago") -> str:
    labels = f"com.docker.compose.project=qcc_test,com.docker.compose.service={service}" if service else ""
    return json.dumps({"ID": "abc", "Names": name, "State": state, "Status": status, "Labels": labels,
                       "Image": "qcc_plus:latest", "Ports": ""})


def transports(shell: FakeCommandRunner, sql: FakeSqlRunner | None = None) -> EnvironmentTransports:
    return EnvironmentTransports(name="test", shell=shell, sql=sql or FakeSqlRunner(columns=[{"name": "id"}]))


async def test_steps_run_concurrently_and_all_report() -> None:
    """Every step runs, several at once (max in flight > 1), results in runbook order."""
    rb = load_runbook()
    in_flight = 0
    peak = 0

    class CountingRunner(FakeCommandRunner):
        async def run(self, command: str, *, timeout_s: float, max_output_bytes: int = 0) -> CommandResult:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.05)
            in_flight -= 1
            return await super().run(command, timeout_s=timeout_s)

    shell = CountingRunner({'ps -a --no-trunc --filter "label': ps_line("qcc_test_proxy", "proxy") + "\n"
                            + ps_line("qcc_test_mysql", "mysql"), "": ""})
    results, names = await RunbookExecutor(rb, concurrency=8).run("test", ENV, transports(shell))
    assert [r.id for r in results] == [s.id for s in rb.steps]
    assert names["proxy_container"] == "qcc_test_proxy"
    assert peak > 1
    assert all(r.status == StepStatus.OK for r in results), [(r.id, r.status, r.error) for r in results]


async def test_one_failing_step_keeps_the_others() -> None:
    """A transport error and a timeout on two steps leave every other step's result intact."""
    rb = load_runbook()
    shell = FakeCommandRunner({
        "free -m": SSHUnreachable("cannot reach root@127.0.0.1:22", host="root@127.0.0.1:22"),
        "df -P": CommandTimeout("command timed out after 10s", timeout_s=10),
        'ps -a --no-trunc --filter "label': ps_line("qcc_test_proxy", "proxy"),
        "": "",
    })
    results, _ = await RunbookExecutor(rb).run("test", ENV, transports(shell))
    by_id = {r.id: r for r in results}
    assert by_id["host_memory"].status == StepStatus.ERROR and "cannot reach" in (by_id["host_memory"].error or "")
    assert by_id["host_disk"].status == StepStatus.TIMEOUT
    assert by_id["proxy_logs"].status == StepStatus.OK
    assert by_id["schema_nodes"].status == StepStatus.OK


async def test_missing_proxy_container_skips_dependent_steps() -> None:
    """No proxy container → log steps are skipped with a reason; host steps still run."""
    rb = load_runbook()
    shell = FakeCommandRunner({"": ""})
    results, names = await RunbookExecutor(rb).run("test", ENV, transports(shell))
    by_id = {r.id: r for r in results}
    assert names == {}
    assert by_id["proxy_logs"].status == StepStatus.SKIPPED
    assert "proxy_container not found" in (by_id["proxy_logs"].error or "")
    assert by_id["host_memory"].status == StepStatus.OK
    assert not any("logs" in c and "proxy" in c for c in shell.commands_run if "docker logs" in c)


async def test_seed_style_names_resolved_without_labels() -> None:
    """Old compose naming `qcc_test-proxy-1` without labels still resolves the proxy."""
    rb = load_runbook()
    shell = FakeCommandRunner({'ps -a --no-trunc --filter "label': ps_line("qcc_test-proxy-1", None), "": ""})
    _, names = await RunbookExecutor(rb).run("test", ENV, transports(shell), only={"proxy_logs"})
    assert names["proxy_container"] == "qcc_test-proxy-1"


async def test_exit_statuses_map_to_step_status() -> None:
    """No exit status (signal) is a failure, remote `timeout` (124) is a timeout, grep's 1 is ok."""
    rb = load_runbook()
    shell = FakeCommandRunner({
        "free -m": CommandResult(command="", exit_status=None, signal="KILL"),
        "df -P": CommandResult(command="", exit_status=124),
        "grep -v grep": CommandResult(command="", exit_status=1),
        "": "",
    })
    ex = RunbookExecutor(rb)
    results, _ = await ex.run("test", ENV, transports(shell), only={"host_memory", "deploy_running"})
    by_id = {r.id: r for r in results}
    assert by_id["host_memory"].status == StepStatus.FAILED and "signal KILL" in (by_id["host_memory"].error or "")
    assert by_id["deploy_running"].status == StepStatus.OK
    # a 124 that came back before the deadline is a failure, not a timeout
    res, _ = await ex.run("test", ENV, transports(shell), only={"host_disk"})
    assert res[0].status == StepStatus.FAILED


async def test_sql_step_output_is_json_rows() -> None:
    """The schema step stores the rows as JSON and passes the database as a parameter."""
    rb = load_runbook()
    sql = FakeSqlRunner(columns=[{"name": "id", "type": "int"}, {"name": "health_check_method", "type": "varchar"}])
    results, _ = await RunbookExecutor(rb).run("test", ENV, transports(FakeCommandRunner({"": ""}), sql),
                                               only={"schema_nodes"})
    assert json.loads(results[0].output)[1]["name"] == "health_check_method"
    assert "information_schema" in sql.queries[0]


async def test_progress_callback_errors_do_not_break_the_run() -> None:
    """A failing progress callback is logged and ignored; every step still finishes."""
    rb = load_runbook()
    seen: list[str] = []

    async def bad(result) -> None:
        seen.append(result.id)
        raise RuntimeError("slack is down")

    results, _ = await RunbookExecutor(rb).run("test", ENV, transports(FakeCommandRunner({"": ""})),
                                               on_progress=bad, only={"host_memory", "host_disk"})
    assert {r.status for r in results} == {StepStatus.OK}
    assert seen.count("host_memory") == 2  # running + finished


async def test_unreachable_host_skips_with_the_real_reason() -> None:
    """When container status itself errors, dependent steps say so instead of 'not found'."""
    rb = load_runbook()
    shell = FakeCommandRunner({"": SSHUnreachable("cannot reach root@h:22: refused", host="root@h:22")})
    results, _ = await RunbookExecutor(rb).run("test", ENV, transports(shell), only={"proxy_logs"})
    assert results[0].status == StepStatus.SKIPPED
    assert results[0].error == "proxy_container unknown: container status error (cannot reach root@h:22: refused)"
