"""Replayable diagnosis bundles: the (redacted) raw output of every step plus a manifest.

Layout of a bundle directory::

    manifest.json        {"format": 1, "runbook", "context": AnalysisContext, "started_at",
                          "duration_s", "steps": [{id, title, status, duration_s, error,
                          exit_status, command, output_file, stderr_file}]}
    steps/<id>.out       the step's output (UTF-8)
    steps/<id>.err       the step's stderr, when any

``qcc-bot analyze DIR`` reads it back with :func:`load_bundle` and re-runs the analysis
offline. Outputs are redacted before they are written: a bundle is safe to attach.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from bot.diagnosis.context import AnalysisContext
from bot.errors import BundleError
from bot.models import StepResult, StepStatus

FORMAT_VERSION = 1


class BundleStep(BaseModel):
    """One step's entry in the manifest."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,47}$")
    title: str
    status: StepStatus
    duration_s: float = 0.0
    error: str | None = None
    exit_status: int | None = None
    command: str | None = None
    output_file: str | None = None
    stderr_file: str | None = None


class Manifest(BaseModel):
    """``manifest.json`` of a bundle."""

    format: int = FORMAT_VERSION
    runbook: str
    context: AnalysisContext
    started_at: datetime
    duration_s: float
    redacted_lines: int = 0
    steps: list[BundleStep]


class Bundle(BaseModel):
    """A loaded bundle: what :func:`bot.diagnosis.engine.analyze` needs."""

    runbook: str
    context: AnalysisContext
    started_at: datetime
    duration_s: float
    steps: list[StepResult]
    redacted_lines: int = 0  # lines redacted from the raw outputs before they were saved


def save_bundle(directory: str | Path, bundle: Bundle) -> Path:
    """Write ``bundle`` into ``directory`` (created; must be empty or absent). Returns the path.

    Raises :class:`BundleError` when the directory is not empty or cannot be written.
    """
    root = Path(directory)
    try:
        if root.exists() and any(root.iterdir()):
            raise BundleError(f"bundle directory is not empty: {root}")
        (root / "steps").mkdir(parents=True, exist_ok=True)
        entries: list[BundleStep] = []
        for s in bundle.steps:
            out_name = f"steps/{s.id}.out"
            (root / out_name).write_text(s.output, encoding="utf-8")
            err_name = None
            if s.stderr:
                err_name = f"steps/{s.id}.err"
                (root / err_name).write_text(s.stderr, encoding="utf-8")
            entries.append(BundleStep(id=s.id, title=s.title, status=s.status, duration_s=s.duration_s,
                                      error=s.error, exit_status=s.exit_status, command=s.command,
                                      output_file=out_name, stderr_file=err_name))
        manifest = Manifest(runbook=bundle.runbook, context=bundle.context, started_at=bundle.started_at,
                            duration_s=bundle.duration_s, redacted_lines=bundle.redacted_lines, steps=entries)
        (root / "manifest.json").write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    except OSError as exc:
        raise BundleError(f"cannot write bundle to {root}: {exc.strerror}") from None
    return root


def _read(root: Path, rel: str | None) -> str:
    if not rel:
        return ""
    path = (root / rel).resolve()
    if root.resolve() not in path.parents:
        raise BundleError(f"bundle file escapes the bundle directory: {rel}")
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise BundleError(f"bundle is missing {rel}") from None


def load_bundle(directory: str | Path) -> Bundle:
    """Read a bundle written by :func:`save_bundle`.

    Raises :class:`BundleError` for a missing directory or manifest, invalid JSON, an
    unknown format version, or a step file that is missing or outside the bundle.
    """
    root = Path(directory)
    manifest_path = root / "manifest.json"
    if not root.is_dir():
        raise BundleError(f"no bundle directory at {root}")
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"not a bundle (no manifest.json): {root}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"unreadable manifest.json in {root}: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_VERSION:
        raise BundleError(f"unsupported bundle format in {root} (expected format {FORMAT_VERSION})")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BundleError(f"invalid manifest.json in {root}: {where}: {first['msg']}") from None
    steps = [
        StepResult(id=e.id, title=e.title, status=e.status, duration_s=e.duration_s, error=e.error,
                   exit_status=e.exit_status, command=e.command, output=_read(root, e.output_file),
                   stderr=_read(root, e.stderr_file))
        for e in manifest.steps
    ]
    return Bundle(runbook=manifest.runbook, context=manifest.context, started_at=manifest.started_at,
                  duration_s=manifest.duration_s, steps=steps, redacted_lines=manifest.redacted_lines)
