"""analyze(): ranking, unknown-when-thin, never raising, and no secret in the Diagnosis JSON."""

from __future__ import annotations

import json
import random

import pytest

from bot.diagnosis import engine
from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.engine import analyze, rank
from bot.diagnosis.evidence import finding
from bot.diagnosis.facts import collect_facts
from bot.models import CAUSE_IDS, StepResult, StepStatus
from bot.runbook.loader import load_runbook

from .builders import T0, inspect_obj, logtext, ps_row, schema, start, step, steps

CREDENTIAL_LOG = logtext(
    *start(),
    (1.5, "==== default credentials (change them after first login) ===="),
    (1.5, "default admin account: username=admin password=Adm1n-9f3kQz7w"),
    (1.5, "default API key: sk-ant-api03-q8Zk2mP4xR7vT1nB6yW3cE9hJ5uL0aSdFgHjKlZx-AbCdEf"),
    (1.5, "proxy api key: qcc_live_7d1e6a9b2c4f8e0d3a5b7c9e1f2a4b6c"),
    (2.0, "Error 1045 (28000): Access denied for user 'qcc'@'172.18.0.3' (using password: YES)"),
)
SECRETS = ("Adm1n-9f3kQz7w", "sk-ant-api03-q8Zk2m", "qcc_live_7d1e6a9b", "S3cr3t-Pass", "Pr0d-Sql-Pw")


def diagnose(ctx: AnalysisContext, **outputs: object):  # noqa: ANN201
    return analyze(steps(**outputs), ctx, started_at=T0, duration_s=2.5)  # type: ignore[arg-type]


def test_startup_credentials_never_reach_the_diagnosis_json(ctx: AnalysisContext) -> None:
    """A start-up log with credential lines plus a DSN in the container env: no secret anywhere in the
    report JSON or the full Diagnosis dump, and the redacted lines are counted."""
    env = ["PROXY_MYSQL_DSN=qcc:S3cr3t-Pass@tcp(mysql:3306)/qcc_proxy"]
    d = analyze(steps(container_status=ps_row("qcc_test_proxy", "Exited (1) 1 minute ago"),
                      container_inspect=[inspect_obj("qcc_test_proxy", "exited", exit_code=1, env=env)],
                      proxy_logs=CREDENTIAL_LOG,
                      grep_migration=step("grep_migration", "mysql -uroot -pPr0d-Sql-Pw qcc_proxy error")),
                ctx, started_at=T0, duration_s=1.0, extra_secrets=["Pr0d-Sql-Pw"])
    assert d.top_cause is not None and d.top_cause.id == "mysql_access_denied"
    blob = json.dumps(d.to_report_json()) + d.model_dump_json()
    for secret in SECRETS:
        assert secret not in blob, secret
    assert d.redacted_lines >= 5 and d.log_summary is not None and d.log_summary.redacted_lines == 3
    assert "(using password: YES)" in blob  # a diagnostic line is not mangled


def test_unknown_when_logs_empty_and_status_missing(ctx: AnalysisContext) -> None:
    """No container status and an empty log: `unknown` naming what is missing, never a guess."""
    d = diagnose(ctx, container_status=step("container_status", status="error", error="SSH channel open "
                                                                                      "failed"),
                 proxy_logs=step("proxy_logs", status="skipped", error="proxy_container not found"),
                 host_memory="               total used free shared buff/cache available\n"
                             "Mem: 1987 912 402 2 655 921\n")
    assert [c.id for c in d.causes] == ["unknown"]
    assert "container status" in d.causes[0].detail and "proxy log lines" in d.causes[0].detail


def test_no_steps_at_all(ctx: AnalysisContext) -> None:
    """An empty run still yields a Diagnosis with `unknown`."""
    d = analyze([], ctx, started_at=T0, duration_s=0.0)
    assert d.top_cause is not None and d.top_cause.id == "unknown" and d.log_summary is None


def test_crash_loop_ranks_below_its_underlying_cause(ctx: AnalysisContext) -> None:
    """crash_loop and migration_failed both listed; the underlying one first."""
    run = [*start("using MySQL"), (2.0, "Error 1054 (42S22): Unknown column 'health_check_model' in 'field "
                                        "list'")]
    d = diagnose(ctx, container_status=ps_row("qcc_test_proxy", "Restarting (1) 3 seconds ago"),
                 container_inspect=[inspect_obj("qcc_test_proxy", "restarting", exit_code=1, restarts=7)],
                 proxy_logs=logtext(*run, *[(t + 10, m, *r) for t, m, *r in run]))
    ids = [c.id for c in d.causes]
    assert ids[0] == "migration_failed" and "crash_loop" in ids
    assert "migration_failed" in next(c for c in d.causes if c.id == "crash_loop").detail


def test_ties_are_broken_and_explained(ctx: AnalysisContext) -> None:
    """Two findings at the same confidence: rule order decides and both details say why."""
    f = collect_facts([], ctx)
    a = finding("panic", "a", 0.8, ["x"], "r")
    b = finding("runtime_fatal", "b", 0.8, ["y"], "r")
    causes = rank([(5, b), (2, a)], f)
    assert [c.id for c in causes] == ["panic", "runtime_fatal"]
    assert causes[0].confidence > causes[1].confidence
    assert "Tied with runtime_fatal" in causes[0].detail and "Equal evidence to panic" in causes[1].detail


def test_healthy_dropped_next_to_a_real_finding(ctx: AnalysisContext) -> None:
    """`healthy` is not listed beside a finding of confidence 0.6 or more."""
    f = collect_facts([], ctx)
    causes = rank([(17, finding("healthy", "h", 0.85, ["x"], "r")),
                   (3, finding("config_error", "c", 0.8, ["y"], "r"))], f)
    assert [c.id for c in causes] == ["config_error"]


def test_a_broken_rule_does_not_break_the_diagnosis(ctx: AnalysisContext,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule that raises is skipped; the others still decide (outside strict mode, which the
    suite turns on: there the error propagates)."""
    def boom(_f):  # noqa: ANN001, ANN202
        raise RuntimeError("bug")
    monkeypatch.setattr(engine, "RULES", [boom, *engine.RULES])
    with pytest.raises(RuntimeError, match="bug"):
        diagnose(ctx, container_status=ps_row("qcc_test_proxy", "Exited (2) 1 minute ago"))
    monkeypatch.setattr(engine, "STRICT", False)
    d = diagnose(ctx, container_status=ps_row("qcc_test_proxy", "Exited (2) 1 minute ago"),
                 proxy_logs=logtext(*start(), (31.0, "panic: boom", True)))
    assert d.top_cause is not None and d.top_cause.id == "panic"


def test_what_changed_facts(ctx: AnalysisContext) -> None:
    """Deployed commit versus HEAD, the phase and the first error's delay after start are reported."""
    d = diagnose(ctx, container_status=ps_row("qcc_test_proxy", "Exited (1) 1 minute ago"),
                 container_inspect=[inspect_obj("qcc_test_proxy", "exited", exit_code=1)],
                 proxy_logs=logtext(*start("using MySQL"), (2.0, "Error 1054: Unknown column "
                                                                 "'health_check_model'")),
                 schema_nodes=schema(False),
                 deployed_version='{"version":"v1.9.3","git_commit":"3f9c2ab","build_date":"x"}',
                 checkout_head="8c2d41f7a9b3e05d6c1f2a4b8e9d0c7f3a5b6e21\t1765345980\tfeat\n")
    assert d.facts["deployed_is_head"] is False and d.facts["phase"] == "mysql_storage"
    assert d.facts["first_error_after_start_s"] == 2.0 and d.facts["exit_code"] == 1


@pytest.mark.parametrize("seed", range(25))
def test_never_raises_on_hostile_output(ctx: AnalysisContext, seed: int) -> None:
    """Random junk, statuses and truncated JSON on every runbook step: a Diagnosis, never an exception."""
    rnd = random.Random(seed)
    junk = ["", "\ufffd\x00\x1b[31m", "{", "[{\"Name\": \"/qcc_test_proxy\", \"State\": 5}]", "--",
            "Error 1054 (42S22): Unknown column", "panic: ", "LISTEN 0 1 :8001", "Mem: x y z", "null",
            "2025-12-10T06:14:02Z 2025/12/10 06:14:02 Error 1045", "{\"version\": []}", "\r\n\r\n",
            ps_row("qcc_test_proxy", "Exited (abc) ago"), json.dumps([{"name": None}]), "9" * 5000]
    results = [StepResult(id=s.id, title=s.title, status=rnd.choice(list(StepStatus)),
                          output="\n".join(rnd.choice(junk) for _ in range(rnd.randrange(6))),
                          stderr=rnd.choice(junk), error=rnd.choice([None, *junk]))
               for s in load_runbook().steps]
    d = analyze(results, ctx, started_at=T0, duration_s=0.1)
    assert d.causes and all(c.id in CAUSE_IDS for c in d.causes)
    assert sorted((c.confidence for c in d.causes), reverse=True) == [c.confidence for c in d.causes]
    json.dumps(d.to_report_json())


def test_unknown_says_version_did_not_answer(ctx: AnalysisContext) -> None:
    """Up and listening but /version silent: `unknown` names the missing answer instead of `healthy`."""
    d = diagnose(ctx, container_status=ps_row("qcc_test_proxy", "Up 5 minutes"),
                 container_inspect=[inspect_obj("qcc_test_proxy", "running", pid=3990)],
                 proxy_logs=logtext(*start()), deployed_version=step("deployed_version", "", exit_status=7))
    assert d.top_cause is not None and d.top_cause.id == "unknown"
    assert "/version" in d.top_cause.detail


def test_unreachable_host_says_so_instead_of_not_enough_evidence() -> None:
    """Every SSH step erroring: `unknown` titled as an SSH reachability problem, quoting the error."""
    from datetime import UTC, datetime

    from bot.diagnosis.context import AnalysisContext
    from bot.diagnosis.engine import analyze
    from bot.models import StepResult, StepStatus
    from bot.runbook.loader import load_runbook

    err = "cannot reach deploy@qcc.example.invalid:22: cannot resolve host name"
    steps = [StepResult(id=s.id, title=s.title,
                        status=StepStatus.OK if s.transport == "mysql" else StepStatus.ERROR,
                        error=None if s.transport == "mysql" else err, output="[]" if s.transport == "mysql" else "")
             for s in load_runbook().steps]
    d = analyze(steps, AnalysisContext(environment="t", compose_project="qcc_test"),
                started_at=datetime.now(UTC), duration_s=0.1)
    top = d.causes[0]
    assert top.id == "unknown" and "could not be reached over SSH" in top.title
    assert any(err in e for e in top.evidence)
