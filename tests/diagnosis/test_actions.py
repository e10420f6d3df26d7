"""Fix actions are exact, quoted, built from configuration and offered only when the evidence allows."""

from __future__ import annotations

import shlex

from bot.diagnosis.actions import ADD_COLUMN_SQL, build_actions, pinned_commit
from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.engine import analyze
from bot.models import ActionKind, Cause

from .builders import T0, facts, inspect_obj, logtext, ps_row, schema, start, steps

HEAD = "8c2d41f7a9b3e05d6c1f2a4b8e9d0c7f3a5b6e21"
PREV = "3f9c2ab1d4e5f60718293a4b5c6d7e8f90a1b2c3"
GIT = f"{HEAD}\t1765345980\tfeat: health_check_model\n{PREV}\t1765259580\tfix: retry\n"
MIGRATION_LOG = logtext(*start("using MySQL"),
                        (2.0, "Error 1054 (42S22): Unknown column 'health_check_model' in 'field list'"))
EXITED = {"container_status": ps_row("qcc_test_proxy", "Exited (1) 2 minutes ago") + "\n"
          + ps_row("qcc_test_mysql", "Up 3 days", "mysql"),
          "container_inspect": [inspect_obj("qcc_test_proxy", "exited", exit_code=1)]}


def cause(cid: str, conf: float = 0.9, evidence: list[str] | None = None) -> Cause:
    return Cause(id=cid, title=cid, confidence=conf, evidence=evidence or [])  # type: ignore[arg-type]


def by_id(actions):  # noqa: ANN001, ANN201
    return {a.id: a for a in actions}


def test_add_column_only_when_schema_shows_it_missing(ctx: AnalysisContext) -> None:
    """The seed's exact ALTER, then a restart; no ALTER when the column exists or the schema is unknown."""
    f = facts(ctx, **EXITED, schema_nodes=schema(False))
    acts = by_id(build_actions([cause("migration_failed")], f, ctx))
    add = acts["add_column"]
    assert add.kind == ActionKind.SQL and add.commands == [ADD_COLUMN_SQL]
    assert ADD_COLUMN_SQL == ("ALTER TABLE nodes ADD COLUMN health_check_model VARCHAR(128) DEFAULT "
                              "'claude-haiku-4-5-20251001' AFTER health_check_method")
    assert "still missing" in add.precondition and add.verify_steps == ["schema_nodes"]
    assert acts["restart_proxy"].commands == [
        "cd /opt/qcc_plus && docker compose -p qcc_test -f docker-compose.test.yml restart proxy"]
    for rows in (schema(True), None):
        f = facts(ctx, **EXITED, **({"schema_nodes": rows} if rows else {}))
        assert "add_column" not in by_id(build_actions([cause("migration_failed")], f, ctx))


def test_restart_offered_when_the_column_was_added_since(ctx: AnalysisContext) -> None:
    """Migration failed but the column exists now: no ALTER, but a restart is offered; a 1060
    duplicate-column failure gets advice instead (a restart would hit it again)."""
    f = facts(ctx, **EXITED, schema_nodes=schema(True))
    acts = by_id(build_actions([cause("migration_failed")], f, ctx))
    assert "add_column" not in acts
    assert "the column exists now" in acts["restart_proxy"].title
    dup = cause("migration_failed", evidence=["Error 1060 (42S21): Duplicate column name 'health_check_model'"])
    acts = by_id(build_actions([dup], f, ctx))
    assert "restart_proxy" not in acts and "make_migration_idempotent" in acts


def test_restart_uses_up_no_build_when_mysql_is_down(ctx: AnalysisContext) -> None:
    """MySQL down: `up -d --no-build` (starts the dependency), not `restart proxy`."""
    f = facts(ctx, container_status=ps_row("qcc_test_proxy", "Exited (1) 1 minute ago") + "\n"
              + ps_row("qcc_test_mysql", "Exited (0) 1 minute ago", "mysql"))
    (restart,) = [a for a in build_actions([cause("mysql_unavailable")], f, ctx) if a.id == "restart_proxy"]
    assert restart.commands == ["cd /opt/qcc_plus && docker compose -p qcc_test -f docker-compose.test.yml "
                                "up -d --no-build"]
    assert restart.verify_steps and restart.cause_id == "mysql_unavailable"


def test_commands_are_quoted_from_configuration(ctx: AnalysisContext) -> None:
    """Odd configuration values are shell-quoted, never interpreted."""
    odd = ctx.model_copy(update={"workdir": "/opt/qcc plus", "compose_file": "a b.yml"})
    (restart,) = [a for a in build_actions([cause("container_missing")], facts(odd, container_status=""), odd)
                  if a.id == "restart_proxy"]
    cmd = restart.commands[0]
    assert cmd.startswith("cd '/opt/qcc plus' && ") and "'a b.yml'" in cmd
    assert shlex.split(cmd.split(" && ")[1])[:6] == ["docker", "compose", "-p", "qcc_test", "-f", "a b.yml"]


def test_rollback_pins_a_sha_never_head_relative(ctx: AnalysisContext) -> None:
    """Rollback to the commit before HEAD by SHA (or the running build when it differs from HEAD)."""
    f = facts(ctx, **EXITED, checkout_head=GIT)
    (rb,) = [a for a in build_actions([cause("panic")], f, ctx) if a.id == "rollback"]
    assert rb.params == {"commit": PREV, "head": HEAD}
    assert PREV in rb.commands[0] and "HEAD~" not in rb.commands[0] and "HEAD^" not in rb.commands[0]
    assert rb.commands[0].startswith("cd /opt/qcc_plus && sh -c ")
    running = facts(ctx, checkout_head=GIT, deployed_version='{"version":"v1.9.3","git_commit":"3f9c2ab"}')
    assert pinned_commit(running) == (PREV, "the build still running (/version) differs from HEAD")
    assert pinned_commit(facts(ctx, checkout_head=GIT.split("\n")[0])) is None
    no_cmd = ctx.model_copy(update={"rollback_command": []})
    assert "rollback" not in by_id(build_actions([cause("panic")], f, no_cmd))


def test_free_port_advice_and_squatter_removal(ctx: AnalysisContext) -> None:
    """The holder is named; a stale container of this project gets its own `docker rm -f` action."""
    squat = ps_row("qcc_test-proxy-1", "Up 3 days", ports="0.0.0.0:8001->8001/tcp")
    f = facts(ctx, container_status=ps_row("qcc_test_proxy", "Created") + "\n" + squat, port_publishers=squat)
    acts = by_id(build_actions([cause("port_conflict")], f, ctx))
    assert acts["free_port"].kind == ActionKind.ADVICE and not acts["free_port"].commands
    assert "qcc_test-proxy-1" in acts["free_port"].title
    assert acts["remove_squatter"].commands == ["docker rm -f qcc_test-proxy-1"]
    assert acts["remove_squatter"].params["container"] == "qcc_test-proxy-1"
    other = ps_row("someone_else", "Up 3 days", project="other", ports="0.0.0.0:8001->8001/tcp")
    f2 = facts(ctx, container_status=ps_row("qcc_test_proxy", "Created"), port_publishers=other)
    assert "remove_squatter" not in by_id(build_actions([cause("port_conflict")], f2, ctx))


def test_advice_only_items_have_no_commands(ctx: AnalysisContext) -> None:
    """Overload and panic advice carry no commands; low-confidence and healthy causes get no actions."""
    causes = [cause("startup_health_check_overload"), cause("panic", 0.5), cause("disk_full", 0.2),
              cause("healthy")]
    acts = build_actions(causes, facts(ctx), ctx)
    ids = [a.id for a in acts]
    assert ids[:2] == ["lower_health_check_concurrency", "delay_first_health_check"]
    assert "add_panic_recovery" in ids and "free_disk" not in ids
    assert all(not a.commands for a in acts if a.kind == ActionKind.ADVICE)
    assert all(a.cause_id and a.verify_steps for a in acts)


def test_actions_through_analyze_are_unique_and_redacted(ctx: AnalysisContext) -> None:
    """analyze() attaches actions once per id, for the ranked causes."""
    d = analyze(steps(**EXITED, proxy_logs=MIGRATION_LOG, schema_nodes=schema(False), checkout_head=GIT), ctx,
                started_at=T0, duration_s=1.0)
    ids = [a.id for a in d.actions]
    assert ids[:2] == ["add_column", "restart_proxy"] and "rollback" in ids and len(ids) == len(set(ids))


def test_rollback_never_offers_a_commit_the_checkout_did_not_show(ctx: AnalysisContext) -> None:
    """A running build whose short commit is not in the checkout's log is not pinned (its
    precondition, "the commit exists", could not hold at the click): the commit before HEAD is
    offered instead, by its full SHA."""
    stranger = facts(ctx, checkout_head=GIT, deployed_version='{"version":"v1.9.1","git_commit":"deadbee"}')
    assert pinned_commit(stranger) == (PREV, "the commit before HEAD, pinned by SHA")
    alone = facts(ctx, checkout_head=GIT.split("\n")[0] + "\n",
                  deployed_version='{"version":"v1.9.1","git_commit":"deadbee"}')
    assert pinned_commit(alone) is None
