"""Run the bot against the real host and judge its answer.

:func:`diagnose` writes the bot's ``qcc.yaml`` (environment ``test``: the engine sshd, the
checkout, MySQL at 127.0.0.1:3308 as ``qcc``), runs ``qcc-bot diagnose --env test --format json
--save-bundle tests/realengine/captures/<state>``, and scrubs this run's random passwords
from the capture. :func:`expect` checks the top cause and that a deciding line is quoted
in its evidence, records the outcome for the summary line, and fails with the diagnosis and
the container states seen.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.harness import CliRun, run_cli
from tests.realengine.host import COMPOSE_FILE, MYSQL_PORT, PROJECT, PROXY_PORT, RealHost
from tests.realengine.outcomes import OUTCOMES

CAPTURES = Path(__file__).resolve().parent / "captures"
PASSWORD_ENV = "QCC_TEST_MYSQL_PASSWORD"
SCRUBBED = "<test-password>"


def docker_root() -> str:
    """The engine's data root (``docker info``), for the bot's disk step."""
    res = subprocess.run(["docker", "info", "--format", "{{.DockerRootDir}}"], capture_output=True, text=True,
                         check=False)
    return res.stdout.strip() or "/var/lib/docker"


def write_config(host: RealHost, sshd: Any, workdir: Path) -> Path:
    """The bot's ``qcc.yaml`` for this host; returns its path."""
    env = {
        "ssh": {"host": sshd.host, "port": sshd.port, "user": sshd.user, "key_file": str(sshd.key_file),
                "known_hosts": str(sshd.known_hosts), "connect_timeout_s": 5.0},
        "compose_project": PROJECT,
        "compose_file": COMPOSE_FILE,
        "workdir": str(host.checkout),
        "proxy_service": "proxy",
        "mysql_service": "mysql",
        "proxy_port": PROXY_PORT,
        "docker_root": docker_root(),
        "mysql": {"host": "127.0.0.1", "port": MYSQL_PORT, "user": "qcc", "password_env": PASSWORD_ENV,
                  "database": "qcc_proxy", "connect_timeout_s": 3.0},
    }
    path = workdir / "qcc.yaml"
    path.write_text(yaml.safe_dump({"environments": {"test": env},
                                    "state_url": f"sqlite+aiosqlite:///{workdir}/state.db"}))
    return path


# The captures keep, of the machine-wide process and listener lists, only the stack's own
# lines: the test machine is shared, and its other processes are none of the repo's business.
KEEP_COMMS = {"ccproxy", "mariadbd", "dockerd", "containerd", "containerd-shim", "docker-proxy", "httpd"}
KEEP_PORTS = (":8001 ", ":8000 ", ":3308 ", ":3306 ")


def _keep_process(line: str) -> bool:
    words = line.split()
    if len(words) < 7 or not words[0].isdigit():
        return True  # the header, or a line the parser skips anyway
    return words[5] in KEEP_COMMS or "http.server 8001" in line


def _filter_host_lists(path: Path, text: str) -> str:
    lines = text.splitlines(keepends=True)
    if path.name.startswith("host_processes"):
        return "".join(ln for ln in lines if _keep_process(ln))
    if path.name.startswith("port_listeners"):
        return "".join(ln for i, ln in enumerate(lines) if i == 0 or any(p in ln for p in KEEP_PORTS))
    return text


def _scrub(directory: Path, secrets: list[str]) -> None:
    for f in directory.rglob("*"):
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        new = _filter_host_lists(f, text)
        for s in secrets:
            if s:
                new = new.replace(s, SCRUBBED)
        if new != text:
            f.write_text(new)


def diagnose(host: RealHost, sshd: Any, workdir: Path, state: str) -> tuple[dict[str, Any], CliRun]:
    """Run the bot's diagnosis of the host now; the JSON report and the run."""
    config = write_config(host, sshd, workdir)
    capture = CAPTURES / state
    if capture.exists():
        shutil.rmtree(capture)
    capture.parent.mkdir(parents=True, exist_ok=True)
    args = ["diagnose", "--env", "test", "--format", "json", "--save-bundle", str(capture), "--config", str(config)]
    run = run_cli(args, cwd=workdir, env={PASSWORD_ENV: host.db_password})
    if run.returncode < 0:
        # Killed by a signal from outside (a shared machine: another session's broad kill); once more.
        shutil.rmtree(capture, ignore_errors=True)
        run = run_cli(args, cwd=workdir, env={PASSWORD_ENV: host.db_password})
    if capture.exists():
        _scrub(capture, [host.db_password, host.admin_password])
    assert run.returncode == 0, run.describe()
    return run.json(), run


def causes_text(report: dict[str, Any]) -> str:
    """The causes of a report, one per line with confidence and evidence."""
    lines = []
    for c in report.get("causes", []):
        lines.append(f"- {c.get('id')} ({c.get('confidence')}): {c.get('title')}")
        lines += [f"    | {e}" for e in c.get("evidence", [])[:6]]
    return "\n".join(lines) or "(no causes)"


def said(report: dict[str, Any]) -> str:
    """Short form of what the bot said: top cause ids with confidence."""
    return ", ".join(f"{c.get('id')} {c.get('confidence')}" for c in report.get("causes", [])[:3]) or "nothing"


def expect(state: str, report: dict[str, Any], host: RealHost, cause: str, *needles: str,
           also: str | None = None) -> None:
    """The top cause is ``cause`` and its evidence quotes one of ``needles`` (and cause ``also``
    is listed too, when given); recorded either way."""
    causes = report.get("causes", [])
    top = causes[0] if causes else {}
    evidence = "\n".join(top.get("evidence", []))
    ok = top.get("id") == cause and (not needles or any(n in evidence for n in needles))
    ok = ok and (also is None or any(c.get("id") == also for c in causes))
    OUTCOMES.states[state] = ok
    if not ok:
        OUTCOMES.said[state] = said(report)
    assert ok, (f"state {state}: expected top cause {cause!r} quoting one of {needles!r}\n"
                f"bot said:\n{causes_text(report)}\n{host.describe()}")


def kernel_oom_lines() -> list[str]:
    """Kernel OOM-killer lines now in dmesg (they stay until the machine reboots)."""
    res = subprocess.run(["dmesg"], capture_output=True, text=True, check=False)
    return [ln for ln in res.stdout.splitlines() if "Killed process" in ln or "out of memory" in ln.lower()]


def dump(report: dict[str, Any]) -> str:
    """The report as indented JSON (for debugging a state)."""
    return json.dumps(report, indent=1)[:6000]
