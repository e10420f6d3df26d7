"""Outcomes of the real-engine suite, printed as one summary line at the end of the run:

    real engine: 21/21 failure states diagnosed right; fixes verified 3/3; containers left 0

A state counts as diagnosed right only when the bot's top cause is the expected one and the
deciding line is quoted in its evidence (an ``xfail`` state that the bot gets wrong counts
as not right). ``containers left`` is set by the ``docker_engine`` fixture's teardown.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Outcomes:
    """``states``/``fixes``: label -> ok; ``containers_left`` None until the teardown ran."""

    states: dict[str, bool] = field(default_factory=dict)
    fixes: dict[str, bool] = field(default_factory=dict)
    said: dict[str, str] = field(default_factory=dict)  # state -> what the bot said, when wrong
    containers_left: int | None = None
    leftovers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ran(self) -> bool:
        return bool(self.states or self.fixes)

    def summary_lines(self) -> list[str]:
        """The summary line, then one line per state the bot got wrong and any leftover."""
        right = sum(self.states.values())
        fixed = sum(self.fixes.values())
        left = "not checked" if self.containers_left is None else str(self.containers_left)
        lines = [f"real engine: {right}/{len(self.states)} failure states diagnosed right; "
                 f"fixes verified {fixed}/{len(self.fixes)}; containers left {left}"]
        lines += [f"real engine: NOT right: {state}: {self.said.get(state, '')}"
                  for state, ok in self.states.items() if not ok]
        lines += [f"real engine: NOT verified: fix {name}" for name, ok in self.fixes.items() if not ok]
        lines += [f"real engine: left behind {kind}: {', '.join(ids)[:300]}" for kind, ids in self.leftovers.items()]
        return lines


OUTCOMES = Outcomes()
