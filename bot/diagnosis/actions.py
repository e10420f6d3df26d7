"""Suggested fixes per cause: ``build_actions(causes, facts, ctx) -> list[Action]``. Pure.

Commands are built from configuration (:class:`AnalysisContext`) only and every value is
shell-quoted (:func:`bot.runbook.commands.render_argv`). Action ids:

* ``add_column`` (sql) — the seed's exact ALTER, only when the schema step shows
  ``nodes.health_check_model`` missing; followed by ``restart_proxy``.
* ``restart_proxy`` (ssh) — ``cd <workdir> && docker compose -p <project> -f <file> up -d --no-build``
  when MySQL is down or the container must be (re)created, else ``... restart <proxy_service>``.
* ``rollback`` (ssh) — ``ctx.rollback_command`` with ``${commit}`` = a pinned SHA recorded here
  (the running build from ``/version`` when it differs from HEAD, else the commit before HEAD);
  never relative to HEAD. ``params={"commit": sha, "head": head}``.
* ``free_port`` (advice) — who holds the port; ``remove_squatter`` (ssh, its own approval) —
  ``docker rm -f <name>`` when the holder is a stale container of this compose project.
* advice ids (no commands): ``lower_health_check_concurrency``, ``delay_first_health_check``,
  ``add_panic_recovery``, ``make_migration_idempotent``, ``grant_mysql_privileges``, ``fix_dsn``,
  ``free_disk``, ``wait_for_deploy``, ``check_docker_daemon``, ``fix_runtime_fatal``,
  ``limit_memory``, ``speed_up_start``.
"""

from __future__ import annotations

import re
import shlex

from pydantic import BaseModel, ConfigDict, Field

from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.facts import HEALTH_COLUMN, Facts, same_commit
from bot.models import Action, ActionId, ActionKind, Cause, CauseId
from bot.runbook.commands import render_argv
from bot.runbook.steps import StepId

ADD_COLUMN_SQL = ("ALTER TABLE nodes ADD COLUMN health_check_model VARCHAR(128) "
                  "DEFAULT 'claude-haiku-4-5-20251001' AFTER health_check_method")
VERIFY_PROXY = [StepId.CONTAINER_STATUS, StepId.CONTAINER_INSPECT, StepId.PROXY_LOGS, StepId.DEPLOYED_VERSION]
MIN_CONFIDENCE = 0.4  # causes below this get no actions

class NoParams(BaseModel):
    """Params of a fix that needs none (advice, a compose restart)."""

    model_config = ConfigDict(extra="forbid")


class RestartParams(BaseModel):
    """``restart_proxy``: optionally the container and the state the diagnosis saw."""

    model_config = ConfigDict(extra="forbid")

    container: str | None = None
    state: str | None = None


class AddColumnParams(BaseModel):
    """``add_column``: which column of which table is added."""

    model_config = ConfigDict(extra="forbid")

    table: str | None = Field(None, pattern=r"^\w+$")  # None: read from the ALTER statement
    column: str | None = Field(None, pattern=r"^\w+$")


class RollbackParams(BaseModel):
    """``rollback``: the pinned commit (full SHA, checked again before running) and the HEAD seen."""

    model_config = ConfigDict(extra="forbid")

    commit: str = ""
    head: str = ""
    bad_commit: str | None = None  # older proposals named the HEAD seen so


class PortParams(BaseModel):
    """``free_port`` / ``remove_squatter``: the port, and who holds it."""

    model_config = ConfigDict(extra="forbid")

    port: str | None = Field(None, pattern=r"^\d{1,5}$")  # None: the environment's proxy port
    holder: str | None = None
    container: str | None = None
    squatter: str | None = None  # older proposals' name for `container`
    pid: str | None = None


def _params(model: BaseModel) -> dict[str, str]:
    return {k: str(v) for k, v in model.model_dump(exclude_none=True).items()}


ADVICE: dict[ActionId, str] = {
    ActionId.LOWER_HEALTH_CHECK_CONCURRENCY: "Lower health-check concurrency (cli_concurrency 1-2) so claude CLI "
                                      "processes cannot exhaust the 2 GB host",
    ActionId.DELAY_FIRST_HEALTH_CHECK: "Delay the first full health check to 30 s after start "
                                "(internal/proxy/health_scheduler.go:79-80)",
    ActionId.ADD_PANIC_RECOVERY: "Add a global panic recovery in cmd/cccli/main.go that logs the panic and stack",
    ActionId.MAKE_MIGRATION_IDEMPOTENT: "Make the migration check information_schema before ADD COLUMN "
                                 "(internal/store/migration.go); do not run the ALTER again",
    ActionId.GRANT_MYSQL_PRIVILEGES: "Grant the DSN's MySQL user the privileges the migration needs "
                              "(e.g. GRANT ALTER, CREATE, INDEX ON <db>.* TO the proxy user) or fix its "
                              "password",
    ActionId.FIX_DSN: "Fix PROXY_MYSQL_DSN in the compose file / .env: the qcc user's DSN for "
               "tcp(mysql:3306)/qcc_proxy",
    ActionId.FREE_DISK: "Free disk space on the docker root (old images and build cache: `docker image prune`, "
                 "`docker builder prune`) before restarting",
    ActionId.WAIT_FOR_DEPLOY: "Wait for deploy-server.sh to finish, then diagnose again",
    ActionId.CHECK_DOCKER_DAEMON: "Check the Docker daemon (`systemctl status docker`, `journalctl -u docker`) "
                           "before anything else",
    ActionId.FIX_RUNTIME_FATAL: "Fix the runtime fatal in code (guard shared maps with a mutex; bound memory use)",
    ActionId.LIMIT_MEMORY: "Find what used the memory (health-check workers, MySQL) and bound it; "
                    "consider a memory limit for the proxy",
    ActionId.SPEED_UP_START: "Make start-up faster than the deploy's 60 s wait (slow migrations) or raise "
                      "deploy-server.sh's wait",
}
_CAUSE_ADVICE: dict[CauseId, list[ActionId]] = {
    CauseId.STARTUP_HEALTH_CHECK_OVERLOAD: [ActionId.LOWER_HEALTH_CHECK_CONCURRENCY, ActionId.DELAY_FIRST_HEALTH_CHECK],
    CauseId.PANIC: [ActionId.ADD_PANIC_RECOVERY],
    CauseId.RUNTIME_FATAL: [ActionId.FIX_RUNTIME_FATAL],
    CauseId.MYSQL_ACCESS_DENIED: [ActionId.GRANT_MYSQL_PRIVILEGES],
    CauseId.CONFIG_ERROR: [ActionId.FIX_DSN],
    CauseId.DISK_FULL: [ActionId.FREE_DISK],
    CauseId.DEPLOY_IN_PROGRESS: [ActionId.WAIT_FOR_DEPLOY],
    CauseId.DOCKER_UNRESPONSIVE: [ActionId.CHECK_DOCKER_DAEMON],
    CauseId.OOM_KILLED: [ActionId.LIMIT_MEMORY],
    CauseId.DEPLOY_HEALTH_TIMEOUT: [ActionId.SPEED_UP_START],
}
_ROLLBACK_CAUSES = {CauseId.MIGRATION_FAILED, CauseId.PANIC, CauseId.RUNTIME_FATAL, CauseId.CRASH_LOOP}


def _compose(ctx: AnalysisContext, *args: str) -> str:
    argv = [ctx.docker, "compose", "-p", ctx.compose_project, "-f", ctx.compose_file, *args]
    return f"cd {shlex.quote(ctx.workdir)} && {render_argv(argv, {})}"


def restart_proxy(ctx: AnalysisContext, cause_id: str, *, recreate: bool, why: str = "") -> Action:
    """``up -d --no-build`` (starts MySQL too, recreates a missing/changed container), else
    ``restart <proxy_service>``."""
    if recreate:
        cmd, title = _compose(ctx, "up", "-d", "--no-build"), "Bring the stack up without rebuilding"
    else:
        cmd, title = _compose(ctx, "restart", ctx.proxy_service), f"Restart the {ctx.proxy_service} service"
    precondition = "no deploy-server.sh or compose build is running, the proxy is still in its diagnosed state"
    if cause_id == "port_conflict":
        precondition += f", and port {ctx.proxy_port} is free"
    return Action(id=ActionId.RESTART_PROXY, title=title + (f" ({why})" if why else ""), kind=ActionKind.SSH,
                  commands=[cmd], cause_id=cause_id, precondition=precondition,
                  verify_steps=list(VERIFY_PROXY))


def add_column(facts: Facts, cause_id: str) -> Action | None:
    """The seed's ALTER, only when the schema step shows the column missing."""
    if facts.schema_has(HEALTH_COLUMN) is not False:
        return None
    sql, title = ADD_COLUMN_SQL, f"Add the missing column nodes.{HEALTH_COLUMN}"
    if facts.schema_has("health_check_method") is False:
        sql = sql.rsplit(" AFTER ", 1)[0]
        title += " (health_check_method is missing too, so without AFTER)"
    return Action(id=ActionId.ADD_COLUMN, title=title, kind=ActionKind.SQL, commands=[sql], cause_id=cause_id,
                  precondition=f"nodes.{HEALTH_COLUMN} is still missing (information_schema.COLUMNS)",
                  params=_params(AddColumnParams(table="nodes", column=HEALTH_COLUMN)),
                  verify_steps=[StepId.SCHEMA_NODES])


def pinned_commit(facts: Facts) -> tuple[str, str] | None:
    """``(full sha, why)`` of the commit to roll back to, or None when no pin is known.

    Only a commit the checkout's own log showed (``git log``, full SHAs) is ever pinned: a
    running build whose (short) commit is not among them is not offered, since its precondition
    (the commit exists in the checkout) could not be shown to hold."""
    commits = facts.commits or []
    head = commits[0].sha if commits else ""
    deployed = facts.version.git_commit.strip() if facts.version else ""
    if deployed and head and re.fullmatch(r"[0-9a-f]{7,64}", deployed) and not same_commit(deployed, head):
        full = next((c.sha for c in commits if same_commit(c.sha, deployed)), None)
        if full is not None:
            return full, "the build still running (/version) differs from HEAD"
    if len(commits) >= 2:
        return commits[1].sha, "the commit before HEAD, pinned by SHA"
    return None


def rollback(facts: Facts, ctx: AnalysisContext, cause_id: str) -> Action | None:
    """Roll back to a pinned SHA with ``ctx.rollback_command``; None without a pin or a command."""
    pin = pinned_commit(facts)
    if pin is None or not ctx.rollback_command:
        return None
    sha, why = pin
    head = facts.commits[0].sha if facts.commits else ""
    variables = {"commit": sha, "compose_project": ctx.compose_project, "compose_file": ctx.compose_file,
                 "workdir": ctx.workdir, "proxy_service": ctx.proxy_service, "docker": ctx.docker,
                 "environment": ctx.environment}
    cmd = f"cd {shlex.quote(ctx.workdir)} && {render_argv(list(ctx.rollback_command), variables)}"
    return Action(id=ActionId.ROLLBACK, title=f"Roll back to {sha[:12]} ({why})", kind=ActionKind.SSH,
                  commands=[cmd],
                  cause_id=cause_id, params=_params(RollbackParams(commit=sha, head=head)),
                  precondition=f"the checkout's HEAD is still {head[:12] or 'unknown'} and {sha[:12]} exists",
                  verify_steps=[StepId.CHECKOUT_HEAD, *VERIFY_PROXY])


def _is_squatter(name: str, labels: dict[str, str], facts: Facts, ctx: AnalysisContext) -> bool:
    if name == facts.proxy_name:
        return False
    project = labels.get("com.docker.compose.project")
    return project == ctx.compose_project or (project is None and name.startswith(
        (f"{ctx.compose_project}_", f"{ctx.compose_project}-")))


def port_actions(facts: Facts, ctx: AnalysisContext, cause_id: str) -> list[Action]:
    """``free_port`` advice naming the holder, plus ``remove_squatter`` for a stale container of this
    compose project."""
    port = ctx.proxy_port
    publishers = [c.row for c in facts.other_publishers()]
    skip_docker_proxy = bool(facts.proxy_running or publishers)  # the proxy's own, or already named
    holders = publishers + [ln.holder for ln in facts.port_holders()
                            if not (skip_docker_proxy and ln.holder.startswith("docker-proxy"))]
    holder = "; ".join(dict.fromkeys(holders)) or "an unknown process"
    out = [Action(id=ActionId.FREE_PORT, title=f"Free port {port}: held by {holder}", kind=ActionKind.ADVICE,
                  cause_id=cause_id, params=_params(PortParams(holder=holder, port=str(port))),
                  verify_steps=[StepId.PORT_LISTENERS, StepId.PORT_PUBLISHERS])]
    for c in facts.other_publishers():
        if _is_squatter(c.name, c.labels, facts, ctx):
            out.append(Action(id=ActionId.REMOVE_SQUATTER, title=f"Remove the stale container {c.name} holding port "
                                                          f"{port}",
                              kind=ActionKind.SSH,
                              commands=[render_argv([ctx.docker, "rm", "-f", c.name], {})],
                              cause_id=cause_id, params=_params(PortParams(container=c.name, port=str(port))),
                              precondition=f"{c.name} still publishes port {port} and is not the proxy",
                              verify_steps=[StepId.PORT_LISTENERS, StepId.PORT_PUBLISHERS,
                                            StepId.CONTAINER_STATUS]))
            break
    return out


def _mysql_down(facts: Facts) -> bool:
    return (facts.mysql is not None and facts.mysql.state != "running") or (
        facts.containers is not None and facts.mysql is None and facts.expects_mysql)


def _for_cause(cause: Cause, facts: Facts, ctx: AnalysisContext) -> list[Action | None]:
    cid = cause.id
    out: list[Action | None] = []
    if cid == "migration_failed":
        col = add_column(facts, cid)
        out.append(col)
        duplicate = "Duplicate column" in " ".join(cause.evidence)
        if col is None and duplicate:
            out.append(advice(ActionId.MAKE_MIGRATION_IDEMPOTENT, cid))
        if col is not None:
            out.append(restart_proxy(ctx, cid, recreate=False, why="after adding the column"))
        elif not duplicate and facts.schema_has("health_check_model") is True:
            # The column is there now (added by hand since the crash): a restart should get past it.
            out.append(restart_proxy(ctx, cid, recreate=False, why="the column exists now"))
    elif cid == "mysql_unavailable":
        out.append(restart_proxy(ctx, cid, recreate=True, why="starts MySQL first"))
    elif cid in ("config_error", "mysql_access_denied"):
        out.append(restart_proxy(ctx, cid, recreate=True, why="after fixing the configuration"))
    elif cid == "port_conflict":
        out += port_actions(facts, ctx, cid)
        out.append(restart_proxy(ctx, cid, recreate=True, why="once the port is free"))
    elif cid == "container_missing":
        out.append(restart_proxy(ctx, cid, recreate=True, why="recreates the missing container"))
    elif cid in ("oom_killed", "crash_loop") or (
            cid == "unknown" and cause.title.startswith(("Stopped", "Killed"))):
        out.append(restart_proxy(ctx, cid, recreate=_mysql_down(facts)))
    out += [advice(a, cid) for a in _CAUSE_ADVICE.get(cid, [])]
    if cid in _ROLLBACK_CAUSES:
        out.append(rollback(facts, ctx, cid))
    return out


def advice(action_id: ActionId, cause_id: str) -> Action:
    """An advice action (nothing to run): its text and the steps that would show it worked."""
    verify = [StepId.PROXY_LOGS, StepId.GREP_HEALTH_SCHEDULER] if "health" in action_id else [StepId.PROXY_LOGS]
    return Action(id=action_id, title=ADVICE[action_id], kind=ActionKind.ADVICE, cause_id=cause_id,
                  verify_steps=verify)


def build_actions(causes: list[Cause], facts: Facts, ctx: AnalysisContext) -> list[Action]:
    """Actions for the ranked causes (those at or above :data:`MIN_CONFIDENCE`), de-duplicated by id,
    in cause order. ``healthy`` and evidence-free ``unknown`` get none."""
    out: list[Action] = []
    seen: set[str] = set()
    for cause in causes:
        if cause.confidence < MIN_CONFIDENCE or cause.id == "healthy":
            continue
        for action in _for_cause(cause, facts, ctx):
            if action is not None and action.id not in seen:
                seen.add(action.id)
                out.append(action)
    return out
