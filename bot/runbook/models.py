"""Runbook data: frozen pydantic models validated when the YAML loads.

A runbook is a list of :class:`Step`. A shell step is a fixed ``script`` (from the
runbook file, never from chat) that reads its inputs from named shell variables
(``"$docker" logs --tail "$log_tail" "$proxy_container"``). The values come only
from configuration and are passed as quoted ``NAME=value`` assignments, so nothing
is interpolated into the script text. A SQL step is a parameterised ``query``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

STEP_ID_RE = r"^[a-z][a-z0-9_]{1,47}$"

# Variables a step script may read (filled from EnvironmentConfig by the executor).
KNOWN_VARS: frozenset[str] = frozenset(
    {
        "docker",
        "compose_project",
        "compose_file",
        "workdir",
        "proxy_service",
        "mysql_service",
        "proxy_container",
        "mysql_container",
        "proxy_port",
        "docker_root",
        "cgroup_root",
        "log_tail",
        "database",
    }
)


class Part(BaseModel):
    """One part of a multi-part ssh step: its own id (reported like a step), parser and fact.

    The step's script prints the part between ``@@qcc-begin <id>`` and ``@@qcc-end <id> rc=N``
    (:mod:`bot.runbook.sections`); ``ok_exit_codes`` apply to that ``N``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=STEP_ID_RE)
    title: str = Field(min_length=1, max_length=120)
    parser: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    fact: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    ok_exit_codes: tuple[int, ...] = (0,)
    optional: bool = False
    seed_ref: str = ""


class Step(BaseModel):
    """One diagnostic step.

    * ``transport``: ``ssh`` (``script`` run by ``sh -c`` on the host), ``mysql`` (``query``
      with ``%(name)s`` parameters, run read-only over the SSH tunnel) or ``local`` (no remote
      command: the lines of step ``source`` matching the extended regex ``grep``, case
      insensitive, with ``grep_after`` lines of context after each match).
    * ``timeout_s``: the step's own deadline in seconds (enforced remotely with
      ``timeout`` and locally with a slightly longer deadline).
    * ``ok_exit_codes``: exit statuses that still mean "ok" (``grep`` exits 1 on no match).
    * ``optional``: a failure is reported but is not an error of the run (``dmesg`` as non-root).
    * ``parser``: name of the pure parser (``bot.diagnosis.parsers.PARSERS``) reading the output;
      ``fact``: the ``Facts`` field its result fills (the loader checks the two fit).
    * ``parts``: instead of ``parser``/``fact``, a multi-part ssh step whose parts are reported,
      parsed and stored one by one (one round trip for several quick commands).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=STEP_ID_RE)
    title: str = Field(min_length=1, max_length=120)
    transport: Literal["ssh", "mysql", "local"]
    script: str | None = None
    query: str | None = None
    source: str | None = None
    grep: str | None = None
    grep_after: int = Field(0, ge=0, le=100)
    merge_stderr: bool = False
    timeout_s: float = Field(gt=0, le=600)
    parser: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")
    fact: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")
    parts: tuple[Part, ...] = ()
    ok_exit_codes: tuple[int, ...] = (0,)
    optional: bool = False
    seed_ref: str = ""  # which runbook check this automates (for the report)

    @model_validator(mode="after")
    def _shape(self) -> Step:
        if self.transport == "ssh":
            if not self.script or self.query or self.grep:
                raise ValueError("an ssh step needs `script` and no `query` or `grep`")
            unknown = sorted(set(re.findall(r"\$\{?([a-z_]+)\}?", self.script)) - KNOWN_VARS)
            if unknown:
                raise ValueError(f"script uses unknown variables: {', '.join(unknown)}")
        elif self.transport == "mysql":
            if not self.query or self.script or self.grep:
                raise ValueError("a mysql step needs `query` and no `script`")
            if self.merge_stderr:
                raise ValueError("merge_stderr applies to ssh steps only")
        else:
            if not self.source or not self.grep or self.script or self.query:
                raise ValueError("a local step needs `source` and `grep` and no `script` or `query`")
            try:
                re.compile(self.grep)
            except re.error as exc:
                raise ValueError(f"grep is not a valid regular expression: {exc}") from None
        if self.parts:
            if self.transport != "ssh" or self.parser or self.fact:
                raise ValueError("`parts` is for ssh steps, and then the parts name parser and fact")
        elif not self.parser or not self.fact:
            raise ValueError("a step needs `parser` and `fact` (or `parts`)")
        return self

    @property
    def leaves(self) -> tuple[tuple[str, str, str], ...]:
        """``(id, parser, fact)`` of what this step reports: its parts, else itself."""
        if self.parts:
            return tuple((p.id, p.parser, p.fact) for p in self.parts)
        assert self.parser is not None and self.fact is not None  # noqa: S101 - checked above
        return ((self.id, self.parser, self.fact),)


class Runbook(BaseModel):
    """A named, ordered list of steps; step and part ids are unique together."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Runbook:
        seen: set[str] = set()
        for s in self.steps:
            for sid in (s.id, *(p.id for p in s.parts)):
                if sid in seen:
                    raise ValueError(f"duplicate step id {sid!r}")
                seen.add(sid)
        ids = [s.id for s in self.steps]
        for s in self.steps:
            if s.source is not None:
                if s.source not in ids or ids.index(s.source) > ids.index(s.id):
                    raise ValueError(f"step {s.id!r}: source {s.source!r} is not an earlier step")
                if self.step(s.source).transport != "ssh" or self.step(s.source).parts:
                    raise ValueError(f"step {s.id!r}: source {s.source!r} must be a single-part ssh step")
        return self

    def step(self, step_id: str) -> Step:
        """The step with this id. Raises KeyError."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def owner(self, step_id: str) -> Step:
        """The step that reports ``step_id`` (itself, or the step holding that part). Raises KeyError."""
        for s in self.steps:
            if s.id == step_id or any(p.id == step_id for p in s.parts):
                return s
        raise KeyError(step_id)

    @property
    def reported_ids(self) -> list[str]:
        """Every id a run reports, in order (parts instead of their step)."""
        return [leaf[0] for s in self.steps for leaf in s.leaves]
