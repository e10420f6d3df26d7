"""Benchmarks with targets (never run as unit tests): `make bench` or `python bench/run.py`.

Each case runs in a fresh subprocess so its peak RSS (ru_maxrss, bytes) is its own.
Targets are for the 2-core CI machine; a miss prints FAIL and the script exits 1.

  summarize_50mb   summarize_logs on 50 MB of proxy log       ≤ 60 s, ≤ 400 MB RSS
  redact_50mb      redact_text on 50 MB                       ≤ 30 s
  analyze          analyze() of a full 17-step capture         ≤ 0.25 s each (median of 20)
  executor         17 steps over in-memory fakes              ≤ 0.05 s each (median of 50)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

TARGETS = {
    "summarize_50mb": {"seconds": 60.0, "rss_mb": 400.0},
    "redact_50mb": {"seconds": 30.0, "rss_mb": 800.0},
    "analyze": {"seconds": 0.25, "rss_mb": 300.0},
    "executor": {"seconds": 0.05, "rss_mb": 300.0},
}

LOG_LINES = [
    "2026-11-29T12:00:{s:02d}.123456789Z 2026/11/29 12:00:{s:02d} [HealthScheduler] checking all nodes...",
    "2026-11-29T12:00:{s:02d}.223456789Z 2026/11/29 12:00:{s:02d} health check failed for node node-{n}: "
    "claude cli failed: signal: killed: stdout= stderr=",
    "2026-11-29T12:00:{s:02d}.323456789Z 2026/11/29 12:00:{s:02d} [health] node node-{n} reached failure "
    "threshold (3/3)",
    "2026-11-29T12:00:{s:02d}.423456789Z 2026/11/29 12:00:{s:02d} proxy request id={n} status=503 took={n}ms",
]


def make_log(size_bytes: int) -> str:
    parts: list[str] = []
    total = 0
    i = 0
    while total < size_bytes:
        line = LOG_LINES[i % len(LOG_LINES)].format(s=i % 60, n=i % 977) + "\n"
        parts.append(line)
        total += len(line)
        i += 1
    return "".join(parts)


def case(name: str) -> dict[str, float]:
    import resource

    if name in ("summarize_50mb", "redact_50mb"):
        text = make_log(50 * 1024 * 1024)
        t0 = time.perf_counter()
        if name == "summarize_50mb":
            from bot.diagnosis.logsummary import summarize_logs

            summarize_logs(text)
        else:
            from bot.diagnosis.redact import redact_text

            redact_text(text, ["hunter2-secret"])
        seconds = time.perf_counter() - t0
    elif name == "analyze":
        from datetime import UTC, datetime

        from bot.diagnosis.context import AnalysisContext
        from bot.diagnosis.engine import analyze
        from bot.models import StepResult, StepStatus
        from bot.runbook.loader import load_runbook

        rb = load_runbook()
        steps = [StepResult(id=s.id, title=s.title, status=StepStatus.OK,
                            output=make_log(300 * 200) if "log" in s.id or "grep" in s.id else "")
                 for s in rb.steps]
        ctx = AnalysisContext(environment="bench", compose_project="qcc_test")
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            analyze(steps, ctx, started_at=datetime.now(UTC), duration_s=1.0)
            times.append(time.perf_counter() - t0)
        seconds = statistics.median(times)
    elif name == "executor":
        import asyncio

        from bot.config import load_settings
        from bot.runbook.executor import RunbookExecutor
        from bot.runbook.loader import load_runbook
        from bot.transports.base import EnvironmentTransports
        from bot.transports.fake import FakeCommandRunner, FakeSqlRunner

        settings = load_settings(data={"environments": {"b": {"ssh": {"host": "127.0.0.1", "user": "u"},
                                                              "compose_project": "qcc_test",
                                                              "mysql": {"user": "u", "database": "d"}}}}, env={})
        env = settings.environment("b")
        ex = RunbookExecutor(load_runbook())

        async def go() -> list[float]:
            tr = EnvironmentTransports(name="b", shell=FakeCommandRunner({"": ""}), sql=FakeSqlRunner())
            out = []
            for _ in range(50):
                t0 = time.perf_counter()
                await ex.run("b", env, tr)
                out.append(time.perf_counter() - t0)
            return out

        seconds = statistics.median(asyncio.run(go()))
    else:
        raise SystemExit(f"unknown case {name}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "rss_mb": rss_mb}


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--case":
        print(json.dumps(case(sys.argv[2])))
        return 0
    failed = 0
    print(f"{'case':16} {'seconds':>10} {'target':>8} {'rss MB':>8} {'target':>8}  result")
    for name, target in TARGETS.items():
        out = subprocess.run([sys.executable, __file__, "--case", name], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name:16} error: {out.stderr.strip().splitlines()[-1:]}")
            failed += 1
            continue
        r = json.loads(out.stdout)
        ok = r["seconds"] <= target["seconds"] and r["rss_mb"] <= target["rss_mb"]
        failed += not ok
        print(f"{name:16} {r['seconds']:10.4f} {target['seconds']:8g} {r['rss_mb']:8.0f} {target['rss_mb']:8g}"
              f"  {'ok' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
