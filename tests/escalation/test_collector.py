"""The escalation archive: complete proxy log fetched in bounded chunks, CI log, redaction."""

from __future__ import annotations

import io
import re
import tarfile
import zipfile

import pytest
from aiohttp import web

from bot.app import lifespan
from bot.config import load_settings
from bot.escalation import EscalationCollector
from bot.models import CommandResult
from bot.transports.base import EnvironmentTransports
from bot.transports.fake import FakeSqlRunner, FakeTransportProvider
from tests.slack.scenario import COLUMNS, MYSQL_PASSWORD, StatefulRunner

GH_TOKEN = "ghp_FAKEGITHUBTOKENSECRET1234"
LINES = 25_000


class LogHost(StatefulRunner):
    """A host whose proxy log has 25,000 lines (one in 1,000 leaks the MySQL password)."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[tuple[int, int]] = []
        self.removed = False

    @staticmethod
    def line(i: int) -> str:
        leak = f" password={MYSQL_PASSWORD}" if i % 1000 == 0 else ""
        return f"2025-12-10T06:14:01.{i:09d}Z 2025/12/10 06:14:01 request {i} ok{leak}"

    async def run(self, command: str, *, timeout_s: float, max_output_bytes: int = 8 << 20) -> CommandResult:
        self.commands_run.append(command)
        if "mktemp" in command:
            assert "logs --timestamps qcc_test_proxy" in command
            return CommandResult(command=command, exit_status=0, stdout=f"/tmp/qcc-escalate.x1 0 {LINES}\n")
        m = re.match(r"sed -n '(\d+),(\d+)p;\d+q' /tmp/qcc-escalate.x1$", command)
        if m:
            a, b = int(m.group(1)), min(int(m.group(2)), LINES)
            self.chunks.append((a, b))
            out = "".join(self.line(i) + "\n" for i in range(a, b + 1)) if a <= LINES else ""
            return CommandResult(command=command, exit_status=0, stdout=out)
        if command.startswith("rm -f /tmp/qcc-escalate.x1"):
            self.removed = True
            return CommandResult(command=command, exit_status=0)
        self.commands_run.pop()
        return await super().run(command, timeout_s=timeout_s, max_output_bytes=max_output_bytes)


@pytest.fixture
async def github():
    """A fake GitHub API: the latest run, and its log zip behind a redirect."""
    seen: list[str] = []

    async def runs(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"workflow_runs": [{"id": 42, "name": "deploy-test", "conclusion": "failure",
                                                     "head_sha": "9f8e7d6", "html_url": "https://gh/run/42"}]})

    async def logs(request: web.Request) -> web.Response:
        raise web.HTTPFound("/download/42.zip")

    async def download(request: web.Request) -> web.Response:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("deploy/1_Deploy.txt", "Run scripts/deploy-server.sh test\n"
                        f"Authorization: token {GH_TOKEN}\nhealth check failed after 60s\n")
        return web.Response(body=buf.getvalue(), content_type="application/zip")

    app = web.Application()
    app.add_routes([web.get("/repos/acme/qcc_plus/actions/runs", runs),
                    web.get("/repos/acme/qcc_plus/actions/runs/42/logs", logs), web.get("/download/42.zip",
                                                                                        download)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


def _settings(github_url: str | None):
    env = {"ssh": {"host": "127.0.0.1", "user": "root"}, "compose_project": "qcc_test",
           "mysql": {"user": "qcc", "password_env": "QCC_TEST_MYSQL_PASSWORD", "database": "qcc_proxy"},
           "ci_repo": "acme/qcc_plus"}
    data = {"environments": {"test": env}}
    if github_url:
        data["github"] = {"api_url": github_url}
    return load_settings(data=data, env={"GITHUB_TOKEN": GH_TOKEN} if github_url else {})


async def test_archive_has_complete_redacted_log_and_ci_run(tmp_path, github, monkeypatch):
    """The archive holds all 25,000 proxy log lines (fetched in bounded chunks, the remote temp
    file removed), the CI run's log from the GitHub API, resources and a README; no configured
    secret (MySQL password, GitHub token) is in any member."""
    monkeypatch.setenv("QCC_TEST_MYSQL_PASSWORD", MYSQL_PASSWORD)
    url, auth_seen = github
    settings = _settings(url)
    host = LogHost()
    provider = FakeTransportProvider({"test": EnvironmentTransports("test", host, FakeSqlRunner(COLUMNS))})
    async with lifespan(settings, transports=provider) as services:
        collector = EscalationCollector(settings, services.diagnosis, provider, services.secrets,
                                        chunk_lines=1000)
        result = await collector.gather("test", diagnosis=None, bundle=None, workdir=tmp_path)
    assert auth_seen == [f"Bearer {GH_TOKEN}"]
    assert len(host.chunks) == 26 and host.chunks[0] == (1, 1000) and host.removed
    with tarfile.open(result.path) as tar:
        members = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}
    assert set(members) >= {"proxy.log", "ci-run.log", "resources.txt", "README.txt"}
    log = members["proxy.log"].splitlines()
    assert len(log) == LINES and log[0] == LogHost.line(1) and log[-2] == LogHost.line(LINES - 1)
    assert "password=***" in members["proxy.log"]
    assert "health check failed after 60s" in members["ci-run.log"]
    assert "conclusion=failure" in members["ci-run.log"]
    assert "Container resource usage" in members["resources.txt"]
    assert "diagnosis: none recorded" in members["README.txt"]
    for text in members.values():
        assert MYSQL_PASSWORD not in text and GH_TOKEN not in text
    assert result.proxy_log_lines == LINES and result.redacted_lines >= 25


async def test_ci_log_not_configured_is_noted(tmp_path, monkeypatch):
    """Without a GitHub token the archive is still built and says why the CI log is missing."""
    monkeypatch.setenv("QCC_TEST_MYSQL_PASSWORD", MYSQL_PASSWORD)
    settings = _settings(None)
    host = LogHost()
    provider = FakeTransportProvider({"test": EnvironmentTransports("test", host, FakeSqlRunner(COLUMNS))})
    async with lifespan(settings, transports=provider) as services:
        collector = EscalationCollector(settings, services.diagnosis, provider, services.secrets)
        result = await collector.gather("test", diagnosis=None, bundle=None, workdir=tmp_path)
    assert any("not configured" in n for n in result.notes)
    assert "ci-run.log" not in result.members and "proxy.log" in result.members
