"""A host shaped like qcc_plus's test server, on the real Docker engine of this machine.

:class:`RealHost` owns one git checkout (a temp directory with ``git init`` and commits)
holding ``docker-compose.test.yml``, a ``Dockerfile`` ``FROM`` the local base image, ``.env``
(DSN, passwords, knobs; not committed) and ``bin/`` (the compiled stand-in, not committed).
Its methods run ``docker compose -p qcc_test`` there, wait for container states, talk to the
MariaDB container as ``admin`` over 127.0.0.1:3308, and describe what the engine shows (for
failure messages).
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.realengine.images import REALHOST, Images

PROJECT = "qcc_test"
COMPOSE_FILE = "docker-compose.test.yml"
PROXY = "qcc_test_proxy"
MYSQL = "qcc_test_mysql"
MYSQL_PORT = 3308
PROXY_PORT = 8001


class HostError(RuntimeError):
    """A docker/compose/git command of the fixture failed (message holds its output)."""


def run(argv: list[str], *, cwd: Path | None = None, check: bool = True, timeout_s: float = 180.0,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command; output decoded; raise :class:`HostError` on a non-zero exit when ``check``."""
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, errors="replace",
                         timeout=timeout_s, check=False, env=env, stdin=subprocess.DEVNULL)
    if check and res.returncode != 0:
        raise HostError(f"{' '.join(argv)} -> {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def docker(*args: str, check: bool = True, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``docker ARGS``."""
    return run(["docker", *args], check=check, timeout_s=timeout_s)


@dataclass
class RealHost:
    """One checkout of the test stack; ``env`` is what ``.env`` holds."""

    checkout: Path
    images: Images
    db_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    env: dict[str, str] = field(default_factory=dict)

    # ---------------------------------------------------------------- checkout
    def create(self) -> None:
        """Make the git checkout: two commits (v1.9.3, v1.9.4), compose file, Dockerfile, .env."""
        if self.checkout.exists():
            shutil.rmtree(self.checkout)
        self.checkout.mkdir(parents=True)
        (self.checkout / "bin").mkdir()
        shutil.copy2(self.images.ccproxy, self.checkout / "bin/ccproxy")
        shutil.copy2(REALHOST / "proxy/entrypoint.sh", self.checkout / "bin/entrypoint.sh")
        shutil.copy2(REALHOST / "checkout" / COMPOSE_FILE, self.checkout / COMPOSE_FILE)
        shutil.copy2(REALHOST / "checkout/gitignore", self.checkout / ".gitignore")
        (self.checkout / "Dockerfile").write_text(
            (REALHOST / "checkout/Dockerfile").read_text().replace("@BASE_IMAGE@", self.images.base))
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "dev@example.test")
        self.git("config", "user.name", "qcc dev")
        (self.checkout / "VERSION").write_text("v1.9.3\n")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "release v1.9.3")
        (self.checkout / "VERSION").write_text("v1.9.4\n")
        self.git("commit", "-q", "-am", "v1.9.4: nodes.health_check_model migration")
        self.reset_env()

    def git(self, *args: str) -> str:
        """``git -C checkout ARGS`` (stdout)."""
        return run(["git", "-C", str(self.checkout), *args]).stdout

    def head(self) -> str:
        """The checkout's HEAD commit (full SHA)."""
        return self.git("rev-parse", "HEAD").strip()

    def commit(self, message: str, files: dict[str, str]) -> str:
        """Write ``files`` (path -> text), commit them, return the new HEAD."""
        for rel, text in files.items():
            (self.checkout / rel).write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.head()

    def dsn(self, *, password: str | None = None, host: str = "mysql", port: int = 3306) -> str:
        """The proxy's DSN (``qcc:<pw>@tcp(host:port)/qcc_proxy?parseTime=true``)."""
        pw = self.db_password if password is None else password
        return f"qcc:{pw}@tcp({host}:{port})/qcc_proxy?parseTime=true"

    def reset_env(self) -> None:
        """``.env`` back to the healthy defaults."""
        self.env = {
            "PROXY_MYSQL_DSN": self.dsn(),
            "QCC_DB_PASSWORD": self.db_password,
            "QCC_DB_ADMIN_PASSWORD": self.admin_password,
            "QCC_MYSQL_IMAGE": self.images.mysql,
            "DB_PING_INTERVAL": "2s",
        }
        self.write_env()

    def write_env(self, **changes: str) -> None:
        """Update and write ``.env``."""
        self.env.update(changes)
        (self.checkout / ".env").write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))

    # ---------------------------------------------------------------- compose
    def compose(self, *args: str, check: bool = True, timeout_s: float = 180.0) -> subprocess.CompletedProcess[str]:
        """``docker compose -p qcc_test -f docker-compose.test.yml ARGS`` in the checkout."""
        return run(["docker", "compose", "-p", PROJECT, "-f", COMPOSE_FILE, *args], cwd=self.checkout,
                   check=check, timeout_s=timeout_s)

    def down(self) -> None:
        """Remove the project's containers and network (images stay for the next state)."""
        if self.checkout.exists():
            self.compose("down", "--remove-orphans", "-t", "1", check=False, timeout_s=120)
        ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}", check=False).stdout.split()
        docker("rm", "-f", "-v", PROXY, MYSQL, *ids, check=False)
        docker("network", "rm", f"{PROJECT}_default", check=False)

    def up(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``up -d ARGS`` (waits for MySQL healthy because of ``depends_on``)."""
        return self.compose("up", "-d", *args, check=check, timeout_s=240)

    # ---------------------------------------------------------------- engine state
    def inspect(self, name: str) -> dict[str, Any] | None:
        """``docker inspect NAME`` (None when there is no such container)."""
        res = docker("inspect", name, check=False)
        if res.returncode != 0:
            return None
        data = json.loads(res.stdout)
        return data[0] if data else None

    def state(self, name: str) -> dict[str, Any]:
        """The container's ``State`` (empty when it does not exist)."""
        info = self.inspect(name)
        return dict(info["State"]) if info else {}

    def logs(self, name: str = PROXY) -> str:
        """``docker logs --timestamps NAME`` (both streams)."""
        res = docker("logs", "--timestamps", name, check=False)
        return res.stdout + res.stderr

    def wait(self, predicate: Any, what: str, timeout_s: float = 60.0, interval_s: float = 0.3) -> None:
        """Poll ``predicate()`` until true; raise :class:`HostError` with the engine's view."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(interval_s)
        raise HostError(f"timed out waiting for {what}\n{self.describe()}")

    def wait_exited(self, name: str = PROXY, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until ``name`` has exited; its State."""
        self.wait(lambda: self.state(name).get("Status") == "exited", f"{name} exited", timeout_s)
        return self.state(name)

    def wait_log(self, needle: str, name: str = PROXY, timeout_s: float = 60.0) -> None:
        """Wait until ``needle`` appears in the container's log."""
        self.wait(lambda: needle in self.logs(name), f"{needle!r} in the log of {name}", timeout_s)

    def http_get(self, path: str, port: int = PROXY_PORT) -> tuple[int, str] | None:
        """GET http://127.0.0.1:PORT/PATH -> (status, body), or None when nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
                return resp.status, resp.read().decode(errors="replace")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def wait_serving(self, timeout_s: float = 60.0) -> None:
        """Wait until the proxy logged its listening line and ``/version`` answers."""
        self.wait_log("Claude Code proxy listening on", timeout_s=timeout_s)
        self.wait(lambda: self.http_get("/version") is not None, "/version answering", timeout_s)

    def describe(self) -> str:
        """What the engine shows: ``docker ps -a`` of the project and the proxy's log tail."""
        ps = docker("ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}",
                    "--format", "{{.Names}}\t{{.Status}}\t{{.Ports}}", check=False).stdout
        proxy_log = "\n".join(self.logs(PROXY).splitlines()[-15:])
        return f"containers:\n{ps}\nproxy log tail:\n{proxy_log}"

    # ---------------------------------------------------------------- database
    def sql(self, *statements: str) -> list[tuple[Any, ...]]:
        """Run statements as ``admin`` on 127.0.0.1:3308 (database qcc_proxy); rows of the last."""
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=MYSQL_PORT, user="admin", password=self.admin_password,
                               database="qcc_proxy", autocommit=True, connect_timeout=5)
        try:
            rows: list[tuple[Any, ...]] = []
            with conn.cursor() as cur:
                for stmt in statements:
                    cur.execute(stmt)
                    rows = list(cur.fetchall())
            return rows
        finally:
            conn.close()

    def connect_admin(self) -> Any:
        """An open pymysql connection as ``admin`` (the caller closes it): to hold locks."""
        import pymysql

        return pymysql.connect(host="127.0.0.1", port=MYSQL_PORT, user="admin", password=self.admin_password,
                               database="qcc_proxy", autocommit=False, connect_timeout=5)

    def up_mysql(self) -> None:
        """Start only the MySQL service and wait until it is healthy."""
        self.compose("up", "-d", "--wait", "mysql", timeout_s=120)
