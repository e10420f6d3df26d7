"""Small builders of captured output for rule and engine tests (real formats, few lines)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.facts import Facts, collect_facts
from bot.models import StepResult, StepStatus

T0 = datetime(2025, 12, 10, 6, 14, 1, tzinfo=UTC)


def line(sec: float, msg: str, *, bare: bool = False) -> str:
    """``<docker ts> <go ts> msg`` (or ``<docker ts> msg`` for bare lines), ``sec`` after T0."""
    t = T0 + timedelta(seconds=sec)
    dts = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}000Z"
    return f"{dts} {msg}" if bare else f"{dts} {t.strftime('%Y/%m/%d %H:%M:%S')} {msg}"


def logtext(*entries: tuple[float, str] | tuple[float, str, bool]) -> str:
    return "\n".join(line(e[0], e[1], bare=bool(e[2]) if len(e) > 2 else False) for e in entries) + "\n"


START = [(0.0, "==> qcc_plus container entrypoint (ccproxy proxy)", True),
         (0.9, "qcc_plus version: v1.9.4 (commit=8c2d41f, built=2025-12-10T05:58:11Z)"),
         (0.9, "using health check mode: cli"),
         (1.0, "store: mysql pool configured (maxOpen=20, maxIdle=10, connMaxLifetime=30m0s)"),
         (1.1, "[migration] start config->settings migration"),
         (1.2, "[migration] config->settings migration finished (0 rows)"),
         (1.3, "using MySQL storage: ***@tcp(mysql:3306)/qcc_proxy?parseTime=true"),
         (1.4, "[HealthScheduler] start full health checks every 5m0s"),
         (1.4, "Claude Code proxy listening on :8001")]


def start(upto: str = "listening") -> list[tuple[Any, ...]]:
    """The start-up lines up to and including the one containing ``upto``."""
    out: list[tuple[Any, ...]] = []
    for e in START:
        out.append(e)
        if upto in str(e[1]):
            break
    return out


def ps_row(name: str, status: str, service: str = "proxy", project: str = "qcc_test", ports: str = "") -> str:
    state = "running" if status.startswith("Up") else status.split()[0].lower()
    return json.dumps({"ID": name + "id", "Names": name, "Image": f"{project}-{service}", "State": state,
                       "Status": status, "Ports": ports,
                       "Labels": f"com.docker.compose.project={project},"
                                 f"com.docker.compose.service={service}"})


def inspect_obj(name: str, status: str, *, exit_code: int = 0, oom: bool = False, restarts: int = 0,
                error: str = "", service: str = "proxy", pid: int = 0, memory: int = 0,
                env: list[str] | None = None) -> dict[str, Any]:
    return {"Id": name + "id", "Name": "/" + name, "RestartCount": restarts,
            "State": {"Status": status, "Running": status == "running", "Restarting": status == "restarting",
                      "OOMKilled": oom, "Pid": pid, "ExitCode": exit_code, "Error": error,
                      "StartedAt": "0001-01-01T00:00:00Z" if status == "created"
                      else "2025-12-10T06:14:01.000000000Z",
                      "FinishedAt": "2025-12-10T06:14:03.000000000Z"},
            "HostConfig": {"Memory": memory, "RestartPolicy": {"Name": "no"}},
            "Config": {"Env": env or [], "Labels": {"com.docker.compose.project": "qcc_test",
                                                    "com.docker.compose.service": service}}}


def step(step_id: str, output: str = "", status: str = "ok", **kw: Any) -> StepResult:
    return StepResult(id=step_id, title=step_id, status=StepStatus(status), output=output, **kw)


def steps(**outputs: Any) -> list[StepResult]:
    """``steps(proxy_logs="...", container_inspect=[obj, ...], schema_nodes=[rows])`` → StepResults."""
    out = []
    for step_id, value in outputs.items():
        if isinstance(value, StepResult):
            out.append(value)
        elif isinstance(value, list | dict):
            out.append(step(step_id, json.dumps(value)))
        else:
            out.append(step(step_id, value))
    return out


def facts(ctx: AnalysisContext, **outputs: Any) -> Facts:
    return collect_facts(steps(**outputs), ctx)


def schema(with_column: bool) -> list[dict[str, Any]]:
    cols = ["id", "name", "base_url", "api_key", "weight", "health_check_method"]
    if with_column:
        cols.append("health_check_model")
    return [{"name": c, "type": "varchar(128)", "nullable": "YES", "default_value": None}
            for c in [*cols, "created_at"]]


FREE_LOW = ("               total        used        free      shared  buff/cache   available\n"
            "Mem:            1987        1902          31           2          54          29\n")
FREE_OK = ("               total        used        free      shared  buff/cache   available\n"
           "Mem:            1987         912         402           2         655         921\n")


def ps_workers(n: int) -> str:
    rows = ["    PID    PPID   RSS %CPU ELAPSED COMMAND         COMMAND"]
    rows += [f"   {4100 + i}    3990 176000 20.0      40 claude          claude -p --model claude-haiku-4-5 "
             "Reply OK"
             for i in range(n)]
    rows.append("   3990    3970  61220 187.5     371 ccproxy         ccproxy proxy")
    return "\n".join(rows) + "\n"


DF_OK = ("Filesystem     1024-blocks      Used Available Capacity Mounted on\n"
         "/dev/vda1           41152812  16872652  24280160      41% /\n")


def healthy_host() -> dict[str, Any]:
    """Every step a healthy checklist needs besides the proxy's own (up, log, /version):
    MySQL Up (healthy), the schema query answered, disk and memory fine, no kernel kill."""
    return {"container_status": "\n".join([
                ps_row("qcc_test_proxy", "Up 5 minutes", ports="0.0.0.0:8001->8001/tcp"),
                ps_row("qcc_test_mysql", "Up 3 days (healthy)", service="mysql")]),
            "container_inspect": [inspect_obj("qcc_test_proxy", "running", pid=3990),
                                  inspect_obj("qcc_test_mysql", "running", pid=1822, service="mysql")],
            "schema_nodes": schema(True), "host_memory": FREE_OK, "host_disk": DF_OK, "kernel_oom": ""}
