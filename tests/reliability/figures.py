"""Figures the reliability suite proves, collected across its tests and printed at the end.

Tests call :func:`record` (e.g. ``record("faults", "sshd down", survived)``); the
conftest prints one summary block:

    reliability: faults survived 14/14, hostile inputs blocked 34/34, secrets leaked 0,
    executions per 100 concurrent clicks across 2 replicas = 1
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class Figures:
    """Outcomes per category: ``category -> [(label, ok)]`` and free-form numbers."""

    outcomes: dict[str, list[tuple[str, bool]]] = field(default_factory=lambda: defaultdict(list))
    numbers: dict[str, float] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        """Human summary; categories with no recorded outcome say 'not run'."""
        def ratio(cat: str) -> str:
            rows = self.outcomes.get(cat, [])
            return f"{sum(ok for _, ok in rows)}/{len(rows)}" if rows else "not run"

        leaked = self.numbers.get("secrets_leaked")
        execs = self.numbers.get("executions_per_100_clicks_2_replicas")
        lines = [
            f"faults survived {ratio('faults')}",
            f"hostile inputs blocked {ratio('hostile')}",
            f"secrets leaked {int(leaked) if leaked is not None else 'not run'}",
            "executions per 100 concurrent clicks across 2 replicas = "
            + (f"{int(execs)}" if execs is not None else "not run"),
        ]
        failed = [f"{cat}: {label}" for cat, rows in self.outcomes.items() for label, ok in rows if not ok]
        return lines + [f"NOT survived/blocked: {f}" for f in failed]


FIGURES = Figures()


def record(category: str, label: str, ok: bool) -> None:
    """Record one outcome (``faults``, ``hostile``) for the summary."""
    FIGURES.outcomes[category].append((label, ok))


def set_number(name: str, value: float) -> None:
    """Record a figure such as ``secrets_leaked`` or ``executions_per_100_clicks_2_replicas``."""
    FIGURES.numbers[name] = value
