"""The executor runs steps in one wave, isolates failures, splits parts and greps locally."""

from __future__ import annotations

import asyncio
import json

from bot.config import load_settings
from bot.diagnosis.parsers import resolve_step_names
from bot.errors import CommandTimeout, SSHUnreachable
from bot.models import CommandResult, StepEvent, StepPhase, StepStatus
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


HOST = "part host_memory"  # a substring of the multi-part host step's command line
LOGS = "docker\" logs --tail"  # ... of the proxy_logs step


def parts(**bodies: str | int) -> str:
    """A multi-part output: ``name="text"`` parts with rc 0; ``name_rc=N`` sets a part's rc."""
    out = []
    for name, body in bodies.items():
        if name.endswith("_rc"):
            continue
        rc = bodies.get(f"{name}_rc", 0)
        out.append(f"@@qcc-begin {name}\n{body}\n@@qcc-end {name} rc={rc}\n")
    return "".join(out)


HOST_OK = parts(host_memory="Mem: 1 2 3", host_disk="", host_processes="", port_listeners="", deploy_running="",
                deploy_running_rc=1, kernel_oom="", checkout_head="", mysql_logs="",
                ci_run_log="CI run log: not configured (no gh CLI on the host)")
LOG = "2025-12-10T06:19:59.000000000Z panic: boom\n2025-12-10T06:19:59.1Z goroutine 1 [running]:\n"


async def test_one_wave_every_step_reports_in_runbook_order() -> None:
    """Every step runs at once (none waits for another's remote result: peak in flight equals the
    number of remote steps), each part reports under its own id, in runbook order."""
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
                            + ps_line("qcc_test_mysql", "mysql"), HOST: HOST_OK, "": ""})
    ex = RunbookExecutor(rb, concurrency=8, resolver=resolve_step_names)
    results, names = await ex.run("test", ENV, transports(shell))
    assert [r.id for r in results] == rb.reported_ids
    assert names["proxy_container"] == "qcc_test_proxy"
    remote = [s for s in rb.steps if s.transport == "ssh"]
    assert len(remote) <= 8 and peak == len(remote) == len(shell.commands_run)
    assert all(r.status == StepStatus.OK for r in results), [(r.id, r.status, r.error) for r in results]
    assert all(c.startswith("timeout -k 2 ") and " env LC_ALL=C " in c for c in shell.commands_run)


async def test_one_failing_step_keeps_the_others() -> None:
    """A transport error and a timeout on two steps leave every other step's result intact; a
    multi-part step's error is every part's error."""
    rb = load_runbook()
    shell = FakeCommandRunner({
        HOST: SSHUnreachable("cannot reach root@127.0.0.1:22", host="root@127.0.0.1:22"),
        "/version": CommandTimeout("command timed out after 10s", timeout_s=10),
        LOGS: LOG,
        "": "",
    })
    results, _ = await RunbookExecutor(rb).run("test", ENV, transports(shell))
    by_id = {r.id: r for r in results}
    for part in ("host_memory", "host_disk", "kernel_oom"):
        assert by_id[part].status == StepStatus.ERROR and "cannot reach" in (by_id[part].error or "")
    assert by_id["deployed_version"].status == StepStatus.TIMEOUT
    assert by_id["proxy_logs"].status == StepStatus.OK
    assert by_id["schema_nodes"].status == StepStatus.OK


async def test_parts_report_their_own_exit_status() -> None:
    """A part's rc decides its status (its own ok_exit_codes: grep's 1 is ok for deploy_running);
    a part missing from the output failed."""
    rb = load_runbook()
    out = parts(host_memory="Mem:", host_disk="df: boom", host_disk_rc=1, deploy_running="", deploy_running_rc=1)
    results, _ = await RunbookExecutor(rb).run("test", ENV, transports(FakeCommandRunner({HOST: out})),
                                               only={"host_facts"})
    by_id = {r.id: r for r in results}
    assert set(by_id) == {p.id for p in rb.step("host_facts").parts}
    assert by_id["host_memory"].status == StepStatus.OK and by_id["host_memory"].output == "Mem:\n"
    assert by_id["host_disk"].status == StepStatus.FAILED and by_id["host_disk"].error == "exit status 1"
    assert by_id["deploy_running"].status == StepStatus.OK
    assert by_id["kernel_oom"].status == StepStatus.FAILED and "no complete output" in (by_id["kernel_oom"].error or "")


async def test_greps_answer_from_the_one_log_read() -> None:
    """The three seed greps run no remote command: they answer from the proxy_logs output, only
    from reads that succeeded (a missing candidate's error line is not grepped)."""
    rb = load_runbook()
    out = (parts(**{"qcc_test_proxy": LOG}) + "@@qcc-begin qcc_test-proxy-1\nError: No such container\n"
           "@@qcc-end qcc_test-proxy-1 rc=1\n")
    shell = FakeCommandRunner({LOGS: out})
    results, _ = await RunbookExecutor(rb).run("test", ENV, transports(shell),
                                               only={"grep_panic", "grep_migration"})
    by_id = {r.id: r for r in results}
    assert set(by_id) == {"grep_panic", "grep_migration"}
    assert len(shell.commands_run) == 1 and shell.commands_run[0].count("logs --tail") >= 1
    assert by_id["grep_panic"].output == LOG  # the match and its dump line (grep -A)
    assert by_id["grep_migration"].output == ""  # "error" of the failed read is not grepped
    assert by_id["grep_migration"].status == StepStatus.OK


async def test_grep_of_a_failed_log_read_is_skipped_with_the_reason() -> None:
    """When the log read failed the greps are skipped and say why."""
    rb = load_runbook()
    shell = FakeCommandRunner({"": SSHUnreachable("cannot reach root@h:22: refused", host="root@h:22")})
    results, _ = await RunbookExecutor(rb).run("test", ENV, transports(shell), only={"grep_panic"})
    assert [r.id for r in results] == ["grep_panic"]
    assert results[0].status == StepStatus.SKIPPED
    assert results[0].error == "proxy_logs error (cannot reach root@h:22: refused)"


async def test_seed_style_names_resolved_without_labels() -> None:
    """Old compose naming `qcc_test-proxy-1` without labels still resolves the proxy."""
    rb = load_runbook()
    shell = FakeCommandRunner({'ps -a --no-trunc --filter "label': ps_line("qcc_test-proxy-1", None),
                               "": ""})
    _, names = await RunbookExecutor(rb, resolver=resolve_step_names).run(
        "test", ENV, transports(shell), only={"container_status"})
    assert names["proxy_container"] == "qcc_test-proxy-1"


async def test_exit_statuses_map_to_step_status() -> None:
    """No exit status (signal) is a failure, remote `timeout` (124) is a timeout only at the deadline."""
    rb = load_runbook()
    shell = FakeCommandRunner({
        HOST: CommandResult(command="", exit_status=None, signal="KILL"),
        "/version": CommandResult(command="", exit_status=124),
        "": "",
    })
    ex = RunbookExecutor(rb)
    results, _ = await ex.run("test", ENV, transports(shell), only={"host_memory", "deployed_version"})
    by_id = {r.id: r for r in results}
    assert by_id["host_memory"].status == StepStatus.FAILED and "signal KILL" in (by_id["host_memory"].error or "")
    # a 124 that came back before the deadline is a failure, not a timeout
    assert by_id["deployed_version"].status == StepStatus.FAILED


async def test_sql_step_output_is_json_rows() -> None:
    """The schema step stores the rows as JSON and passes the database as a parameter."""
    rb = load_runbook()
    sql = FakeSqlRunner(columns=[{"name": "id", "type": "int"}, {"name": "health_check_method", "type": "varchar"}])
    results, _ = await RunbookExecutor(rb).run("test", ENV, transports(FakeCommandRunner({"": ""}), sql),
                                               only={"schema_nodes"})
    assert json.loads(results[0].output)[1]["name"] == "health_check_method"
    assert "information_schema" in sql.queries[0]


async def test_progress_events_and_callback_errors() -> None:
    """Each step sends QUEUED, RUNNING, FINISHED (with its result); a failing callback is logged
    and ignored, every step still finishes."""
    rb = load_runbook()
    seen: list[StepEvent] = []

    async def bad(event: StepEvent) -> None:
        seen.append(event)
        raise RuntimeError("slack is down")

    results, _ = await RunbookExecutor(rb).run("test", ENV, transports(FakeCommandRunner({HOST: HOST_OK})),
                                               on_progress=bad, only={"host_memory", "host_disk"})
    assert {r.status for r in results} == {StepStatus.OK}
    assert [(e.step_id, e.phase) for e in seen] == [("host_facts", StepPhase.QUEUED), ("host_facts", StepPhase.RUNNING),
                                                    ("host_facts", StepPhase.FINISHED)]
    assert seen[0].result is None and seen[-1].result is not None and seen[-1].result.status == StepStatus.OK
