"""Fidelity of the sandbox stand-in: every docker command of the runbook, run against the real
engine and against the stand-in (``sandbox/qcc_sandbox/bin``) in the same state, must mean the same
to the bot's parsers.

Pairs of (real state, sandbox scenario): a serving stack (``healthy``), a proxy that exited 1
beside a healthy MySQL (``migration_failed``), and a proxy left ``Created`` because another
container holds port 8001 (``port_conflict``). Compared per compose service (times, ids and
sizes differ by nature and are ignored): ``ps`` state and status shape (``Exited (1)``,
``Up (healthy)``), inspect status/running/restarting/exit code/OOM/error-set, stats
availability (a stopped container: Docker prints ``0.00%`` and ``0B / 0B``, not ``--``).
Differences found and fixed in the stand-in are listed in README ("Real Docker underneath").
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.diagnosis.parsers import PARSERS
from bot.runbook.loader import load_runbook
from qcc_sandbox import SandboxDir
from tests.realengine.host import PROJECT, PROXY_PORT, RealHost, docker
from tests.realengine.test_matrix import _column_missing, _serving

pytestmark = [pytest.mark.docker]

DOCKER_PARSERS = ("docker_ps", "docker_inspect", "container_resources")


def _docker_steps() -> list[Any]:
    """Runbook steps that run docker and are read by a docker parser (ids may change; parsers don't)."""
    return [s for s in load_runbook().steps if getattr(s, "parser", None) in DOCKER_PARSERS
            and getattr(s, "script", None) and "$docker" in s.script]


def _run(script: str, env: dict[str, str], proxy: str, cgroup_root: str) -> str:
    variables = {"docker": "docker", "compose_project": PROJECT, "proxy_port": str(PROXY_PORT),
                 "proxy_container": proxy, "log_tail": "100", "cgroup_root": cgroup_root}
    prefix = " ".join(f"{k}='{v}';" for k, v in variables.items())
    res = subprocess.run(["bash", "-c", f"{prefix} {script}"], capture_output=True, text=True, env=env,
                         timeout=60, check=False)
    return res.stdout


def _status_shape(status: str) -> str:
    shape = re.sub(r"Less than a second( ago)?", "", status)
    shape = re.sub(r"\b(About )?(an?|\d+) (seconds?|minutes?|hours?|days?|weeks?|months?)( ago)?", "", shape)
    return re.sub(r"\s+", " ", shape).strip()


def _view(outputs: dict[str, str]) -> dict[str, Any]:
    """What the parsers make of the docker steps, per compose service, without volatile values."""
    view: dict[str, Any] = {}
    service_of: dict[str, str] = {}
    for parser, text in outputs.items():
        if parser != "docker_ps":
            continue
        for c in PARSERS[parser](text):
            svc = c.compose_service or c.name
            service_of[c.name] = svc
            service_of[c.id] = svc  # cgroup rows of the resource step carry the id only
            view.setdefault(f"ps:{svc}", (c.state, _status_shape(c.status)))
    for parser, text in outputs.items():
        for item in PARSERS[parser](text) if parser != "docker_ps" else []:
            svc = service_of.get(item.name or item.id, item.name)
            if parser == "docker_inspect":
                view[f"inspect:{svc}"] = (item.status, item.running, item.restarting, item.exit_code,
                                          item.oom_killed, bool(item.error))
            else:
                view[f"stats:{svc}"] = (item.cpu_pct is None, item.mem_usage is None)
    return view


def _outputs(env: dict[str, str], proxy: str, cgroup_root: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for step in _docker_steps():
        if step.parser == "docker_ps" and "publish=" in step.script:
            continue  # the publishers view is covered by the port_conflict pair's ps rows
        out[step.parser] = _run(step.script, env, proxy, cgroup_root)
    return out


def _sandbox_view(tmp_path: Path, scenario: str) -> dict[str, Any]:
    box = SandboxDir(tmp_path / f"sbx-{scenario}")
    sc = box.load(scenario)
    proxy = sc.services["proxy"].container_name or f"{sc.compose.project}-proxy-1"
    return _view(_outputs(box.env({"PATH": "/usr/bin:/bin"}), proxy, str(box.cgroup_root)))


def _real_view(host: RealHost) -> dict[str, Any]:
    import os

    return _view(_outputs(dict(os.environ), "qcc_test_proxy", "/sys/fs/cgroup"))


def _port_squatter(host: RealHost) -> None:
    docker("run", "-d", "--name", "qcc_proxy_debug", "--label", "qcc.realengine=1", "-p", "127.0.0.1:8001:80",
           host.images.base, "httpd", "-f", "-p", "80")
    host.up("--build", check=False)


SETUPS = {"healthy": _serving, "migration_failed": _column_missing, "port_conflict": _port_squatter}


@pytest.mark.parametrize("scenario", sorted(SETUPS))
def test_stand_in_matches_real_engine(real_host: RealHost, tmp_path: Path, scenario: str) -> None:
    """The parsers see the same per-service states from the stand-in as from the real engine."""
    try:
        SETUPS[scenario](real_host)
        real = _real_view(real_host)
    finally:
        docker("rm", "-f", "qcc_proxy_debug", check=False)
    fake = _sandbox_view(tmp_path, scenario)
    keys = sorted(k for k in real if k in fake and not k.endswith(":qcc_proxy_debug"))
    diffs = {k: {"real": real[k], "stand-in": fake[k]} for k in keys if real[k] != fake[k]}
    assert keys, f"no common services: real {sorted(real)}, stand-in {sorted(fake)}"
    assert not diffs, f"stand-in differs from the real engine in {scenario}: {diffs}"
