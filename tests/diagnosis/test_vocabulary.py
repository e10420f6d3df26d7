"""Typed links: causes, fixes and checks are one vocabulary each, and every link resolves."""

from __future__ import annotations

import ast
import inspect

import pytest

from bot.diagnosis import crashrules, engine, rules
from bot.diagnosis.actions import build_actions
from bot.diagnosis.evidence import finding
from bot.diagnosis.facts import collect_facts
from bot.fixes import FIXES, fix_for
from bot.models import CAUSE_IDS, ActionId, ActionKind, CauseId
from tests.diagnosis.scenario_loader import all_scenarios, load_scenario


def test_every_fix_is_registered_and_every_runnable_fix_has_a_check() -> None:
    """Each ActionId has one registry entry; each fix that can run (not advice-only) has a check."""
    assert set(FIXES) == set(ActionId)
    for action_id, fix in FIXES.items():
        assert fix.id == action_id
        if fix.kind != ActionKind.ADVICE:
            assert fix.check is not None, action_id
    assert fix_for("format_disk") is None


def test_finding_calls_name_cause_ids() -> None:
    """Every `finding(...)` in the rule modules passes a `CauseId.<member>` (read from the source)."""
    members = set(CauseId.__members__)
    calls = 0
    for module in (rules, crashrules, engine):
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "finding":
                calls += 1
                first = node.args[0]
                assert isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name), ast.dump(first)
                assert first.value.id == "CauseId" and first.attr in members, ast.unparse(first)
    assert calls >= 20


def test_finding_refuses_an_id_outside_the_vocabulary() -> None:
    """A cause id that is not a CauseId fails where the rule builds it, not silently later."""
    with pytest.raises(ValueError, match="tls_expired"):
        finding("tls_expired", "x", 0.5, [], "")  # type: ignore[arg-type]


@pytest.mark.parametrize("path", all_scenarios(), ids=lambda p: p.stem)
def test_every_rule_and_fix_over_every_scenario_stays_in_the_vocabulary(path) -> None:  # noqa: ANN001
    """Every rule run on every scenario returns a cause in CAUSE_IDS (a rule that raises fails
    here), and every action built for it is registered, of its registered kind, with params that
    fit its params model."""
    sc = load_scenario(path)
    facts = collect_facts(sc.steps, sc.ctx, strict=True)
    found = [hit for rule in engine.RULES if (hit := rule(facts)) is not None]
    assert all(c.id in CAUSE_IDS for c in found)
    causes = engine.rank([(i, c) for i, c in enumerate(found)], facts)
    for action in build_actions(causes, facts, sc.ctx):
        fix = fix_for(action.id)
        assert fix is not None, action.id
        assert action.kind == fix.kind, (action.id, action.kind)
        fix.params.model_validate(action.params)
