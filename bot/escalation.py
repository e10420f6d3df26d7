"""Gather the escalation bundle the runbook asks for, redacted and compressed.

``EscalationCollector.gather(env, diagnosis=..., bundle=..., workdir=...)`` writes
``qcc-escalation-<env>-<stamp>.tar.gz`` into ``workdir`` with:

* ``proxy.log`` — the *complete* ``docker logs`` of the proxy container. The log is cut on
  the host into parts of ``chunk_lines`` lines in one pass (``split -l``, into a temp
  directory) and each part is fetched once (then deleted), redacted line by line and
  appended to a local file: memory stays bounded and the host reads the log once, whatever
  its size.
* ``ci-run.log`` — the latest GitHub Actions run log (``settings.github.token`` and the
  environment's ``ci_repo``; API base ``settings.github.api_url``), streamed to disk.
* ``resources.txt`` — container stats, host memory, disk and processes (runbook steps).
* ``diagnosis.json`` and ``bundle/`` — the latest diagnosis and its replayable bundle.
* ``README.txt`` — what is inside and what could not be gathered, and why.

Every text passes through :func:`bot.diagnosis.redact.redact_text` with the configured
secrets. No Slack here: the Slack handler uploads the returned file.
"""

from __future__ import annotations

import io
import json
import shlex
import tarfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel, Field

from bot.bundle import Bundle, save_bundle
from bot.config import Settings
from bot.diagnosis.parsers import (
    ContainerStats,
    name_stats,
    parse_docker_ps,
    parse_resource_usage,
    resolve_container,
)
from bot.diagnosis.redact import redact_text
from bot.errors import BotError
from bot.models import Diagnosis, StepStatus
from bot.runbook.steps import StepId
from bot.service import DiagnosisService
from bot.transports.base import CommandRunner, TransportProvider

RESOURCE_STEPS = [StepId.RESOURCE_USAGE, StepId.HOST_MEMORY, StepId.HOST_DISK, StepId.HOST_PROCESSES]
CHUNK_LINES = 20000
CHUNK_BYTES = 8 * 1024 * 1024
DUMP_TIMEOUT_S = 300.0
PART_SUFFIX_LEN = 6  # split -a 6: 26**6 parts of CHUNK_LINES lines, far beyond any log


def stats_table(rows: list[ContainerStats]) -> str:
    """``docker stats --no-stream``'s columns for the resource step's rows (read from cgroup files,
    or ``docker stats`` JSON where none was found), named already (:func:`name_stats`)."""
    cgroup = bool(rows) and rows[0].source == "cgroup files"
    lines = ["(read from the containers' cgroup files)" if cgroup else "(read from docker stats --no-stream)",
             f"{'NAME':<32} {'CONTAINER ID':<12}  {'CPU %':>8}  {'MEM USAGE / LIMIT':<24} {'MEM %':>7}  PIDS"]
    for r in rows:
        cpu, mem, pct = r.shown()
        lines.append(f"{r.name:<32} {r.id[:12]:<12}  {cpu:>8}  {mem:<24} {pct:>7}  "
                     f"{r.pids if r.pids is not None else '--'}")
    return "\n".join(lines)


def part_suffix(index: int) -> str:
    """split(1)'s alphabetic suffix of part ``index`` (0 -> ``aaaaaa``, 1 -> ``aaaaab``, 26 -> ``aaaaba``)."""
    letters = []
    for _ in range(PART_SUFFIX_LEN):
        index, digit = divmod(index, 26)
        letters.append(chr(ord("a") + digit))
    return "".join(reversed(letters))


def part_index(suffix: str) -> int:
    """Inverse of :func:`part_suffix`."""
    index = 0
    for ch in suffix:
        index = index * 26 + (ord(ch) - ord("a"))
    return index


class EscalationResult(BaseModel):
    """The archive written and what went into it."""

    path: Path
    members: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # what could not be gathered, and why
    proxy_log_lines: int = 0
    redacted_lines: int = 0


class _Redactor:
    """Redacts line by line and counts what it changed."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.count = 0

    def __call__(self, text: str) -> str:
        out, n = redact_text(text, self.secrets)
        self.count += n
        return out


class EscalationCollector:
    """Collects the escalation archive for one environment over its transports."""

    def __init__(self, settings: Settings, service: DiagnosisService, transports: TransportProvider,
                 secrets: list[str], *, chunk_lines: int = CHUNK_LINES, http_timeout_s: float = 60.0) -> None:
        self.settings = settings
        self.service = service
        self.transports = transports
        self.secrets = secrets
        self.chunk_lines = chunk_lines
        self.http_timeout_s = http_timeout_s

    async def gather(self, env_name: str, *, diagnosis: Diagnosis | None, bundle: Bundle | None,
                     workdir: Path) -> EscalationResult:
        """Write the archive into ``workdir``. Raises :class:`bot.errors.UnknownEnvironment`;
        anything else that fails is recorded in ``notes`` and the rest is still gathered."""
        env = self.settings.environment(env_name)
        redact = _Redactor(self.secrets)
        parts = workdir / "parts"
        parts.mkdir(parents=True, exist_ok=True)
        notes: list[str] = []
        lines = 0
        try:
            lines = await self._proxy_log(env_name, bundle, parts / "proxy.log", redact)
        except BotError as exc:
            notes.append(f"proxy log: {exc}")
        try:
            await self._ci_log(env.ci_repo, env.ci_workflow, parts / "ci-run.log", redact, notes)
        except (aiohttp.ClientError, TimeoutError, zipfile.BadZipFile, OSError) as exc:
            notes.append(f"CI run log: {type(exc).__name__}")
        await self._resources(env_name, parts / "resources.txt", redact)
        if diagnosis is not None:
            (parts / "diagnosis.json").write_text(redact(json.dumps(diagnosis.to_report_json(), indent=2)),
                                                  encoding="utf-8")
        else:
            notes.append("diagnosis: none recorded for this environment yet (run /qcc diagnose)")
        if bundle is not None:
            save_bundle(parts / "bundle", bundle)  # bundle outputs were redacted when captured
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        readme = [f"qcc escalation bundle for environment {env_name} ({stamp})", "",
                  "proxy.log       complete docker logs of the proxy container",
                  "ci-run.log      latest GitHub Actions run log (when configured)",
                  "resources.txt   container CPU/memory (docker stats columns), free -m, df, ps",
                  "diagnosis.json  the latest diagnosis report",
                  "bundle/         replayable bundle: qcc-bot analyze bundle/", ""]
        readme += [f"NOTE: {n}" for n in notes]
        (parts / "README.txt").write_text(redact("\n".join(readme) + "\n"), encoding="utf-8")
        path = workdir / f"qcc-escalation-{env_name}-{stamp}.tar.gz"
        members: list[str] = []
        with tarfile.open(path, "w:gz") as tar:
            for p in sorted(parts.iterdir()):
                tar.add(p, arcname=p.name)  # streamed from disk in blocks
                members.append(p.name)
        return EscalationResult(path=path, members=members, notes=notes, proxy_log_lines=lines,
                                redacted_lines=redact.count)

    async def _proxy_log(self, env_name: str, bundle: Bundle | None, out: Path, redact: _Redactor) -> int:
        env = self.settings.environment(env_name)
        name = env.proxy_container or (bundle.context.proxy_container if bundle else None)
        if not name:
            step, containers = await self.service.status(env_name)
            c = resolve_container(containers, env.compose_project, env.proxy_service)
            if c is None:
                raise BotError(f"no proxy container found ({step.error or 'not in docker ps'})")
            name = c.name
        shell = (await self.transports.get(env_name)).shell
        docker, chunk = shlex.quote(env.docker), int(self.chunk_lines)
        # One pass over the log on the host: docker logs piped into split(1), which cuts it into
        # parts of `chunk` lines (part.aaaaaa, part.aaaaab, ...); each part is then read once.
        # (Reading line ranges of one dump with `sed -n a,bp` re-scans the file from its start
        # for every chunk: quadratic in the log size, minutes of host CPU for 500 MB.)
        dump = (f'D=$(mktemp -d "${{TMPDIR:-/tmp}}/qcc-escalate.XXXXXX") || exit 90; '
                f'{{ {docker} logs --timestamps {shlex.quote(name)} 2>&1; echo $? >"$D/rc"; }} '
                f'| split -l {chunk} -a {PART_SUFFIX_LEN} - "$D/part." || exit 91; '
                f'echo "$D $(cat "$D/rc") $(cat "$D"/part.* 2>/dev/null | wc -l)"')
        res = await shell.run(dump, timeout_s=DUMP_TIMEOUT_S)
        fields = res.stdout.strip().split()
        if not res.ok or len(fields) != 3 or not fields[0].startswith("/") or not fields[2].isdigit():
            raise BotError(f"could not dump the proxy log (exit {res.exit_status})")
        remote, rc, total = fields[0], fields[1], int(fields[2])
        try:
            return await self._fetch_parts(shell, remote, out, redact, rc, total)
        finally:
            await shell.run(f"rm -rf {shlex.quote(remote)}", timeout_s=30)

    async def _fetch_parts(self, shell: CommandRunner, remote: str, out: Path, redact: _Redactor,
                           rc: str, total: int) -> int:
        """Read the parts split(1) wrote (each once, then deleted), redact line by line, append to ``out``."""
        written = 0
        parts = -(-total // self.chunk_lines)  # ceil
        with out.open("w", encoding="utf-8") as fh:
            if rc != "0":
                fh.write(f"# docker logs exited with status {rc}\n")
            for index in range(parts):
                part = shlex.quote(f"{remote}/part.{part_suffix(index)}")
                res = await shell.run(f"cat {part} && rm -f {part}", timeout_s=120, max_output_bytes=CHUNK_BYTES)
                first = index * self.chunk_lines + 1
                if not res.ok:
                    raise BotError(f"reading the proxy log failed at line {first} (exit {res.exit_status})")
                chunk = res.stdout.split("\n")
                if chunk and chunk[-1] == "":
                    chunk.pop()
                for line in chunk:
                    fh.write(redact(line) + "\n")
                written += len(chunk)
                if res.truncated:
                    fh.write(f"# lines {first}..{first + self.chunk_lines - 1}: output cut at {CHUNK_BYTES} bytes "
                             "by the transport\n")
        return written

    async def _ci_log(self, repo: str | None, workflow: str | None, out: Path, redact: _Redactor,
                      notes: list[str]) -> None:
        token = self.settings.github.token
        if token is None or not repo:
            notes.append("CI run log: not configured (needs GITHUB_TOKEN and the environment's ci_repo)")
            return
        api = self.settings.github.api_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token.get_secret_value()}",
                   "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        runs_url = (f"{api}/repos/{repo}/actions/workflows/{workflow}/runs" if workflow
                    else f"{api}/repos/{repo}/actions/runs")
        timeout = aiohttp.ClientTimeout(total=self.http_timeout_s)
        zip_path = out.parent.parent / "ci-run.zip"  # outside the archived parts
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as http:
            async with http.get(runs_url, params={"per_page": "1"}) as resp:
                if resp.status != 200:
                    notes.append(f"CI run log: GitHub answered HTTP {resp.status} for the run list")
                    return
                runs: list[dict[str, Any]] = (await resp.json()).get("workflow_runs") or []
            if not runs:
                notes.append(f"CI run log: no workflow runs in {repo}")
                return
            run = runs[0]
            async with http.get(f"{api}/repos/{repo}/actions/runs/{int(run['id'])}/logs") as resp:
                if resp.status != 200:
                    notes.append(f"CI run log: GitHub answered HTTP {resp.status} for run {run['id']}")
                    return
                with zip_path.open("wb") as fh:
                    async for block in resp.content.iter_chunked(64 * 1024):
                        fh.write(block)
        with out.open("w", encoding="utf-8") as fh, zipfile.ZipFile(zip_path) as zf:
            fh.write(redact(f"# run {run.get('id')} {run.get('name', '')} conclusion={run.get('conclusion')} "
                            f"sha={run.get('head_sha', '')} {run.get('html_url', '')}") + "\n")
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                if info.is_dir():
                    continue
                fh.write(f"\n===== {redact(info.filename)} =====\n")
                with zf.open(info) as member:
                    for line in io.TextIOWrapper(member, encoding="utf-8", errors="replace"):
                        fh.write(redact(line.rstrip("\n")) + "\n")
        zip_path.unlink(missing_ok=True)

    async def _resources(self, env_name: str, out: Path, redact: _Redactor) -> None:
        steps = await self.service.run_checks(env_name, [StepId.CONTAINER_STATUS, *RESOURCE_STEPS])
        status = next((s for s in steps if s.id == StepId.CONTAINER_STATUS), None)
        listed = parse_docker_ps(status.output) if status and status.status == StepStatus.OK else []
        with out.open("w", encoding="utf-8") as fh:
            for s in steps:
                if s.id == StepId.CONTAINER_STATUS:
                    continue
                state = s.status.value if s.status != StepStatus.OK else "ok"
                fh.write(f"## {s.title} ({state}, {s.duration_s:.1f}s)\n")
                if s.error:
                    fh.write(redact(f"error: {s.error}") + "\n")
                text = s.output.rstrip()
                if s.id == StepId.RESOURCE_USAGE and s.status == StepStatus.OK and (rows := parse_resource_usage(text)):
                    text = stats_table(name_stats(rows, listed))
                fh.write(redact(text) + "\n\n")
