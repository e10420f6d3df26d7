"""The benchmark cases. Each runs in its own process (``bench/run.py --case NAME``) and
returns a JSON-able dict of measurements; ``bench/run.py`` turns them into table rows.

Times are wall-clock seconds (``time.perf_counter``), RSS in MiB (``ru_maxrss``). Where a
figure is a ratio, both sides are measured in the same process, one after the other, on the
same host, so machine speed cancels out.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.hosts import REPO, BenchHost, SandboxBenchHost, open_host

LATENCIES = (0.0, 0.2, 0.5)


def rss_mib() -> float:
    """Peak RSS of this process so far, MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> None:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS (Linux ``clear_refs`` 5)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_mib() -> float:
    """Peak RSS since the last :func:`reset_peak` (``VmHWM``), MiB; ``ru_maxrss`` if unavailable."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return rss_mib()


def current_rss_mib() -> float:
    """Current RSS of this process, MiB (``/proc/self/statm``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def bot_settings(envs: dict[str, dict[str, Any]], **extra: Any) -> Any:
    from bot.config import load_settings

    return load_settings(data={"environments": envs, **extra}, env=dict(os.environ))


# ------------------------------------------------------------------------ bot vs manual


def run_manual(host: BenchHost) -> list[tuple[str, float, int]]:
    """The seed's sequence, one ``ssh host "cmd"`` after the other: ``[(label, seconds, exit)]``."""
    out = []
    for label, cmd in host.manual_commands():
        t0 = time.perf_counter()
        res = subprocess.run(host.ssh_argv(cmd), capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        out.append((label, time.perf_counter() - t0, res.returncode))
    return out


async def one_diagnosis(settings: Any, env: str = "test") -> tuple[float, Any]:
    """A fresh bot (new transports: one SSH handshake included) diagnosing ``env``."""
    from bot.app import lifespan

    t0 = time.perf_counter()
    async with lifespan(settings) as services:
        run = await services.diagnosis.diagnose(env)
        elapsed = time.perf_counter() - t0
    return elapsed, run


def own_floor(host: BenchHost, settings: Any, reps: int) -> tuple[float, str]:
    """The bot's own floor: each ssh step of the runbook, rendered exactly as the executor sends
    it, run alone as one ``ssh host "cmd"`` (one OpenSSH handshake each, best of ``reps``);
    returns ``(seconds of the slowest, its step id)``. The issue's floor takes the slowest
    command of the *manual* sequence instead; a bot that no longer runs that command (since the
    cgroup read replaced ``docker stats``) is also judged against the slowest it does run."""
    from bot.runbook.commands import render_script, step_variables
    from bot.runbook.loader import default_runbook

    env = settings.environment("test")
    best: dict[str, float] = {}
    for step in default_runbook().steps:
        if step.transport != "ssh" or not step.script:
            continue
        cmd = render_script(step.script, step_variables(env), timeout_s=step.timeout_s,
                            merge_stderr=step.merge_stderr)
        for _ in range(reps):
            t0 = time.perf_counter()
            subprocess.run(host.ssh_argv(cmd), capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
            best[step.id] = min(best.get(step.id, float("inf")), time.perf_counter() - t0)
    slowest = max(best, key=lambda k: best[k])
    return best[slowest], slowest


def case_vs_manual(host_spec: str = "sandbox", reps: int = 2, profile_dir: str = "") -> dict[str, Any]:
    """Bot vs the seed's manual sequence at each latency; floor = slowest single ``ssh host cmd``."""
    host = open_host(host_spec)
    try:
        settings = bot_settings({"test": host.env_config})
        levels = []
        for latency in LATENCIES:
            if not host.set_latency(latency):
                levels.append({"latency_s": latency, "skipped": "this host has no latency hook"})
                continue
            manual_runs = [run_manual(host) for _ in range(reps)]
            manual = min(manual_runs, key=lambda r: sum(t for _, t, _ in r))
            manual_total = sum(t for _, t, _ in manual)
            # the floor: one handshake + the slowest single remote command (min over reps per command)
            per_cmd = [min(r[i][1] for r in manual_runs) for i in range(len(manual))]
            floor = max(per_cmd)
            slowest_cmd = manual[per_cmd.index(floor)][0]
            bot_times = []
            run = None
            remote: dict[str, Any] = {}
            for _ in range(reps):
                _clear_commands(host)
                started = time.time()
                elapsed, run = asyncio.run(one_diagnosis(settings))
                bot_times.append(elapsed)
                remote = _remote_timeline(host, started)
            bot = min(bot_times)
            assert run is not None
            own_s, own_step = own_floor(host, settings, reps)
            steps = sorted(run.diagnosis.steps, key=lambda s: -s.duration_s)
            levels.append({
                "latency_s": latency, "manual_s": manual_total, "bot_s": bot, "floor_s": floor,
                "slowest_manual_cmd": slowest_cmd, "manual_exit_codes": [c for _, _, c in manual],
                "manual_per_cmd_s": [(label, round(t, 3)) for (label, _, _), t in zip(manual, per_cmd, strict=True)],
                "ratio": manual_total / bot, "vs_floor": bot / floor,
                "own_floor_s": own_s, "own_floor_step": own_step, "vs_own_floor": bot / own_s,
                "slowest_steps": [(s.id, round(s.duration_s, 3)) for s in steps[:3]],
                "step_statuses": sorted({s.status.value for s in run.diagnosis.steps}),
                "top_cause": run.diagnosis.causes[0].id if run.diagnosis.causes else None,
                **{k: v for k, v in remote.items() if k != "timeline"},
            })
            if profile_dir and latency == LATENCIES[-1]:
                out = Path(profile_dir)
                out.mkdir(parents=True, exist_ok=True)
                tag = "" if host.name == "sandbox" else "-" + "".join(c if c.isalnum() else "-" for c in host.name)
                if remote.get("timeline"):
                    (out / f"remote-timeline-0.5s{tag}.txt").write_text(
                        "offset_s  session(ppid)  command (one bot diagnosis, docker commands take +0.5 s)\n"
                        + "\n".join(remote["timeline"]) + "\n")
                levels[-1]["profile"] = _profile_diagnosis(settings, out / f"diagnose-0.5s{tag}.txt")
        return {"host": host.name, "levels": levels}
    finally:
        host.set_latency(0)
        host.close()


def _clear_commands(host: BenchHost) -> None:
    host.clear_commands()


def _remote_timeline(host: BenchHost, started: float) -> dict[str, Any]:
    """What one bot run made the host do (hosts that record their commands: the sandbox's
    commands.log, one line per stand-in start; the real engine's docker wrapper log): docker
    command count, the most docker commands one session ran in a row, when the last one
    started (queueing shows here), and the timeline itself."""
    records = host.commands_since(started)
    if records is None:
        return {}
    docker = [r for r in records if r[2] == "docker"]
    per_session: dict[int, int] = {}
    for r in docker:
        per_session[r[1]] = per_session.get(r[1], 0) + 1
    timeline = [f"{ts - started:7.3f}  {ppid:>7}  {' '.join(argv)[:110]}" for ts, ppid, _, argv in sorted(records)]
    return {"docker_cmds": len(docker), "sessions": len({r[1] for r in records}),
            "max_docker_in_one_session": max(per_session.values(), default=0),
            "last_docker_start_s": max((r[0] - started for r in docker), default=0.0), "timeline": timeline}


def _profile_diagnosis(settings: Any, out: Path) -> str:
    """pyinstrument profile of one diagnosis (async mode: time awaiting is attributed to the
    awaiting step), written to ``out``; returns the path."""
    from pyinstrument import Profiler

    out.parent.mkdir(parents=True, exist_ok=True)
    profiler = Profiler(async_mode="enabled", interval=0.002)

    async def go() -> None:
        with profiler:
            await one_diagnosis(settings)

    asyncio.run(go())
    out.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    return str(out)


# ---------------------------------------------------------------------------- handshakes


def case_handshakes(host_spec: str = "sandbox", runs: int = 10) -> dict[str, Any]:
    """SSH connections the server accepted while one bot process ran ``runs`` diagnoses."""
    from bot.app import lifespan

    host = open_host(host_spec)
    try:
        settings = bot_settings({"test": host.env_config})
        before = host.count_logins()

        async def go() -> tuple[int, float]:
            async with lifespan(settings) as services:
                t0 = time.perf_counter()
                for _ in range(runs):
                    await services.diagnosis.diagnose("test")
                shell = (await services.transports.get("test")).shell
                return int(getattr(shell, "connection_generation", -1)), time.perf_counter() - t0

        generations, elapsed = asyncio.run(go())
        time.sleep(0.2)  # sshd writes the log line asynchronously
        after = host.count_logins()
        return {"host": host.name, "runs": runs, "server_logins": None if before is None else after - before,  # type: ignore[operator]
                "transport_connections": generations, "seconds": elapsed}
    finally:
        host.close()


# ------------------------------------------------------------------------ 10 environments


def case_many_envs(count: int = 10, latency: float = 0.5) -> dict[str, Any]:
    """One environment alone vs ``count`` environments (each its own sandbox + sshd) at once."""
    from bot.app import lifespan

    with tempfile.TemporaryDirectory(prefix="qcc-bench-envs-") as tmp:
        first = SandboxBenchHost(workdir=Path(tmp))
        hosts = [first] + [SandboxBenchHost(workdir=Path(tmp), factory=first.factory) for _ in range(count - 1)]
        try:
            for h in hosts:
                h.set_latency(latency)
            settings = bot_settings({f"e{i}": h.env_config for i, h in enumerate(hosts)})

            async def go(names: list[str]) -> float:
                async with lifespan(settings) as services:
                    t0 = time.perf_counter()
                    runs = await asyncio.gather(*(services.diagnosis.diagnose(n) for n in names))
                    elapsed = time.perf_counter() - t0
                assert all(r.diagnosis.causes for r in runs)
                return elapsed

            names = [f"e{i}" for i in range(count)]
            one = min(asyncio.run(go(["e0"])) for _ in range(2))
            cpu0 = time.process_time()
            many = min(asyncio.run(go(names)) for _ in range(2))
            cpu = (time.process_time() - cpu0) / 2
            result = {"count": count, "latency_s": latency, "one_s": one, "many_s": many, "ratio": many / one,
                      "bot_cpu_s_per_round": cpu, "cores": os.cpu_count()}
        finally:
            for h in hosts:
                h.close()
        # sshd and everything it ran (sessions, stand-ins) were reaped by now: their CPU is ours
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        diagnoses = 2 * 1 + 2 * count
        result["host_cpu_s_per_diagnosis"] = (children.ru_utime + children.ru_stime) / diagnoses
        result["host_cpu_floor_s"] = result["host_cpu_s_per_diagnosis"] * count / (os.cpu_count() or 1)
        result["in_memory"] = _many_envs_in_memory(count, latency)
        return result


def _many_envs_in_memory(count: int, latency: float) -> dict[str, Any]:
    """The bot's side alone: ``count`` environments whose hosts are in-memory transports (the
    migration-failed host, every remote command answering after ``latency`` s, no host CPU on
    these cores), one alone vs all at once (best of 2 each)."""
    from bot.app import lifespan
    from bot.config import load_settings
    from bot.transports.base import EnvironmentTransports
    from bot.transports.fake import FakeTransportProvider
    from tests.slack.scenario import migration_failed

    names = [f"m{i}" for i in range(count)]
    env = {"ssh": {"host": "127.0.0.1", "user": "root"}, "compose_project": "qcc_test",
           "mysql": {"user": "qcc", "database": "qcc_proxy"}}
    settings = load_settings(data={"environments": {n: env for n in names}}, env={})

    async def go(which: list[str]) -> float:
        envs = {}
        for n in names:
            shell, sql = migration_failed()
            shell.delay_s = latency
            envs[n] = EnvironmentTransports(n, shell, sql)
        async with lifespan(settings, transports=FakeTransportProvider(envs)) as services:
            t0 = time.perf_counter()
            runs = await asyncio.gather(*(services.diagnosis.diagnose(n) for n in which))
            elapsed = time.perf_counter() - t0
        assert all(r.diagnosis.causes for r in runs)
        return elapsed

    one = min(asyncio.run(go(names[:1])) for _ in range(2))
    many = min(asyncio.run(go(names)) for _ in range(2))
    return {"one_s": one, "many_s": many, "ratio": many / one}


# ------------------------------------------------------------------------ HTTP /qcc diagnose


def case_http(concurrency: int = 20, rounds: int = 3, profile_dir: str = "") -> dict[str, Any]:
    """Time to the HTTP 200 of ``concurrency`` signed ``/qcc diagnose test`` at once, ``rounds`` times.

    The bot runs in its own process (``bench/httpbot.py``, in-memory transports, production
    settings); this process plays Slack (signed requests) and serves the fake Web API, so
    the load generator's CPU is not the bot's. The diagnoses the requests start run on the
    bot's loop while later requests arrive, as in production.
    """
    if profile_dir:
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
    return asyncio.run(_http(concurrency, rounds, profile_dir))


async def _http(concurrency: int, rounds: int, profile_dir: str) -> dict[str, Any]:
    from tests.fakes.slack_api import FakeSlackAPI
    from tests.slack.harness import SlackSim
    from tests.slack.scenario import SIGNING_SECRET

    fake = await FakeSlackAPI().start()
    latencies: list[float] = []
    profile = str(Path(profile_dir) / "http-bot.txt") if profile_dir else ""
    with tempfile.TemporaryDirectory(prefix="qcc-bench-http-") as tmp:
        bot = await asyncio.create_subprocess_exec(
            sys.executable, str(REPO / "bench" / "httpbot.py"), fake.api_url, tmp, *([profile] if profile else []),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert bot.stdin is not None and bot.stdout is not None

        async def cpu() -> float:
            assert bot.stdin is not None and bot.stdout is not None
            bot.stdin.write(b"cpu\n")
            await bot.stdin.drain()
            return float((await bot.stdout.readline()).strip())

        async def idle() -> None:
            assert bot.stdin is not None and bot.stdout is not None
            bot.stdin.write(b"idle\n")
            await bot.stdin.drain()
            assert (await bot.stdout.readline()).strip() == b"idle"

        try:
            port = int((await bot.stdout.readline()).strip())
            sim = SlackSim(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, fake)
            try:
                await sim.slash("help")  # warm the connection pool and the app

                async def one(text: str) -> float:
                    t0 = time.perf_counter()
                    reply = await sim.slash(text)
                    assert reply.status == 200, reply
                    return time.perf_counter() - t0

                # the same burst of `/qcc help` (answered inside the ack, starts nothing): the
                # HTTP path alone, side by side with the diagnose bursts below
                help_latencies: list[float] = []
                cpu0 = await cpu()
                for _ in range(rounds):
                    help_latencies += await asyncio.gather(*(one("help") for _ in range(concurrency)))
                ack_cpu = (await cpu() - cpu0) / len(help_latencies)
                for _ in range(rounds):
                    latencies += await asyncio.gather(*(one("diagnose test") for _ in range(concurrency)))
                    await idle()
            finally:
                await sim.close()
            bot.stdin.write(b"stop\n")
            await bot.stdin.drain()
            await asyncio.wait_for(bot.wait(), 60)
        finally:
            if bot.returncode is None:
                bot.terminate()
                await bot.wait()
            await fake.stop()
    reports = len(fake.calls_to("chat.postMessage"))
    latencies.sort()
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"requests": len(latencies), "concurrency": concurrency, "p50_s": statistics.median(latencies),
            "p99_s": q[98], "max_s": latencies[-1], "slack_posts": reports, "profile": profile,
            "help_p50_s": statistics.median(help_latencies), "ack_cpu_s": ack_cpu,
            "help_p99_s": statistics.quantiles(sorted(help_latencies), n=100, method="inclusive")[98]}


# ------------------------------------------------------------------------ log summary


LOG_TEMPLATES = [
    "{ts} {go} [proxy] POST /v1/messages 200 {ms}ms account=acct-{n} model=claude-sonnet-4-5 in={n} out={k}",
    "{ts} {go} [proxy] POST /v1/messages 529 {ms}ms account=acct-{n} upstream overloaded",
    "{ts} {go} [HealthScheduler] checking all nodes...",
    "{ts} {go} [HealthScheduler] total nodes to check: {k} (concurrency=4, cli_concurrency=2)",
    "{ts} {go} health check failed for node node-{k}: claude cli failed: signal: killed: stdout= stderr=",
    "{ts} {go} [health] node node-{k} reached failure threshold (3/3)",
    "{ts} {go} [proxy] GET /v1/models 200 {ms}ms account=acct-{n}",
    "{ts} [mysql] {go} packets.go:58 unexpected EOF",
]


def make_service_log(lines: int) -> str:
    """``lines`` lines of ``docker logs --timestamps`` output in the service's format (field notes)."""
    parts = []
    for i in range(lines):
        s = i % 86400
        go = f"2026/11/29 {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
        ts = f"2026-11-29T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{i % 1000000:06d}123Z"
        parts.append(LOG_TEMPLATES[(i * 7) % 11 % len(LOG_TEMPLATES)].format(
            ts=ts, go=go, ms=100 + i % 4000, n=i % 9973, k=i % 17))
    parts.append(f"{ts} {go} Error 1054 (42S22): Unknown column 'health_check_model' in 'field list'")
    return "\n".join(parts) + "\n"


def case_logsummary(lines: int) -> dict[str, Any]:
    """``summarize_logs`` of ``lines`` lines: seconds and peak RSS (total and over the input text)."""
    from bot.diagnosis.logsummary import summarize_logs

    text = make_service_log(lines)
    gc.collect()
    base = current_rss_mib()
    reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    summary = summarize_logs(text)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = peak_mib()
    return {"lines": lines, "bytes": len(text), "seconds": seconds, "cpu_s": cpu, "peak_rss_mib": peak,
            "input_mib": len(text) / (1 << 20), "growth_mib": max(0.0, peak - base),
            "templates": len(summary.templates)}


# ------------------------------------------------------------------------ escalation 500 MB


def case_escalation(log_mb: int = 500) -> dict[str, Any]:
    """Gather + upload the escalation archive of a ``log_mb`` MB container log; RSS growth.

    The host is the sandbox behind a real sshd; the fake Slack runs in a child process
    (``bench/fakeslack.py``, streaming uploads to disk) so only the bot's memory is measured.
    """
    import hashlib

    import qcc_sandbox as sandbox_pkg

    with tempfile.TemporaryDirectory(prefix="qcc-bench-esc-") as tmp:
        # the packaged 50 MB scenario with its generated run of request lines scaled to log_mb
        packaged = Path(sandbox_pkg.__file__).parent / "scenarios"
        text = (packaged / "healthy_huge_log.yaml").read_text()
        (Path(tmp) / "_base.yaml").write_text((packaged / "_base.yaml").read_text())
        assert "repeat_bytes: 50000000" in text
        scenario_file = Path(tmp) / "healthy_huge_log.yaml"
        assert "interval_s: 0.55" in text  # same time span: lines closer together
        text = text.replace("repeat_bytes: 50000000", f"repeat_bytes: {log_mb * 1_000_000}")
        scenario_file.write_text(text.replace("interval_s: 0.55", f"interval_s: {0.55 * 50 / log_mb:.6f}"))
        sc = sandbox_pkg.load_scenario(scenario_file)
        host = SandboxBenchHost(scenario_model=sc, workdir=Path(tmp))
        updir = Path(tmp) / "uploads"
        updir.mkdir()
        fake = subprocess.Popen([sys.executable, str(REPO / "bench" / "fakeslack.py"), str(updir)],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert fake.stdout is not None
            api_url = fake.stdout.readline().strip()
            # a running bot has these loaded already: import them before the baseline
            import bot.app  # noqa: F401
            import bot.escalation  # noqa: F401
            import bot.transports.provider  # noqa: F401
            import handlers.slackio  # noqa: F401
            (Path(tmp) / "work").mkdir()
            gc.collect()
            base = current_rss_mib()
            reset_peak()
            t0, c0 = time.perf_counter(), time.process_time()
            result = asyncio.run(_escalate(host, api_url, Path(tmp) / "work"))
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            peak = peak_mib()
            uploaded = sorted(updir.glob("F*"))
            archive_sha = result.pop("sha256")
            up_sha = hashlib.sha256(uploaded[0].read_bytes()).hexdigest() if uploaded else None
            return {"log_mb": log_mb, "seconds": seconds, "bot_cpu_s": cpu, "base_rss_mib": base, "peak_rss_mib": peak,
                    "growth_mib": peak - base, "uploaded_equals_archive": up_sha == archive_sha, **result}
        finally:
            fake.terminate()
            fake.wait(10)
            host.close()


async def _escalate(host: SandboxBenchHost, api_url: str, workdir: Path) -> dict[str, Any]:
    import hashlib

    from slack_sdk.web.async_client import AsyncWebClient

    from bot.app import lifespan
    from bot.escalation import EscalationCollector
    from handlers.blockkit import FileOut
    from handlers.slackio import SlackOut

    settings = bot_settings({"test": host.env_config})
    async with lifespan(settings) as services:
        collector = EscalationCollector(settings, services.diagnosis, services.transports, services.secrets)
        result = await collector.gather("test", diagnosis=None, bundle=None, workdir=workdir)
        gathered_rss = peak_mib()
        client = AsyncWebClient(token="xoxb-bench-not-a-token", base_url=api_url)  # noqa: S106
        out = SlackOut(client, services.secrets)
        await out.upload("CINC", None, [FileOut(result.path.name, path=result.path, title="escalation")])
    digest = hashlib.sha256()
    with result.path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"archive_mib": result.path.stat().st_size / (1 << 20), "proxy_log_lines": result.proxy_log_lines,
            "peak_after_gather_mib": gathered_rss, "sha256": digest.hexdigest(), "notes": result.notes}


# ------------------------------------------------------------------------ start-up


def case_startup(reps: int = 5) -> dict[str, Any]:
    """``qcc-bot --version`` against a bare ``python -c pass``: CPU time of the child (immune
    to other processes on a shared machine) and wall time, medians of ``reps``; the CPU time
    of ``import bot.cli`` / ``import handlers.server`` and their heaviest direct imports
    (``-X importtime``)."""
    exe = Path(sys.executable).with_name("qcc-bot")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

    def timed(argv: list[str]) -> tuple[float, float]:
        walls, cpus = [], []
        for _ in range(reps):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, env=env, cwd=tempfile.gettempdir())
            walls.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        return statistics.median(walls), statistics.median(cpus)

    bare_wall, bare_cpu = timed([sys.executable, "-c", "pass"])
    version_wall, version_cpu = timed([str(exe), "--version"])
    imports = {}
    for module in ("bot.cli", "handlers.server"):
        code = f"import time; t = time.process_time(); import {module}; print(time.process_time() - t)"
        cpu = statistics.median(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                     env=env, check=True, cwd=str(REPO)).stdout)
                                for _ in range(3))
        res = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                             text=True, env=env, check=True, cwd=str(REPO))
        imports[module] = {"cpu_s": cpu, "top": _direct_imports(res.stderr, module)}
    return {"python_bare_s": bare_wall, "python_bare_cpu_s": bare_cpu, "version_s": version_wall,
            "version_cpu_s": version_cpu, "imports": imports}


def _direct_imports(importtime: str, module: str) -> list[tuple[str, float]]:
    """The heaviest direct imports of ``module`` from ``-X importtime`` output: [(name, s)]."""
    rows: list[tuple[int, int, str]] = []  # (depth, cumulative us, name)
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cum, name = line[len("import time:"):].split("|")
        with contextlib.suppress(ValueError):
            rows.append(((len(name) - len(name.lstrip())) // 2, int(cum), name.strip()))
    end = next((i for i, r in enumerate(rows) if r[2] == module), len(rows))
    start = end
    while start > 0 and rows[start - 1][0] > rows[end][0] if end < len(rows) else False:
        start -= 1
    depth = rows[end][0] + 1 if end < len(rows) else 1
    direct = [(name, us / 1e6) for d, us, name in rows[start:end] if d == depth]
    return [(n, round(s, 3)) for n, s in sorted(direct, key=lambda x: -x[1])[:5]]


CASES = {
    "vs_manual": case_vs_manual,
    "handshakes": case_handshakes,
    "many_envs": case_many_envs,
    "http": case_http,
    "logsummary": case_logsummary,
    "escalation": case_escalation,
    "startup": case_startup,
}
