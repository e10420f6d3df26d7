"""Load and validate runbook YAML into :class:`~bot.runbook.models.Runbook`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml
from pydantic import BaseModel, ValidationError

from bot.errors import RunbookError
from bot.runbook.models import Runbook
from bot.runbook.steps import StepId

DEFAULT_RUNBOOK = "qcc_deploy_crash.yaml"


def parse_runbook(text: str, *, source: str = "<runbook>", parsers: Mapping[str, Callable[..., Any]] | None = None,
                 facts_model: type[BaseModel] | None = None, step_ids: type[StrEnum] | None = StepId) -> Runbook:
    """Parse runbook YAML text and check it against the code that reads it.

    ``parsers`` (default ``bot.diagnosis.parsers.PARSERS``) and ``facts_model`` (default
    ``bot.diagnosis.facts.Facts``): every step's (or part's) ``parser`` must be registered,
    its ``fact`` must be a field of the model, and the parser's return annotation must fit the
    field (``T`` fits ``T | None``; a ``dict[str, T]`` field takes one ``T`` per step).
    ``step_ids`` (default :class:`StepId`; None for a runbook that code does not name): every
    value must be a step or part id of the file. Raises :class:`RunbookError` with every
    problem and its path (``steps.3.timeout_s: ...``).
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
    if facts_model is None:
        from bot.diagnosis.facts import Facts

        facts_model = Facts
    problems = []
    for i, step in enumerate(runbook.steps):
        for j, (_sid, parser, fact) in enumerate(step.leaves):
            where = f"steps.{i}" + (f".parts.{j}" if step.parts else "")
            problems += _check_leaf(where, parser, fact, parsers, facts_model)
    if step_ids is not None:
        have = set(runbook.reported_ids) | {s.id for s in runbook.steps}
        for member in step_ids:
            if member.value not in have:
                problems.append(f"steps: no step or part has id {member.value!r}, which the code names as "
                                f"{step_ids.__name__}.{member.name} (renamed or removed? update "
                                f"{step_ids.__module__} with it)")
    if problems:
        raise RunbookError(f"{source}: invalid runbook ({len(problems)} problem(s))", problems)
    return runbook


def _check_leaf(where: str, parser: str, fact: str, parsers: Mapping[str, Callable[..., Any]],
                facts_model: type[BaseModel]) -> list[str]:
    fn = parsers.get(parser)
    if fn is None:
        return [f"{where}.parser: unknown parser {parser!r}"]
    field = facts_model.model_fields.get(fact)
    if field is None:
        return [f"{where}.fact: {facts_model.__name__} has no field {fact!r}"]
    try:
        returns = get_type_hints(fn).get("return")
    except (NameError, TypeError):
        returns = None
    if returns is None:
        return [f"{where}.parser: parser {parser!r} has no return annotation to check against {fact!r}"]
    if not fits(returns, field.annotation):
        return [f"{where}.parser: parser {parser!r} returns {_name(returns)}, which does not fit "
                f"{facts_model.__name__}.{fact} ({_name(field.annotation)})"]
    return []


def fits(returns: Any, field: Any) -> bool:
    """True when a parser returning ``returns`` can fill a field annotated ``field``."""
    if returns == field:
        return True
    args = get_args(field)
    if type(field) is UnionType or get_origin(field) is Union:
        return any(fits(returns, a) for a in args if a is not type(None))
    if get_origin(field) is dict and len(args) == 2:
        return bool(args[1] == returns)
    return False


def _name(tp: Any) -> str:
    """``list[Filesystem] | None`` (module paths dropped)."""
    return re.sub(r"\b(?:[a-z_][a-z0-9_]*\.)+(?=[A-Za-z_])", "", str(tp) if get_args(tp) else tp.__name__)


def load_runbook(path: str | Path | None = None) -> Runbook:
    """Load the runbook at ``path``, or the packaged default when None.

    Raises :class:`RunbookError` (missing file, bad YAML, invalid steps).
    """
    if path is None:
        return default_runbook()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RunbookError(f"cannot read runbook {p}: {exc.strerror}") from None
    return parse_runbook(text, source=str(p))


@cache
def default_runbook() -> Runbook:
    """The packaged runbook, loaded and checked once per process (it is frozen)."""
    text = resources.files("bot.runbooks").joinpath(DEFAULT_RUNBOOK).read_text(encoding="utf-8")
    return parse_runbook(text, source=DEFAULT_RUNBOOK)
