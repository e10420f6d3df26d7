"""Prometheus metrics of one bot instance, in its own registry (nothing global, nothing at import).

:class:`Metrics` is built once per running bot and exposed on ``GET /metrics``. It is fed
from thin places only: the Slack layer counts commands, the state store's observer hook
(:class:`bot.state.store.StoreObserver`) reports finished runs and approval decisions, the
diagnosis service's ``on_step`` hook reports step outcomes. This is the only module of
``bot/`` that imports ``prometheus_client``.

Series::

    qcc_commands_total{subcommand}                 /qcc commands received (first deliveries)
    qcc_runs_total{kind, outcome}                  diagnosis | fix runs: succeeded | failed | interrupted
    qcc_step_outcomes_total{step, status}          runbook steps: ok | failed | timeout | error | skipped
    qcc_approvals_total{decision}                  approved | rejected | expired
    qcc_diagnosis_duration_seconds                 histogram of finished diagnosis runs
    qcc_fix_duration_seconds                       histogram of finished fix runs
    qcc_approval_decision_latency_seconds{decision}  histogram: request to decision
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from bot.models import StepResult

DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 900)
LATENCY_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


class Metrics:
    """The bot's counters and histograms; implements :class:`bot.state.store.StoreObserver`."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.commands = Counter("qcc_commands", "/qcc commands received, by subcommand",
                                ["subcommand"], registry=r)
        self.runs = Counter("qcc_runs", "Finished runs, by kind (diagnosis|fix) and outcome",
                            ["kind", "outcome"], registry=r)
        self.steps = Counter("qcc_step_outcomes", "Runbook step outcomes, by step id and status",
                             ["step", "status"], registry=r)
        self.approvals = Counter("qcc_approvals", "Approval decisions (approved|rejected|expired)",
                                 ["decision"], registry=r)
        self.diagnosis_duration = Histogram("qcc_diagnosis_duration_seconds",
                                            "Duration of finished diagnosis runs", buckets=DURATION_BUCKETS,
                                            registry=r)
        self.fix_duration = Histogram("qcc_fix_duration_seconds", "Duration of finished fix runs",
                                      buckets=DURATION_BUCKETS, registry=r)
        self.approval_latency = Histogram("qcc_approval_decision_latency_seconds",
                                          "Time from an approval request to its decision", ["decision"],
                                          buckets=LATENCY_BUCKETS, registry=r)

    # -- fed by the Slack layer ---------------------------------------------------------
    def command(self, subcommand: str) -> None:
        self.commands.labels(subcommand=subcommand).inc()

    # -- fed by the diagnosis service (on_step) ------------------------------------------
    def step(self, step: StepResult) -> None:
        self.steps.labels(step=step.id, status=step.status.value).inc()

    # -- fed by the state store (StoreObserver) ------------------------------------------
    def run_finished(self, kind: str, status: str, duration_s: float) -> None:
        self.runs.labels(kind=kind, outcome=status).inc()
        if kind == "diagnosis":
            self.diagnosis_duration.observe(duration_s)
        elif kind == "fix":
            self.fix_duration.observe(duration_s)

    def approval_decided(self, decision: str, latency_s: float) -> None:
        self.approvals.labels(decision=decision).inc()
        self.approval_latency.labels(decision=decision).observe(latency_s)

    # -- exposition ------------------------------------------------------------------------
    def render(self) -> bytes:
        """The text exposition format of every series."""
        return generate_latest(self.registry)
