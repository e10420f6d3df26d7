"""Fixtures of the real-engine suite (marker ``docker``): a real Docker engine, local images,
a git checkout of the ``qcc_test`` stack, and a real sshd whose sessions reach the engine.

Session fixtures
----------------
``docker_engine``  the engine answers (else: FAIL when ``$CI`` is true, skip otherwise). Records
                   what existed before the run; at the end removes every container, network,
                   volume and image created since, and asserts none is left.
``images``         :class:`tests.realengine.images.Images`, built once per run (content-hash tags).
``engine_sshd``    an sshd whose sessions get the host's PATH and a HOME holding the compose plugin.
``zh_sshd``        the same with ``LANG=zh_CN.UTF-8`` (a host whose language is Chinese).

Function fixture ``real_host``: a fresh checkout and an empty project; the project is taken
down after the test, whatever happened.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realengine.host import RealHost, docker
from tests.realengine.images import Images, ensure_images
from tests.realengine.outcomes import OUTCOMES

SESSION_PATH = "/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"
COMPOSE_PLUGIN = Path.home() / ".docker/cli-plugins/docker-compose"


def _ids(kind: str) -> set[str]:
    args = {
        "container": ["ps", "-aq", "--no-trunc"],
        "image": ["images", "-aq", "--no-trunc"],
        "network": ["network", "ls", "-q", "--no-trunc"],
        "volume": ["volume", "ls", "-q"],
    }[kind]
    return set(docker(*args, check=False).stdout.split())


def _remove(kind: str, ids: set[str]) -> None:
    if not ids:
        return
    cmd = {"container": ["rm", "-f", "-v"], "image": ["rmi", "-f"], "network": ["network", "rm"],
           "volume": ["volume", "rm", "-f"]}[kind]
    docker(*cmd, *sorted(ids), check=False, timeout_s=300)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[dict[str, set[str]]]:
    """The engine answers; everything created during the run is removed (and checked) at the end."""
    res = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                         text=True, check=False)
    if res.returncode != 0:
        msg = ("no Docker engine answers on /var/run/docker.sock ("
               f"{res.stderr.strip()[:300]}); `make docker-engine` installs and starts one")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
    if compose.returncode != 0:
        pytest.fail(f"docker compose plugin missing ({compose.stderr.strip()[:200]}); run `make docker-engine`",
                    pytrace=False)
    before = {kind: _ids(kind) for kind in ("container", "image", "network", "volume")}
    try:
        yield before
    finally:
        for kind in ("container", "network", "volume", "image"):
            _remove(kind, _ids(kind) - before[kind])
        left = {kind: sorted(_ids(kind) - before[kind]) for kind in ("container", "image", "network", "volume")}
        OUTCOMES.containers_left = len(left["container"])
        OUTCOMES.leftovers = {k: v for k, v in left.items() if v}


@pytest.fixture(scope="session")
def images(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Images:
    """The local base and MariaDB images and the compiled stand-in (once per run)."""
    built, _tags = ensure_images(tmp_path_factory.mktemp("ccproxy"))
    return built


def _start_engine_sshd(factory: Any, **extra_env: str) -> Any:
    server = factory.start(set_env={"PATH": SESSION_PATH, **extra_env})
    plugins = server.home / ".docker/cli-plugins"
    plugins.mkdir(parents=True)
    (plugins / "docker-compose").symlink_to(COMPOSE_PLUGIN.resolve())
    return server


@pytest.fixture(scope="session")
def engine_sshd(sshd_factory: Any, docker_engine: Any) -> Any:
    """A real sshd whose sessions run the host's docker (default socket) and compose plugin."""
    return _start_engine_sshd(sshd_factory)


@pytest.fixture(scope="session")
def zh_sshd(sshd_factory: Any, docker_engine: Any) -> Any:
    """Like ``engine_sshd``, with ``LANG=zh_CN.UTF-8`` in every session."""
    return _start_engine_sshd(sshd_factory, LANG="zh_CN.UTF-8")


@pytest.fixture
def real_host(images: Images, tmp_path: Path) -> Iterator[RealHost]:
    """A fresh checkout of the stack (nothing running yet); taken down after the test."""
    host = RealHost(tmp_path / "qcc_plus", images)
    host.down()
    host.create()
    try:
        yield host
    finally:
        host.down()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the real-engine summary line whenever docker tests ran."""
    if not OUTCOMES.ran:
        return
    terminalreporter.section("real engine")
    for line in OUTCOMES.summary_lines():
        terminalreporter.write_line(line)
