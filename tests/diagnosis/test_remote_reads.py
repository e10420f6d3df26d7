"""Issue 10.5 / 11 on the parsing side: one-off containers, ISO kernel times, per-candidate log reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.facts import collect_facts
from bot.diagnosis.logparse import parse_kernel_oom
from bot.diagnosis.parsers import parse_docker_log_parts, parse_docker_ps, resolve_container
from bot.models import StepResult, StepStatus
from tests.diagnosis.scenario_loader import DEFAULT_CONTEXT

LABELS = "com.docker.compose.project=qcc_test,com.docker.compose.service=proxy"


def _row(name: str, labels: str) -> str:
    return json.dumps({"ID": name, "Names": name, "State": "running", "Status": "Up 1 minute", "Labels": labels})


def _ctx() -> AnalysisContext:
    return AnalysisContext(**{**DEFAULT_CONTEXT, "captured_at": datetime(2025, 12, 10, 6, 20, tzinfo=UTC)})


def test_a_compose_one_off_container_is_never_the_proxy() -> None:
    """`docker compose run proxy` leaves a container with the proxy's labels and oneoff=True: the
    service's own container is picked, and with only the one-off there is no proxy."""
    oneoff = _row("qcc_test-proxy-run-1a2b", LABELS + ",com.docker.compose.oneoff=True")
    real = _row("qcc_test_proxy", LABELS + ",com.docker.compose.oneoff=False")
    picked = resolve_container(parse_docker_ps(oneoff + "\n" + real), "qcc_test", "proxy")
    assert picked is not None and picked.name == "qcc_test_proxy"
    assert resolve_container(parse_docker_ps(oneoff), "qcc_test", "proxy") is None


def test_kernel_lines_with_iso_times_from_dmesg_and_journalctl() -> None:
    """`dmesg --time-format=iso` and `journalctl -k -o short-iso` lines are dated (UTC), like -T ones."""
    text = ("2025-12-10T06:19:58,123456+00:00 Out of memory: Killed process 4242 (ccproxy) total-vm:1kB\n"
            "2025-12-10T14:19:58+0800 host kernel: Memory cgroup out of memory: Killed process 77 (node) x\n"
            "[Wed Dec 10 06:19:58 2025] Out of memory: Killed process 99 (mysqld) total-vm:1kB\n")
    events = parse_kernel_oom(text, year=2025)
    when = datetime(2025, 12, 10, 6, 19, 58, tzinfo=UTC)
    assert [(e.pid, e.when) for e in events] == [(4242, when), (77, when), (99, when)]


def test_the_log_read_of_the_resolved_proxy_is_the_log() -> None:
    """proxy_logs reads every candidate name; the facts keep the read of the container `docker ps`
    labels as the proxy, never a failed read's error text."""
    output = ("@@qcc-begin qcc_test_proxy\n2025-12-10T06:19:00.000000000Z listening on :8001\n"
              "@@qcc-end qcc_test_proxy rc=0\n"
              "@@qcc-begin qcc_test-proxy-1\nError response from daemon: No such container: qcc_test-proxy-1\n"
              "@@qcc-end qcc_test-proxy-1 rc=1\n")
    reads = parse_docker_log_parts(output)
    assert [(r.name, r.ok, len(r.lines)) for r in reads] == [("qcc_test_proxy", True, 1),
                                                             ("qcc_test-proxy-1", False, 0)]
    steps = [StepResult(id="container_status", title="s", status=StepStatus.OK, output=_row("qcc_test_proxy", LABELS)),
             StepResult(id="proxy_logs", title="l", status=StepStatus.OK, output=output)]
    facts = collect_facts(steps, _ctx(), strict=True)
    assert facts.log is not None and [ln.message for ln in facts.log] == ["listening on :8001"]
    assert facts.log_text is not None and "No such container" not in facts.log_text


def test_a_container_gone_between_ps_and_inspect_keeps_the_others() -> None:
    """`docker inspect` exits 1 when one id vanished but prints the others: the step is ok (exit 1
    is in its ok codes) and the remaining states are facts."""
    from bot.runbook.loader import load_runbook

    assert 1 in load_runbook().step("container_inspect").ok_exit_codes
    obj = {"Id": "x", "Name": "/qcc_test_proxy", "State": {"Status": "running", "Running": True},
           "Config": {"Labels": {"com.docker.compose.project": "qcc_test", "com.docker.compose.service": "proxy"}}}
    steps = [StepResult(id="container_inspect", title="i", status=StepStatus.OK, exit_status=1,
                        output=json.dumps([obj]), stderr="Error: No such object: 0123abcd")]
    facts = collect_facts(steps, _ctx(), strict=True)
    assert facts.proxy_state is not None and facts.proxy_state.name == "qcc_test_proxy"
