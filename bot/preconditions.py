"""Re-checks run right before (and right after) an approved fix.

Each check observes the environment *now* and answers two questions:

* ``holds`` — is the situation still the one that was diagnosed, so the fix may run?
  (column still missing? container still in the diagnosed state? HEAD not yet at the
  pinned commit? port still held?)
* ``fixed`` — is the state the fix aims for already there? Used after the fix to verify it.

The fix registry (``bot.fixes.FIXES``) maps an action id to its check. An action without a check never runs (fails
closed). Checks use the runbook's own steps and parsers where they exist.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from bot.config import EnvironmentConfig
from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.hostparse import parse_deploy_procs, parse_schema_columns, parse_ss_listeners
from bot.diagnosis.parsers import Container, parse_docker_ps, pick_container
from bot.errors import TransportError
from bot.models import Action, Diagnosis, StepStatus
from bot.runbook.steps import StepId
from bot.service import DiagnosisService
from bot.transports.base import EnvironmentTransports, one_line

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
ALTER_RE = re.compile(r"ALTER\s+TABLE\s+`?(\w+)`?\s+ADD\s+(?:COLUMN\s+)?`?(\w+)`?", re.IGNORECASE)
SCHEMA_SQL = (
    "SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = %(database)s AND TABLE_NAME = %(table)s ORDER BY ORDINAL_POSITION"
)
CHECK_TIMEOUT_S = 20.0


class Check(BaseModel):
    """What a re-check observed: may the fix run (``holds``), is it already done (``fixed``)."""

    holds: bool
    fixed: bool = False
    detail: str


@dataclass
class FixContext:
    """Everything a check may look at: the environment, the action and what was diagnosed."""

    env_name: str
    env: EnvironmentConfig
    action: Action
    transports: EnvironmentTransports
    service: DiagnosisService
    diagnosis: Diagnosis | None = None
    analysis: AnalysisContext | None = None


Checker = Callable[[FixContext], Awaitable[Check]]


def _proxy(ctx: FixContext, containers: list[Container]) -> Container | None:
    name = ctx.action.params.get("container") or (ctx.analysis.proxy_container if ctx.analysis else None)
    return pick_container(containers, name, ctx.env.compose_project, ctx.env.proxy_service)


def _diagnosed_state(ctx: FixContext) -> str | None:
    if ctx.action.params.get("state"):
        return ctx.action.params["state"]
    if ctx.diagnosis is None:
        return None
    for step in ctx.diagnosis.steps:
        if step.id == StepId.CONTAINER_STATUS and step.status == StepStatus.OK:
            c = _proxy(ctx, parse_docker_ps(step.output))
            return c.state if c else "missing"
    return None


async def check_add_column(ctx: FixContext) -> Check:
    """Column still missing (adding it again fails with Error 1060) and its table exists."""
    sql = ctx.transports.sql
    if sql is None or ctx.env.mysql is None:
        return Check(holds=False, detail="no MySQL is configured for this environment")
    m = ALTER_RE.search(" ".join(ctx.action.commands))
    table = ctx.action.params.get("table") or (m.group(1) if m else "")
    column = ctx.action.params.get("column") or (m.group(2) if m else "")
    if not table or not column:
        return Check(holds=False, detail="cannot tell which column this fix adds")
    rows = await sql.query(SCHEMA_SQL, {"database": ctx.env.mysql.database, "table": table},
                           timeout_s=CHECK_TIMEOUT_S)
    names = {c.name.lower() for c in parse_schema_columns(json.dumps(rows, default=str))}
    where = f"{ctx.env.mysql.database}.{table}"
    if column.lower() in names:
        return Check(holds=False, fixed=True, detail=f"column {where}.{column} exists")
    if not names:
        return Check(holds=False, detail=f"table {where} does not exist")
    return Check(holds=True, detail=f"column {where}.{column} is missing")


async def check_container_state(ctx: FixContext) -> Check:
    """No deploy/build is running, and the proxy container is still in the state the diagnosis
    saw (and not running)."""
    steps = {s.id: s for s in await ctx.service.run_checks(ctx.env_name, [StepId.CONTAINER_STATUS,
                                                                          StepId.DEPLOY_RUNNING])}
    status, deploys = steps.get(StepId.CONTAINER_STATUS), steps.get(StepId.DEPLOY_RUNNING)
    if status is None or status.status != StepStatus.OK:
        why = (status.error or status.status.value) if status else "step missing"
        return Check(holds=False, detail=f"cannot read container states: {why}")
    proxy = _proxy(ctx, parse_docker_ps(status.output))
    now = proxy.state if proxy else "missing"
    if now == "running":
        return Check(holds=False, fixed=True,
                     detail=f"the proxy container is running ({proxy.status if proxy else ''})")
    running = parse_deploy_procs(deploys.output) if deploys and deploys.status == StepStatus.OK else []
    if running:
        return Check(holds=False, detail=f"a deploy or build is running (pid {running[0].pid}); wait for it")
    diagnosed = _diagnosed_state(ctx)
    if diagnosed is not None and now != diagnosed:
        return Check(holds=False,
                     detail=f"the proxy container is {now} now; it was {diagnosed} when diagnosed")
    if ctx.action.cause_id == "port_conflict":  # bringing it up while the port is held fails the same way
        port, holders, pubs = await _port_state(ctx)
        others = [c.name for c in pubs if c.compose_service != ctx.env.proxy_service]
        if holders or others:
            return Check(holds=False, detail=f"port {port} is still held by {', '.join(others + holders)}; "
                                             "free it first (see the free-port fix), then restart")
        return Check(holds=True, detail=f"the proxy container is still {now} and port {port} is free")
    return Check(holds=True, detail=f"the proxy container is still {now}")


async def check_rollback(ctx: FixContext) -> Check:
    """A pinned good commit is recorded, present in the checkout, and HEAD is not there yet."""
    commit = ctx.action.params.get("commit", "")
    if not SHA_RE.match(commit):
        return Check(holds=False, detail="no pinned good commit (full SHA) is recorded for this rollback")
    if any(re.search(r"HEAD\s*[~^]", c) for c in ctx.action.commands):
        return Check(holds=False, detail="refusing a rollback relative to HEAD")
    wd = shlex.quote(ctx.env.workdir)
    res = await ctx.transports.shell.run(
        f"git -C {wd} cat-file -e {commit}^{{commit}} && git -C {wd} rev-parse HEAD",
        timeout_s=CHECK_TIMEOUT_S)
    if not res.ok:
        why = one_line(res.stderr, 200) or f"exit status {res.exit_status}"
        return Check(holds=False, detail=f"pinned commit {commit[:12]} could not be found in the checkout at "
                                         f"{ctx.env.workdir} (git: {why})")
    head = (res.stdout.strip().splitlines() or [""])[-1].strip()
    if head == commit:
        return Check(holds=False, fixed=True, detail=f"the checkout is at the pinned commit {commit[:12]}")
    expected = ctx.action.params.get("head") or ctx.action.params.get("bad_commit")
    if expected and head != expected:
        return Check(holds=False,
                     detail=f"HEAD moved since the diagnosis (now {head[:12]}, was {expected[:12]})")
    return Check(holds=True, detail=f"HEAD is {head[:12]}; pinned good commit {commit[:12]} is present")


async def _port_state(ctx: FixContext) -> tuple[int, list[str], list[Container]]:
    port = int(ctx.action.params.get("port") or ctx.env.proxy_port)
    steps = {s.id: s for s in await ctx.service.run_checks(ctx.env_name, [StepId.PORT_LISTENERS,
                                                                          StepId.PORT_PUBLISHERS])}
    listeners = steps.get(StepId.PORT_LISTENERS)
    publishers = steps.get(StepId.PORT_PUBLISHERS)
    if listeners is None or listeners.status != StepStatus.OK:
        raise TransportError("cannot read the port listeners", detail=listeners.error if listeners else None)
    holders = [f"{name}:{pid}" for lst in parse_ss_listeners(listeners.output) if lst.port == port
               for name, pid in (lst.processes or [("unknown", 0)])]
    pubs = parse_docker_ps(publishers.output) if publishers and publishers.status == StepStatus.OK else []
    return port, holders, pubs


async def check_port_holder(ctx: FixContext) -> Check:
    """The port is still held by the process or container the diagnosis named (not the proxy)."""
    port, holders, pubs = await _port_state(ctx)
    proxy_names = {ctx.analysis.proxy_container} if ctx.analysis and ctx.analysis.proxy_container else set()
    squatters = [c for c in pubs if c.name not in proxy_names
                 and c.compose_service != ctx.env.proxy_service]
    target = ctx.action.params.get("container") or ctx.action.params.get("squatter")
    pid = ctx.action.params.get("pid")
    if target:
        found = [c for c in squatters if c.name == target]
        if not found:
            return Check(holds=False, fixed=True,
                         detail=f"container {target} no longer publishes port {port}")
        return Check(holds=True, detail=f"container {target} still publishes port {port} ({found[0].state})")
    if pid:
        if not any(h.endswith(f":{pid}") for h in holders):
            return Check(holds=False, fixed=True, detail=f"pid {pid} no longer listens on port {port}")
        return Check(holds=True, detail=f"pid {pid} still listens on port {port}")
    if not holders and not squatters:
        return Check(holds=False, fixed=True, detail=f"port {port} is free")
    return Check(holds=True, detail=f"port {port} is held by {', '.join(holders) or squatters[0].name}")


async def check_precondition(ctx: FixContext) -> Check:
    """Run the action's check from the fix registry (``bot.fixes.FIXES``); unknown actions,
    params that do not fit the fix's params model and unreadable state never allow a run."""
    from bot.fixes import fix_for  # the registry imports the checks of this module

    fix = fix_for(ctx.action.id)
    if fix is None or fix.check is None:
        return Check(holds=False,
                     detail=f"no precondition check is defined for fix {ctx.action.id!r}; not run")
    try:
        fix.params.model_validate(ctx.action.params)
    except ValidationError as exc:
        return Check(holds=False, detail=f"the fix's params do not fit {fix.params.__name__}: "
                                         f"{exc.errors()[0]['msg']}; not run")
    checker = fix.check
    try:
        return await checker(ctx)
    except TransportError as exc:
        return Check(holds=False, detail=f"precondition could not be checked: {exc}")
