"""Load and validate runbook YAML into :class:`~bot.runbook.models.Runbook`."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from bot.errors import RunbookError
from bot.runbook.models import Runbook

DEFAULT_RUNBOOK = "qcc_deploy_crash.yaml"


def parse_runbook(text: str, *, source: str = "<runbook>", parsers: Iterable[str] | None = None) -> Runbook:
    """Parse runbook YAML text.

    ``parsers`` (default: the names in ``bot.diagnosis.parsers.PARSERS``) are the parser
    names a step may use. Raises :class:`RunbookError` with every problem and its path
    (``steps.3.timeout_s: ...``).
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise RunbookError(f"{source}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise RunbookError(f"{source}: the top level must be a mapping with `name` and `steps`")
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        problems = [".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors()]
        raise RunbookError(f"{source}: invalid runbook ({len(problems)} problem(s))", problems) from None
    if parsers is None:
        from bot.diagnosis.parsers import PARSERS

        parsers = PARSERS
    known = set(parsers)
    problems = [
        f"steps.{i}.parser: unknown parser {s.parser!r}" for i, s in enumerate(runbook.steps) if s.parser not in known
    ]
    if problems:
        raise RunbookError(f"{source}: invalid runbook ({len(problems)} problem(s))", problems)
    return runbook


def load_runbook(path: str | Path | None = None) -> Runbook:
    """Load the runbook at ``path``, or the packaged default when None.

    Raises :class:`RunbookError` (missing file, bad YAML, invalid steps).
    """
    if path is None:
        text = resources.files("bot.runbooks").joinpath(DEFAULT_RUNBOOK).read_text(encoding="utf-8")
        return parse_runbook(text, source=DEFAULT_RUNBOOK)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RunbookError(f"cannot read runbook {p}: {exc.strerror}") from None
    return parse_runbook(text, source=str(p))
