"""The resource-usage step reads cgroup files instead of `docker stats`: checked against the real
engine's own `docker stats --no-stream` for the same containers (issue 11: `docker stats` waits for
two samples of the daemon's collector, 2-3 s, and was the whole diagnosis's critical path).

Two throwaway containers from the local busybox image: one spinning a CPU under a 64 MiB limit,
one idle holding 8 MiB (a file in its /dev/shm tmpfs), no limit (docker then shows the host's memory as the limit).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.diagnosis.parsers import parse_docker_stats, parse_resource_usage
from bot.runbook.commands import render_script
from bot.runbook.loader import load_runbook
from bot.runbook.steps import StepId
from tests.realengine.host import docker
from tests.realengine.images import Images

pytestmark = [pytest.mark.docker]

LABEL = "qcc.realengine=1"
MIB = 1024 * 1024


@pytest.fixture
def two_containers(images: Images) -> Iterator[dict[str, str]]:
    """``{"busy": id, "idle": id}``, removed afterwards."""
    names = {"busy": "qcc_res_busy", "idle": "qcc_res_idle"}
    docker("rm", "-f", *names.values(), check=False)
    try:
        docker("run", "-d", "--name", names["busy"], "--label", LABEL, "--memory", "64m", images.base,
               "sh", "-c", "while :; do :; done")
        docker("run", "-d", "--name", names["idle"], "--label", LABEL, images.base,
               "sh", "-c", "dd if=/dev/zero of=/dev/shm/hold bs=1M count=8 2>/dev/null; sleep 600")
        ids = {k: docker("inspect", "-f", "{{.Id}}", n).stdout.strip() for k, n in names.items()}
        time.sleep(2)  # the idle one has built its string, the busy one is at full speed
        yield ids
    finally:
        docker("rm", "-f", *names.values(), check=False)


def _step_script(cgroup_root: str) -> str:
    step = next(s for s in load_runbook().steps if s.id == StepId.RESOURCE_USAGE)
    assert step.script is not None
    return render_script(step.script, {"docker": "docker", "cgroup_root": cgroup_root}, timeout_s=step.timeout_s)


def _run(command: str) -> tuple[str, float]:
    t0 = time.monotonic()
    res = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout, time.monotonic() - t0


def test_cgroup_read_agrees_with_docker_stats(two_containers: dict[str, str]) -> None:
    """Same limit, memory within 1 MiB, same pids, busy vs idle CPU alike - without the daemon."""
    ours_text, ours_s = _run(_step_script("/sys/fs/cgroup"))
    stats_text, stats_s = _run("docker stats --no-stream --all --format '{{json .}}'")
    ours = {r.id: r for r in parse_resource_usage(ours_text)}
    theirs = {r.id: r for r in parse_docker_stats(stats_text)}
    print(f"resource step {ours_s:.2f} s, docker stats {stats_s:.2f} s")  # noqa: T201 - shown with -s
    for key, cid in two_containers.items():
        mine = ours.get(cid)
        assert mine is not None, f"{key} container {cid[:12]} missing from the cgroup read:\n{ours_text}"
        ref = theirs[cid[:12]]
        assert mine.source == "cgroup files" and ref.source == "docker stats"
        assert mine.mem_usage is not None and ref.mem_usage is not None
        assert abs(mine.mem_usage - ref.mem_usage) <= MIB, (key, mine.raw, ref.raw)
        assert mine.mem_limit is not None and ref.mem_limit is not None
        assert abs(mine.mem_limit - ref.mem_limit) <= ref.mem_limit * 0.005, (key, mine.raw, ref.raw)
        assert mine.pids == ref.pids, (key, mine.pids, ref.pids)
    busy, idle = ours[two_containers["busy"]], ours[two_containers["idle"]]
    ref_busy, ref_idle = theirs[two_containers["busy"][:12]], theirs[two_containers["idle"][:12]]
    assert busy.mem_limit == 64 * MIB and idle.mem_usage is not None and idle.mem_usage > 7 * MIB
    # a spinning shell on a shared 2-core machine: both readers see it busy, the sleeper idle
    assert busy.cpu_pct is not None and ref_busy.cpu_pct is not None
    assert busy.cpu_pct >= 30 and ref_busy.cpu_pct >= 30, (busy.raw, ref_busy.raw)
    assert idle.cpu_pct is not None and idle.cpu_pct < 5 and (ref_idle.cpu_pct or 0) < 5


def test_no_container_cgroup_falls_back_to_docker_stats(two_containers: dict[str, Any]) -> None:
    """Where no container cgroup exists under `cgroup_root` (another layout, a rootless engine),
    the step prints `docker stats`, and the same parser reads it."""
    text, _ = _run(_step_script("/nonexistent-cgroup-root"))
    rows = {r.name: r for r in parse_resource_usage(text)}
    assert {"qcc_res_busy", "qcc_res_idle"} <= set(rows)
    assert rows["qcc_res_busy"].source == "docker stats" and rows["qcc_res_busy"].mem_limit == 64 * MIB
