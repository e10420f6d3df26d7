"""Bundles: written by diagnose --save-bundle, read back by analyze; bad bundles fail clearly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.bundle import Bundle, load_bundle, save_bundle
from bot.cli import run
from bot.diagnosis.context import AnalysisContext
from bot.errors import BundleError
from bot.models import StepResult, StepStatus

CTX = AnalysisContext(environment="test", compose_project="qcc_test", database="qcc_proxy")


def sample() -> Bundle:
    return Bundle(
        runbook="qcc_deploy_crash", context=CTX, started_at=datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
        duration_s=3.25,
        steps=[
            StepResult(id="proxy_logs", title="Latest proxy logs", status=StepStatus.OK,
                       output="2026-11-29T12:00:00.000000000Z 2026/11/29 12:00:00 héllo \ufffd\n", duration_s=0.5),
            StepResult(id="host_memory", title="Host memory", status=StepStatus.TIMEOUT, error="timed out after 10s"),
            StepResult(id="kernel_oom", title="Kernel", status=StepStatus.FAILED, stderr="dmesg: denied",
                       exit_status=1),
        ],
    )


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    """save → load gives back the same steps, context and timing (incl. non-ASCII output)."""
    b = sample()
    save_bundle(tmp_path / "b", b)
    again = load_bundle(tmp_path / "b")
    assert again == b


def test_refuses_non_empty_directory(tmp_path: Path) -> None:
    """Saving into a directory with files in it is refused rather than mixing bundles."""
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(BundleError, match="not empty"):
        save_bundle(tmp_path, sample())
    assert (tmp_path / "x").read_text() == "keep me"


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda root: (root / "manifest.json").unlink(), "no manifest.json"),
        (lambda root: (root / "manifest.json").write_text("{not json"), "unreadable manifest.json"),
        (lambda root: (root / "manifest.json").write_text('{"format": 99}'), "unsupported bundle format"),
        (lambda root: (root / "steps" / "proxy_logs.out").unlink(), "missing steps/proxy_logs.out"),
        (lambda root: _patch(root, lambda m: m["steps"][0].update(output_file="../../etc/passwd")), "escapes"),
        (lambda root: _patch(root, lambda m: m["steps"][0].update(status="bogus")), "steps.0.status"),
    ],
)
def test_bad_bundles_rejected(tmp_path: Path, mutate, fragment: str) -> None:
    """Each broken bundle is a BundleError naming what is wrong."""
    root = save_bundle(tmp_path / "b", sample())
    mutate(root)
    with pytest.raises(BundleError, match=fragment):
        load_bundle(root)


def _patch(root: Path, fn) -> None:
    m = json.loads((root / "manifest.json").read_text())
    fn(m)
    (root / "manifest.json").write_text(json.dumps(m))


def test_analyze_cli_reads_bundle_and_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """qcc-bot analyze DIR --format json prints exactly one JSON object for the bundle's environment."""
    save_bundle(tmp_path / "b", sample())
    assert run(["analyze", str(tmp_path / "b"), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["environment"] == "test"
    assert [s["id"] for s in report["steps"]] == ["proxy_logs", "host_memory", "kernel_oom"]
    assert report["steps"][1]["status"] == "timeout"
    assert report["causes"], "a report always ranks at least one cause (possibly unknown)"


def test_analyze_cli_missing_bundle_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path that is not a bundle: exit 2 and a one-line error."""
    assert run(["analyze", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no bundle directory" in err and "Traceback" not in err


def test_text_report_renders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The text format shows the steps with their status and the ranked causes."""
    save_bundle(tmp_path / "b", sample())
    assert run(["analyze", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "environment test" in out and "host_memory" in out and "timeout" in out
    assert "Likely causes" in out
