"""`/qcc watch` text parsing (pure)."""

from __future__ import annotations

import pytest

from bot.errors import BadCommand
from handlers.parsing import QccCommand, parse_command


@pytest.mark.parametrize(("text", "expected"), [
    ("watch", QccCommand("watch")),
    ("watch test", QccCommand("watch", "test")),
    ("watch test 15", QccCommand("watch", "test", 15)),
    ("watch 15 test", QccCommand("watch", "test", 15)),
    ("watch stop", QccCommand("watch", stop=True)),
    ("watch STOP prod", QccCommand("watch", "prod", stop=True)),
])
def test_watch_parses(text, expected):
    """Environment and minutes in any order; `stop` first."""
    assert parse_command(text) == expected


@pytest.mark.parametrize("text", ["watch test 0", "watch test 1441", "watch stop test 5", "watch a b"])
def test_watch_refuses(text):
    """Minutes between 1 and 1440; `stop` takes no minutes; one environment."""
    with pytest.raises(BadCommand):
        parse_command(text)
