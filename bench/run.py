"""``make bench``: every figure of issue 11 with its target, in one table (never run as unit tests).

Usage: ``python bench/run.py [--host sandbox|realengine|config:PATH:ENV[:LATENCY_CMD]] [--only CASE,...]
[--quick] [--profile-dir DIR] [--json OUT]``.

Each case runs in a fresh ``python bench/run.py --case NAME`` process (its own peak RSS, no
state shared between cases) that prints one JSON object; this process turns the results into
rows ``figure | measured | target | PASS/FAIL`` and exits 1 when a target is missed. Ratios
are measured side by side in one process; absolute times are shown for reference only.
``--host`` points the SSH cases (bot vs manual, handshakes) at another host, e.g.
``realengine``: the healthy ``qcc_test`` stack on this machine's real Docker engine
(bench/realengine.py; see bench/hosts.py). Method and a recorded run: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

Row = tuple[str, str, str, bool | None]  # figure, measured, target, passed (None: for information)


def run_case(name: str, args: dict[str, Any], timeout_s: float = 900) -> dict[str, Any]:
    """Run one case in a fresh interpreter; its JSON result, or ``{"error": ...}``."""
    proc = subprocess.run([sys.executable, str(Path(__file__)), "--case", name, "--args", json.dumps(args)],
                          capture_output=True, text=True, timeout=timeout_s, cwd=str(REPO), check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return dict(json.loads(lines[-1]))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def rows_vs_manual(r: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for lv in r["levels"]:
        lat = f"{lv['latency_s']:g} s/docker cmd"
        if "skipped" in lv:
            out.append((f"bot vs manual ({r['host']}, {lat})", lv["skipped"], "", None))
            continue
        last = lv["latency_s"] == 0.5
        out.append((f"bot vs seed's manual ssh sequence ({r['host']}, {lat})",
                    f"{lv['ratio']:.2f}x  ({lv['manual_s']:.2f} s / {lv['bot_s']:.2f} s)",
                    ">= 4x" if last else "", lv["ratio"] >= 4 if last else None))
        out.append((f"bot vs 1 handshake + slowest remote cmd ({lat})",
                    f"{lv['vs_floor']:.2f}x  ({lv['bot_s']:.2f} s / {lv['floor_s']:.2f} s; slowest step "
                    f"{lv['slowest_steps'][0][0]} {lv['slowest_steps'][0][1]:.2f} s; "
                    f"{lv.get('docker_cmds')} docker cmds, up to {lv.get('max_docker_in_one_session')} in one "
                    f"session, last started at {lv.get('last_docker_start_s', 0):.2f} s)",
                    "<= 1.3x" if last else "", lv["vs_floor"] <= 1.3 if last else None))
        if "vs_own_floor" in lv:
            out.append((f"bot vs 1 handshake + slowest cmd the bot itself runs ({lat})",
                        f"{lv['vs_own_floor']:.2f}x  ({lv['bot_s']:.2f} s / {lv['own_floor_s']:.2f} s: step "
                        f"{lv['own_floor_step']} alone over OpenSSH)",
                        "<= 1.3x" if last else "", lv["vs_own_floor"] <= 1.3 if last else None))
    return out


def rows_handshakes(r: dict[str, Any]) -> list[Row]:
    n = r["server_logins"] if r["server_logins"] is not None else r["transport_connections"]
    return [(f"SSH handshakes over {r['runs']} diagnoses, one bot process ({r.get('host', 'sandbox')})",
             f"{n}  (sshd accepted {r['server_logins']}, transport opened {r['transport_connections']})",
             "1", n == 1)]


def rows_http(r: dict[str, Any]) -> list[Row]:
    return [(f"HTTP 200 for {r['concurrency']} concurrent signed /qcc diagnose, p50",
             f"{ms(r['p50_s'])}  ({r['requests']} requests)", "", None),
            (f"HTTP 200 for {r['concurrency']} concurrent signed /qcc diagnose, p99",
             f"{ms(r['p99_s'])}  (max {ms(r['max_s'])})", "<= 50 ms", r["p99_s"] <= 0.050),
            ("same burst of /qcc help (ack only, starts no work), p50 / p99",
             f"{ms(r['help_p50_s'])} / {ms(r['help_p99_s'])}  (diagnose p99 / help p99 = "
             f"{r['p99_s'] / r['help_p99_s']:.1f}x; bot CPU per request {ms(r['ack_cpu_s'])})", "", None)]


def rows_logsummary(results: list[dict[str, Any]]) -> list[Row]:
    out: list[Row] = []
    prev: dict[str, Any] | None = None
    for r in results:
        if "error" in r:
            out.append(("log summary", r["error"], "", False))
            continue
        grow = ""
        if prev is not None:
            grow = (f"; x{r['lines'] / prev['lines']:g} lines -> CPU x{r['cpu_s'] / prev['cpu_s']:.1f}, "
                    f"extra RSS {prev['growth_mib']:.0f} -> {r['growth_mib']:.0f} MiB")
        target = "< 1 s" if r["lines"] == 100_000 else ""
        out.append((f"log summary, {r['lines']:,} lines ({r['bytes'] / 1e6:.0f} MB)",
                    f"CPU {r['cpu_s']:.2f} s (wall {r['seconds']:.2f} s), RSS +{r['growth_mib']:.0f} MiB "
                    f"over the {r['input_mib']:.0f} MiB input{grow}",
                    target + (" (CPU)" if target else ""), r["cpu_s"] < 1.0 if target else None))
        prev = r
    return out


def rows_escalation(r: dict[str, Any]) -> list[Row]:
    return [(f"escalation of a {r['log_mb']} MB container log, upload included: peak RSS growth",
             f"{r['growth_mib']:.0f} MiB  ({r['proxy_log_lines']:,} lines, archive {r['archive_mib']:.0f} MiB, "
             f"{r['seconds']:.0f} s, bot CPU {r['bot_cpu_s']:.0f} s)", "< 64 MiB", r["growth_mib"] < 64),
            ("escalation: bytes uploaded == archive (SHA-256)", str(r["uploaded_equals_archive"]), "True",
             bool(r["uploaded_equals_archive"]))]


def rows_many_envs(r: dict[str, Any]) -> list[Row]:
    return [(f"{r['count']} environments diagnosed at once vs one ({r['latency_s']:g} s/docker cmd)",
             f"{r['ratio']:.2f}x  ({r['many_s']:.2f} s / {r['one_s']:.2f} s; bot CPU "
             f"{r['bot_cpu_s_per_round']:.1f} s per round; the sandbox hosts' own CPU "
             f"{r['host_cpu_s_per_diagnosis']:.1f} s per diagnosis = {r['host_cpu_floor_s']:.1f} s for {r['count']} "
             f"on these {r['cores']} cores)", "<= 2x", r["ratio"] <= 2),
            (f"{r['count']} environments at once vs max(one, the hosts' CPU floor)",
             f"{r['many_s'] / max(r['one_s'], r['host_cpu_floor_s']):.2f}x  (what is left once the sandbox hosts' "
             "own CPU on the shared cores is accounted for)", "", None),
            *([(f"{r['count']} environments at once vs one, in-memory hosts (the bot alone, "
                f"{r['latency_s']:g} s per remote cmd)",
                f"{r['in_memory']['ratio']:.2f}x  ({r['in_memory']['many_s']:.2f} s / {r['in_memory']['one_s']:.2f} s)",
                "<= 2x", r["in_memory"]["ratio"] <= 2)] if "in_memory" in r else [])]


def rows_startup(r: dict[str, Any]) -> list[Row]:
    cli = r["imports"]["bot.cli"]
    server = r["imports"]["handlers.server"]

    def top(entry: dict[str, Any]) -> str:
        return ", ".join(f"{n} {ms(s)}" for n, s in entry["top"][:3])

    return [("qcc-bot --version, cold start (CPU of the process)",
             f"{ms(r['version_cpu_s'])}  (wall {ms(r['version_s'])}; bare python {ms(r['python_bare_cpu_s'])} CPU)",
             "< 500 ms", r["version_cpu_s"] < 0.5),
            ("import bot.cli (CPU)", f"{ms(cli['cpu_s'])}  (heaviest: {top(cli)})", "< 150 ms",
             cli["cpu_s"] < 0.15),
            ("import handlers.server, what `serve` loads (CPU)", f"{ms(server['cpu_s'])}  (heaviest: {top(server)})",
             "", None)]


def print_table(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="qcc-chatops benchmarks (issue 11)", show_lines=False)
    for col in ("figure", "measured", "target", "result"):
        table.add_column(col, overflow="fold")
    for figure, measured, target, ok in rows:
        verdict = "" if ok is None else ("[green]PASS[/]" if ok else "[red]FAIL[/]")
        table.add_row(figure, measured, target, verdict)
    Console(width=200).print(table)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case")
    p.add_argument("--args", default="{}")
    p.add_argument("--host", default="sandbox")
    p.add_argument("--only", default="", help="comma-separated case names")
    p.add_argument("--quick", action="store_true", help="smaller sizes (50 MB escalation, no 1M-line summary)")
    p.add_argument("--profile-dir", default=str(REPO / "build" / "bench-profiles"))
    p.add_argument("--json", default="", help="also write every raw result to this file")
    p.add_argument("--from-json", default="", help="render the table of a saved --json run instead of running")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown (for docs/benchmarks.md)")
    a = p.parse_args(argv)
    if a.case:
        from bench.cases import CASES

        print(json.dumps(CASES[a.case](**json.loads(a.args)), default=str))
        return 0

    only = set(filter(None, a.only.split(",")))
    plan: list[tuple[str, str, dict[str, Any]]] = [
        ("vs_manual", "vs_manual", {"host_spec": a.host, "reps": 2 if a.quick else 3, "profile_dir": a.profile_dir}),
        ("handshakes", "handshakes", {"host_spec": a.host}),
        ("http", "http", {"rounds": 3 if a.quick else 5, "profile_dir": ""}),
        *[("logsummary", "logsummary", {"lines": n})
          for n in ((10_000, 100_000) if a.quick else (10_000, 100_000, 1_000_000))],
        ("escalation", "escalation", {"log_mb": 50 if a.quick else 500}),
        ("many_envs", "many_envs", {}),
        ("startup", "startup", {}),
    ]
    renderers = {"vs_manual": rows_vs_manual, "handshakes": rows_handshakes, "http": rows_http,
                 "escalation": rows_escalation, "many_envs": rows_many_envs, "startup": rows_startup}
    raw: dict[str, Any] = {}
    t0 = time.perf_counter()
    if a.from_json:
        raw = json.loads(Path(a.from_json).read_text())
    else:
        for key, case, args in plan:
            if only and key not in only:
                continue
            started = time.perf_counter()
            result = run_case(case, args)
            print(f"  {case} {args.get('lines', '') or args.get('log_mb', '')} done in "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
            raw.setdefault(key, []).append(result)
    rows: list[Row] = []
    for key, results in raw.items():
        if key == "logsummary":
            rows.extend(rows_logsummary(results))
            continue
        for result in results:
            if "error" in result:
                rows.append((key, f"error: {result['error']}", "", False))
            else:
                rows.extend(renderers[key](result))
    if a.markdown:
        print("| figure | measured | target | result |\n|---|---|---|---|")
        for figure, measured, target, ok in rows:
            verdict = "" if ok is None else ("PASS" if ok else "**FAIL**")
            print(f"| {figure} | {measured} | {target} | {verdict} |")
        return 0 if all(ok is not False for *_, ok in rows) else 1
    print_table(rows)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"load average at the end: {' '.join(load)} on {os.cpu_count()} cores "
          "(shared machine: absolute times inflate with load, ratios much less)")
    print(f"total {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if a.json:
        Path(a.json).write_text(json.dumps(raw, indent=2, default=str))
    return 0 if all(ok is not False for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
