"""Command rendering: values from configuration are quoted; scripts are fixed text."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from bot.runbook.commands import render_argv, render_script

HOSTILE = ["a; touch /tmp/qcc-pwned", "$(touch /tmp/qcc-pwned)", "`touch /tmp/qcc-pwned`",
           "x' ; touch /tmp/qcc-pwned; '", "line\nbreak", "\"quoted\"", "${HOME}", "*", "-rf"]


@pytest.mark.parametrize("value", HOSTILE)
def test_script_variables_cannot_become_syntax(value: str, tmp_path) -> None:
    """A hostile value reaches the script as one literal argument (run it with sh to prove it)."""
    marker = tmp_path / "pwned"
    value = value.replace("/tmp/qcc-pwned", str(marker))
    cmd = render_script('printf "%s" "$proxy_container"', {"proxy_container": value, "docker": "docker"},
                        timeout_s=5)
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True)
    assert out.stdout == value
    assert not marker.exists()
    assert "docker=" not in cmd  # only variables the script reads are passed


def test_render_script_shape() -> None:
    """The line starts with a remote timeout (with kill grace) and merges stderr on request."""
    cmd = render_script('echo "$log_tail"', {"log_tail": "100"}, timeout_s=7.6, merge_stderr=True)
    assert cmd.startswith("timeout -k 2 8 env LC_ALL=C log_tail=100 sh -c ")
    assert shlex.split(cmd)[-1] == '{ echo "$log_tail" ; } 2>&1'


def test_render_argv_quotes_each_element() -> None:
    """render_argv substitutes ${name} then quotes, so a commit value cannot inject."""
    line = render_argv(["git", "checkout", "${commit}"], {"commit": "abc; rm -rf /"})
    assert shlex.split(line) == ["git", "checkout", "abc; rm -rf /"]
