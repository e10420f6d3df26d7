"""The diagnosis engine: step outputs + context in, ranked likely causes out. Pure.

``analyze(steps, ctx, started_at=..., duration_s=...) -> Diagnosis``. It parses each
step's output with the runbook's parsers into :class:`Facts`, folds the ordered rule
list over them, ranks the findings and attaches fix actions and the log summary.
"""

from __future__ import annotations

from datetime import datetime

from bot.diagnosis.context import AnalysisContext
from bot.models import Cause, Diagnosis, StepResult


def analyze(steps: list[StepResult], ctx: AnalysisContext, *, started_at: datetime,
            duration_s: float) -> Diagnosis:
    """Analyze step results. Never raises on odd output; returns ``unknown`` when evidence is thin."""
    return Diagnosis(
        environment=ctx.environment,
        started_at=started_at,
        duration_s=duration_s,
        steps=steps,
        causes=[Cause(id="unknown", title="Not enough evidence", confidence=0.1,
                      rule_out="", evidence=[])],
    )
