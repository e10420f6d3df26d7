"""The escalation archive: complete proxy log fetched in bounded chunks, CI log, redaction."""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
from pathlib import Path

import pytest
from aiohttp import web

from bot.app import lifespan
from bot.config import load_settings
from bot.escalation import EscalationCollector, part_index, part_suffix
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
        self.chunk_lines = 0
        self.removed = False

    @staticmethod
    def line(i: int) -> str:
        leak = f" password={MYSQL_PASSWORD}" if i % 1000 == 0 else ""
        return f"2025-12-10T06:14:01.{i:09d}Z 2025/12/10 06:14:01 request {i} ok{leak}"

    async def run(self, command: str, *, timeout_s: float, max_output_bytes: int = 8 << 20) -> CommandResult:
        self.commands_run.append(command)
        if "mktemp" in command:
            assert "logs --timestamps qcc_test_proxy" in command and "split -l" in command
            self.chunk_lines = int(re.search(r"split -l (\d+) ", command).group(1))
            return CommandResult(command=command, exit_status=0, stdout=f"/tmp/qcc-escalate.x1 0 {LINES}\n")
        m = re.match(r"cat /tmp/qcc-escalate\.x1/part\.([a-z]{6}) && rm -f /tmp/qcc-escalate\.x1/part\.\1$", command)
        if m:
            a = part_index(m.group(1)) * self.chunk_lines + 1
            b = min(a + self.chunk_lines - 1, LINES)
            self.chunks.append((a, b))
            out = "".join(self.line(i) + "\n" for i in range(a, b + 1))
            return CommandResult(command=command, exit_status=0, stdout=out)
        if command.startswith("rm -rf /tmp/qcc-escalate.x1"):
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
    """The archive holds all 25,000 proxy log lines (each split(1) part fetched once, in order,
    the remote temp directory removed), the CI run's log from the GitHub API, resources and a README; no configured
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
    assert host.chunks == [(a, a + 999) for a in range(1, LINES, 1000)] and host.removed
    with tarfile.open(result.path) as tar:
        members = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}
    assert set(members) >= {"proxy.log", "ci-run.log", "resources.txt", "README.txt"}
    log = members["proxy.log"].splitlines()
    assert len(log) == LINES and log[0] == LogHost.line(1) and log[-2] == LogHost.line(LINES - 1)
    assert "password=***" in members["proxy.log"]
    assert "health check failed after 60s" in members["ci-run.log"]
    assert "conclusion=failure" in members["ci-run.log"]
    assert "Container resource usage" in members["resources.txt"]
    assert "MEM USAGE / LIMIT" in members["resources.txt"] and "{\"BlockIO\"" not in members["resources.txt"]
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


def test_part_suffixes_follow_split():
    """part_suffix names split(1)'s parts (-a 6): aaaaaa, aaaaab, ..., aaaaaz, aaaaba; part_index inverts it."""
    assert [part_suffix(i) for i in (0, 1, 25, 26, 27)] == ["aaaaaa", "aaaaab", "aaaaaz", "aaaaba", "aaaabb"]
    assert all(part_index(part_suffix(i)) == i for i in range(0, 100_000, 997))


class SandboxShell:
    """A CommandRunner running each command line with /bin/sh on a sandbox host (real split, cat, rm)."""

    def __init__(self, box, tmpdir) -> None:  # noqa: ANN001 - a SandboxDir, the host's $TMPDIR
        self.box = box
        self.tmpdir = tmpdir
        self.commands_run: list[str] = []
        self.outputs: list[str] = []

    async def run(self, command: str, *, timeout_s: float, max_output_bytes: int = 8 << 20) -> CommandResult:
        import asyncio

        self.commands_run.append(command)
        proc = await asyncio.to_thread(self.box.run, f"TMPDIR={self.tmpdir}; export TMPDIR; {command}",
                                       timeout_s=timeout_s)
        self.outputs.append(proc.stdout.decode("utf-8", "replace"))
        return CommandResult(command=command, exit_status=proc.returncode,
                             stdout=proc.stdout.decode("utf-8", "replace"),
                             stderr=proc.stderr.decode("utf-8", "replace"))

    async def aclose(self) -> None:
        return None


async def test_split_pipeline_on_a_real_shell_returns_the_whole_log(tmp_path, monkeypatch):
    """The dump/fetch commands themselves, run by /bin/sh against the docker stand-in: the
    archive's proxy.log is exactly `docker logs --timestamps` (line for line, in order, over
    several split(1) parts), each part is read once, and the remote temp directory is gone."""
    from qcc_sandbox import SandboxDir

    monkeypatch.setenv("QCC_TEST_MYSQL_PASSWORD", MYSQL_PASSWORD)
    box = SandboxDir(tmp_path / "host")
    box.load("migration_failed")
    settings = load_settings(data={"environments": {"test": {
        "ssh": {"host": "127.0.0.1", "user": "root"}, "compose_project": "qcc_test",
        "proxy_container": "qcc_test_proxy"}}}, env={})
    shell = SandboxShell(box, tmp_path)  # the remote temp directory goes there, inspected below
    provider = FakeTransportProvider({"test": EnvironmentTransports("test", shell, FakeSqlRunner(COLUMNS))})
    async with lifespan(settings, transports=provider) as services:
        collector = EscalationCollector(settings, services.diagnosis, provider, services.secrets, chunk_lines=3)
        result = await collector.gather("test", diagnosis=None, bundle=None, workdir=tmp_path / "work")
    expected = box.run("docker logs --timestamps qcc_test_proxy 2>&1").stdout.decode().splitlines()
    with tarfile.open(result.path) as tar:
        log = tar.extractfile("proxy.log").read().decode().splitlines()
    assert len(expected) > 6 and log == expected
    fetches = [c for c in shell.commands_run if c.startswith("cat ")]
    assert len(fetches) == -(-len(expected) // 3) and len(set(fetches)) == len(fetches)
    dumped = next(o for c, o in zip(shell.commands_run, shell.outputs, strict=True) if "split -l" in c)
    assert dumped.startswith(f"{tmp_path}/qcc-escalate.")
    assert not list(tmp_path.glob("qcc-escalate.*")), "the remote temp directory is removed"


def test_cgroup_usage_is_written_as_docker_stats_columns() -> None:
    """resources.txt shows a cgroup read in `docker stats` columns: names from `docker ps`, CPU %,
    MEM USAGE / LIMIT, MEM %, PIDS; an id `docker ps` did not list keeps its short id."""
    from bot.diagnosis.parsers import Container, name_stats, parse_resource_usage
    from bot.escalation import stats_table

    fixture = Path(__file__).parents[1] / "diagnosis" / "fixtures" / "cgroup_v1.txt"
    busy = "e39c03d88499779a63ff24de5a9541f5196e8d15e0cdf2855620d13366068618"
    named = name_stats(parse_resource_usage(fixture.read_text(encoding="utf-8")),
                       [Container(id=busy, name="qcc_test_proxy")])
    table = stats_table(named)
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:]}
    assert rows["qcc_test_proxy"][1:] == ["e39c03d88499", "99.14%", "972KiB", "/", "64MiB", "1.48%", "1"]
    assert rows["3bf41ee30d77"][2] == "0.00%" and "23.54GiB" in rows["3bf41ee30d77"]
