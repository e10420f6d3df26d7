"""Issue 10: locale-robust parsers, the incident window, the checklist, the hypothesis table,
what changed and the running-system rules (pure functions over fixture text)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.diagnosis import evidenceparse as ep
from bot.diagnosis import incident, runningrules
from bot.diagnosis.changes import build_changes
from bot.diagnosis.checklist import build_checklist
from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.hypotheses import CATALOGUE, build_hypotheses

from .builders import facts, healthy_host, inspect_obj, logtext, ps_row, start

VERSION = '{"version":"v1.9.4","git_commit":"8c2d41f","build_date":"2025-12-10T05:58:11Z"}'
HEAD = ("8c2d41f7a9b3e05d6c1f2a4b8e9d0c7f3a5b6e21\t1765345980\tfeat(health): per-node health_check_model\n"
        "3f9c2ab1d4e5f60718293a4b5c6d7e8f90a1b2c3\t1765259580\tfix(proxy): retry upstream 529\n")


# ---------------------------------------------------------------- parsers
@pytest.mark.parametrize("text", [
    "               总计         已用        空闲      共享    缓冲/缓存    可用\n"
    "内存：        1987         912         402           2         655         921\n"
    "交换：           0           0           0\n",
    "              total        used        free      shared  buff/cache   available\n"
    "Mem:           1987         912         402           2         655         921\n",
    "             total       used       free     shared    buffers     cached\n"
    "Mem:          1987       1585        402          2        100        419\n"
    "-/+ buffers/cache:       1066        921\n",
], ids=["chinese", "new_procps", "old_procps"])
def test_free_in_any_locale(text: str) -> None:
    """`free -m` with Chinese headers reads the same as the English new and old formats."""
    m = ep.parse_free_any(text)
    assert m is not None and m.total_mb == 1987 and m.available_mb == 921


@pytest.mark.parametrize(("line", "when", "zoned"), [
    ("2025-12-10T06:17:00,981234+00:00 Out of memory: Killed process 1822 (mysqld) total-vm:1kB",
     datetime(2025, 12, 10, 6, 17, 0, tzinfo=UTC), True),
    ("2025-12-10T14:17:00,981234+08:00 Out of memory: Killed process 1822 (mysqld) total-vm:1kB",
     datetime(2025, 12, 10, 6, 17, 0, tzinfo=UTC), True),
    ("2025-12-10T06:17:00+0000 qcc-host kernel: Out of memory: Killed process 1822 (mysqld)",
     datetime(2025, 12, 10, 6, 17, 0, tzinfo=UTC), True),
    ("[三 12月 10 06:17:00 2025] Out of memory: Killed process 1822 (mysqld) total-vm:1kB",
     datetime(2025, 12, 10, 6, 17, 0, tzinfo=UTC), False),
    ("[Wed Dec 10 06:17:00 2025] Out of memory: Killed process 1822 (mysqld) total-vm:1kB",
     datetime(2025, 12, 10, 6, 17, 0, tzinfo=UTC), False),
    ("Dec 10 06:17:00 qcc-host kernel: Out of memory: Killed process 1822 (mysqld)",
     datetime(2025, 12, 10, 6, 17, 0, tzinfo=UTC), False),
    ("[ 812.345678] Out of memory: Killed process 1822 (mysqld) total-vm:1kB", None, False),
], ids=["dmesg_iso", "dmesg_iso_offset", "journal_short_iso", "dmesg_T_chinese", "dmesg_T", "journal",
        "undated"])
def test_kernel_event_times(line: str, when: datetime | None, zoned: bool) -> None:
    """ISO (dmesg --time-format=iso, journalctl -o short-iso), dmesg -T in English and Chinese, the
    classic journal: the same instant; only ISO times carry a zone; a monotonic stamp has no date."""
    (ev,) = ep.parse_kernel_events(line, year=2025)
    assert ev.event.process == "mysqld" and ev.when == when and ev.zoned is zoned


def test_incident_window_and_pid_rule() -> None:
    """Zoned events count within minutes of the run; zone-less get slack; undated never; another
    environment's ccproxy (other pid) never."""
    start_, end = datetime(2025, 12, 10, 6, 14, tzinfo=UTC), datetime(2025, 12, 10, 6, 15, tzinfo=UTC)
    windows = incident.incident_windows(captured_at=datetime(2025, 12, 10, 6, 20, tzinfo=UTC),
                                        proxy_started=start_, proxy_finished=end, proxy_running=True,
                                        mysql_finished=None)
    text = ("2025-12-10T06:16:00+00:00 Out of memory: Killed process 3990 (ccproxy)\n"
            "2025-12-10T05:00:00+00:00 Out of memory: Killed process 3990 (ccproxy)\n"
            "2025-12-10T06:16:00+00:00 Out of memory: Killed process 4555 (ccproxy)\n"
            "[ 812.3] Out of memory: Killed process 3990 (ccproxy)\n"
            "[Wed Dec 10 12:00:00 2025] Out of memory: Killed process 4107 (claude)\n"
            "[Mon Dec  1 03:00:00 2025] Out of memory: Killed process 4108 (claude)\n")
    got = incident.relevant_events(ep.parse_kernel_events(text, year=2025), windows, proxy_pid=3990)
    assert [(e.pid, e.process) for e in got] == [(3990, "ccproxy"), (4107, "claude")]


def test_inspect_details_keep_no_secret() -> None:
    """Health status, listen port and DSN host/port are read; the password is not kept."""
    obj = inspect_obj("qcc_test_proxy", "running", env=["PROXY_MYSQL_DSN=qcc:pw@tcp(mysql:3307)/qcc_proxy",
                                                        "PROXY_LISTEN_ADDR=:8000"])
    obj["State"]["Health"] = {"Status": "unhealthy", "Log": [{"Output": "mysqladmin: connect failed\n"}]}
    import json
    d = ep.parse_inspect_details(json.dumps([obj]))["qcc_test_proxy"]
    assert (d.health, d.listen_port, d.dsn_host, d.dsn_port) == ("unhealthy", 8000, "mysql", 3307)
    assert "pw" not in d.model_dump_json()
    assert ep.ps_health("Up 3 days (healthy)") == "healthy"
    assert ep.ps_health("Up 3 days (unhealthy)") == "unhealthy"
    assert ep.ps_health("Up 8 seconds (health: starting)") == "starting"


def test_actions_log_failed_health_check_and_port() -> None:
    """`gh run view --log`: failure, the failed step, the attempts, `port is already allocated`, rollback."""
    log = ("deploy\tDeploy to test\t2025-12-10T06:14:05.1Z waiting for http://127.0.0.1:8001/ (attempt 12/12)\n"
           "deploy\tDeploy to test\t2025-12-10T06:15:05.1Z Error response from daemon: Bind for 0.0.0.0:8001 "
           "failed: port is already allocated\n"
           "deploy\tDeploy to test\t2025-12-10T06:15:06.1Z rolling back to the previous image\n"
           "deploy\tDeploy to test\t2025-12-10T06:15:07.1Z ##[error]Process completed with exit code 1.\n")
    run = ep.parse_actions_log(log)
    assert run is not None and run.conclusion == "failure" and run.failed_step == "Deploy to test"
    assert run.port_allocated and run.rollback and "attempt 12/12" in run.health_attempts[0]
    ok = ep.parse_actions_log("build\tRun tests\t2025-12-10T06:14:05.1Z 42 passed\n")
    assert ok is not None and ok.conclusion == "success"
    assert ep.parse_actions_log("") is None


# ---------------------------------------------------------------- checklist, hypotheses, changes
def test_checklist_all_ok_on_a_healthy_host(ctx: AnalysisContext) -> None:
    """Every item ✓ with its deciding line when every dependency has shown it."""
    f = facts(ctx, **healthy_host(), proxy_logs=logtext(*start()), deployed_version=VERSION)
    items = build_checklist(f)
    assert {i.id for i in items} >= {"proxy_running", "listening_port", "version_answers", "mysql_healthy",
                                     "schema_answered", "disk", "memory", "no_error_after_listen",
                                     "no_kernel_kill"}
    assert all(i.status == "ok" and i.line for i in items), [(i.id, i.status, i.line) for i in items]


def test_checklist_unknown_names_the_settling_check(ctx: AnalysisContext) -> None:
    """A kernel log that could not be read is `?` with the dmesg command that would settle it."""
    outputs = {k: v for k, v in healthy_host().items() if k != "kernel_oom"}
    f = facts(ctx, **outputs, proxy_logs=logtext(*start()), deployed_version=VERSION)
    item = next(i for i in build_checklist(f) if i.id == "no_kernel_kill")
    assert item.status == "unknown" and "dmesg --time-format=iso" in item.settle


def test_error_after_listening_fails_the_checklist(ctx: AnalysisContext) -> None:
    """A driver error after the listening line is ✗ quoting that line."""
    log = logtext(*start(), (300.0, "[mysql] 2025/12/10 06:19:01 connection.go:706 closing bad idle connection: EOF",
                             True))
    f = facts(ctx, **healthy_host(), proxy_logs=log, deployed_version=VERSION)
    item = next(i for i in build_checklist(f) if i.id == "no_error_after_listen")
    assert item.status == "fail" and "closing bad idle connection" in item.line


def test_hypothesis_table_order_and_verdicts(ctx: AnalysisContext) -> None:
    """The seed's five first in its order, then the catalogue; absent causes are ruled out with a line."""
    f = facts(ctx, **healthy_host(), proxy_logs=logtext(*start()), deployed_version=VERSION)
    table = build_hypotheses(f, [])
    assert [h.id for h in table] == [c[0] for c in CATALOGUE]
    assert [h.seed_rank for h in table[:5]] == [1, 2, 3, 4, 5] and table[5].seed_rank is None
    mig = table[0]
    assert mig.verdict == "ruled_out" and "health_check_model` present in `nodes`" in mig.line
    thin = build_hypotheses(facts(ctx), [])
    assert all(h.verdict == "not_checked" for h in thin if h.id != "docker_unresponsive")


def test_changes_say_when_the_running_build_is_not_head(ctx: AnalysisContext) -> None:
    """/version at HEAD~1: the summary says the push is not running."""
    old = '{"version":"v1.9.3","git_commit":"3f9c2ab","build_date":"2025-12-09T05:51:02Z"}'
    f = facts(ctx, **healthy_host(), proxy_logs=logtext(*start()), deployed_version=old, checkout_head=HEAD)
    c = build_changes(f)
    assert c is not None and c.running_is_head is False and c.running_commit_position == 1
    assert any("push is not running" in n for n in c.notes)
    hit = runningrules.previous_image_running(f)
    assert hit is not None and hit.id == "previous_image_running"


# ---------------------------------------------------------------- running-system rules
def test_dsn_wrong_target_needs_a_healthy_mysql(ctx: AnalysisContext) -> None:
    """`connection refused` with MySQL Up (healthy): dsn_wrong_target; with MySQL exited: not."""
    log = logtext(*start("store:"), (2.0, "dial tcp 172.18.0.2:3307: connect: connection refused"))
    env = ["PROXY_MYSQL_DSN=qcc:pw@tcp(mysql:3307)/qcc_proxy"]
    common = {"proxy_logs": log, "schema_nodes": healthy_host()["schema_nodes"]}
    healthy = facts(ctx, container_status="\n".join([ps_row("qcc_test_proxy", "Exited (1) 1 minute ago"),
                                                     ps_row("qcc_test_mysql", "Up 3 days (healthy)",
                                                            service="mysql")]),
                    container_inspect=[inspect_obj("qcc_test_proxy", "exited", exit_code=1, env=env)], **common)
    hit = runningrules.dsn_wrong_target(healthy)
    assert hit is not None and hit.confidence >= 0.9 and any("tcp(mysql:3307)" in e for e in hit.evidence)
    down = facts(ctx, container_status="\n".join([ps_row("qcc_test_proxy", "Exited (1) 1 minute ago"),
                                                  ps_row("qcc_test_mysql", "Exited (0) 2 minutes ago",
                                                         service="mysql")]),
                 container_inspect=[inspect_obj("qcc_test_proxy", "exited", exit_code=1, env=env)], **common)
    assert runningrules.dsn_wrong_target(down) is None


def test_listen_mismatch_from_the_listening_line(ctx: AnalysisContext) -> None:
    """`listening on :8000` while 8001->8001 is published: listen_addr_mismatch quoting the line."""
    entries = [e if "listening" not in e[1] else (e[0], "Claude Code proxy listening on :8000") for e in start()]
    host = healthy_host()
    f = facts(ctx, **host, proxy_logs=logtext(*entries), deployed_version="")
    hit = runningrules.listen_addr_mismatch(f)
    assert hit is not None and any("listening on :8000" in e for e in hit.evidence)


def test_actions_log_not_configured_is_no_evidence() -> None:
    """The step's `CI run log: not configured` note parses to None (no run, no conclusion)."""
    assert ep.parse_actions_log("CI run log: not configured (no gh CLI on the host)\n") is None


def test_ci_run_log_confirms_port_conflict_and_rollback(ctx: AnalysisContext) -> None:
    """A failed deploy run with `port is already allocated` is a port_conflict quoting the run log;
    its rollback line lifts previous_image_running."""
    log = ("deploy\tDeploy to test\t2025-12-10T06:15:05.1Z Error response from daemon: Bind for 0.0.0.0:8001 "
           "failed: port is already allocated\n"
           "deploy\tDeploy to test\t2025-12-10T06:15:06.1Z re-tagging the previous image and rolling back\n"
           "deploy\tDeploy to test\t2025-12-10T06:15:07.1Z ##[error]Process completed with exit code 1.\n")
    f = facts(ctx, **healthy_host(), proxy_logs=logtext(*start()), ci_run_log=log, checkout_head=HEAD,
              deployed_version='{"version":"v1.9.3","git_commit":"3f9c2ab"}')
    hit = runningrules.ci_deploy(f)
    assert hit is not None and hit.id == "port_conflict" and any("port is already allocated" in e
                                                                  for e in hit.evidence)
    prev = runningrules.previous_image_running(f)
    assert prev is not None and prev.confidence >= 0.9 and any("rolling back" in e for e in prev.evidence)


def test_every_cause_of_the_vocabulary_has_a_hypothesis_row() -> None:
    """A cause added to `CauseId` without a row in the hypothesis catalogue would never be listed as
    ruled out or not checked: every cause but the two conclusions (healthy, unknown) has one, once."""
    from bot.models import CauseId

    ids = [c[0] for c in CATALOGUE]
    assert len(ids) == len(set(ids))
    assert set(ids) == {c.value for c in CauseId} - {CauseId.HEALTHY, CauseId.UNKNOWN}
