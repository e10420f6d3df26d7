"""The renderer and the parser, without HTTP: Block Kit limits, escaping, normalization."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.errors import ApprovalAlreadyHandled, BadCommand
from bot.models import Action, ActionKind, Cause, Diagnosis, LogSummary, StepResult, StepStatus
from handlers import blocks
from handlers.errors import describe
from handlers.parsing import QccCommand, normalize, parse_command


def _diagnosis(causes: int, evidence: int, actions: int) -> Diagnosis:
    return Diagnosis(
        environment="test", started_at=datetime.now(UTC), duration_s=3.2,
        steps=[StepResult(id=f"s{i}", title=f"Step {i}", status=StepStatus.OK) for i in range(17)],
        causes=[Cause(id="unknown", title=f"Cause {i} <!channel>", confidence=0.5,
                      evidence=[f"line {j} & <b>" + "z" * 300
                                for j in range(evidence)]) for i in range(causes)],
        actions=[Action(id="restart_proxy", title=f"Fix {i}", kind=ActionKind.SSH, commands=["x" * 900])
                 for i in range(actions)],
        log_summary=LogSummary(total_lines=10, last_lines=["a <b> c"] * 30))


@pytest.mark.parametrize("causes,evidence,actions", [(1, 1, 1), (12, 40, 30), (3, 200, 60)])
def test_report_respects_block_kit_limits(causes, evidence, actions):
    """Any report renders within 50 blocks, 3,000 chars per section and 2,000 per button value;
    whatever was left out is announced and attached as a file."""
    d = _diagnosis(causes, evidence, actions)
    fixes = [(f"proposal{i}", a) for i, a in enumerate(d.actions)]
    msg = blocks.report(d, fixes, run_id="r" * 22)
    dicts = [b.to_dict() for b in msg.blocks]  # slack_sdk validates the limits here
    assert len(dicts) <= 50
    for b in dicts:
        assert len((b.get("text") or {}).get("text", "")) <= 3000
    if causes > 5 or evidence > 6 or actions > 40:
        assert msg.files and msg.files[0].content
        assert "more block(s)" in str(dicts) or "full" in str(dicts)


def test_dynamic_text_is_escaped():
    """Log text cannot inject mentions or links: & < > are escaped in every section."""
    msg = blocks.report(_diagnosis(1, 1, 0), [], run_id="r1")
    text = str([b.to_dict() for b in msg.blocks])
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "&amp;" in text


def test_already_handled_names_the_decider():
    """The double-click refusal says who handled it, as a Slack mention."""
    msg, cid = describe(ApprovalAlreadyHandled("already handled (status: approved)", handled_by="U123ABC"))
    assert cid is None and "Already handled by <@U123ABC> (status: approved)" in msg.text


def test_unexpected_error_gets_correlation_id():
    """Unknown errors show only a correlation id (logged with the traceback)."""
    msg, cid = describe(KeyError("internal detail"))
    assert cid and cid in msg.text and "internal detail" not in msg.text


@pytest.mark.parametrize("raw,expected", [
    ("diagnose", QccCommand("diagnose")),
    ("  DIAGNOSE   prod ", QccCommand("diagnose", "prod")),
    ("\u201cdiagnose\u201d\u00a0\u2018test\u2019", QccCommand("diagnose", "test")),
    ("logs 50 test", QccCommand("logs", "test", 50)),
    ("logs test 5", QccCommand("logs", "test", 5)),
    ("audit 3", QccCommand("audit", None, 3)),
    ("help prod", QccCommand("help", "prod")),
    ("", QccCommand("help")),
    ("status\u2003test", QccCommand("status", "test")),
    ("logs \u00b2", QccCommand("logs", "\u00b2")),  # only ASCII digits are a count ("²" is no int)
    ("logs \u0663", QccCommand("logs", "\u0663")),
])
def test_parse_command(raw, expected):
    """Slash-command text is normalized (smart quotes, NBSP and other spaces) and parsed."""
    assert parse_command(raw) == expected


@pytest.mark.parametrize("raw", ["frobnicate", "logs 0", "logs 9999", "audit x y", "diagnose a b"])
def test_bad_commands_get_usage(raw):
    """Unknown or malformed input raises BadCommand whose text includes the usage."""
    with pytest.raises(BadCommand) as err:
        parse_command(raw)
    assert "/qcc" in str(err.value) or "between" in str(err.value)


def test_normalize_entities():
    """Slack's &amp; &lt; &gt; are decoded once (not twice)."""
    assert normalize("a&amp;lt;b &lt;x&gt;") == "a&lt;b <x>"
