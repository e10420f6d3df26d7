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
        "log_tail",
        "database",
    }
)
Need = Literal["proxy_container", "mysql_container"]


class Step(BaseModel):
    """One diagnostic step.

    * ``transport``: ``ssh`` (``script`` run by ``sh -c`` on the host) or ``mysql``
      (``query`` with ``%(name)s`` parameters, run read-only over the SSH tunnel).
    * ``timeout_s``: the step's own deadline in seconds (enforced remotely with
      ``timeout`` and locally with a slightly longer deadline).
    * ``ok_exit_codes``: exit statuses that still mean "ok" (``grep`` exits 1 on no match).
    * ``needs``: resolved names the script requires; when they cannot be resolved the
      step is ``skipped`` with a reason.
    * ``optional``: a failure is reported but is not an error of the run (``dmesg`` as non-root).
    * ``parser``: name of the pure parser (``bot.diagnosis.parsers.PARSERS``) reading the output.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=STEP_ID_RE)
    title: str = Field(min_length=1, max_length=120)
    transport: Literal["ssh", "mysql"]
    script: str | None = None
    query: str | None = None
    merge_stderr: bool = False
    timeout_s: float = Field(gt=0, le=600)
    parser: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    needs: tuple[Need, ...] = ()
    ok_exit_codes: tuple[int, ...] = (0,)
    optional: bool = False
    seed_ref: str = ""  # which runbook check this automates (for the report)

    @model_validator(mode="after")
    def _shape(self) -> Step:
        if self.transport == "ssh":
            if not self.script or self.query:
                raise ValueError("an ssh step needs `script` and no `query`")
            unknown = sorted(set(re.findall(r"\$\{?([a-z_]+)\}?", self.script)) - KNOWN_VARS)
            if unknown:
                raise ValueError(f"script uses unknown variables: {', '.join(unknown)}")
        else:
            if not self.query or self.script:
                raise ValueError("a mysql step needs `query` and no `script`")
            if self.merge_stderr:
                raise ValueError("merge_stderr applies to ssh steps only")
        return self


class Runbook(BaseModel):
    """A named, ordered list of steps with unique ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Runbook:
        seen: set[str] = set()
        for s in self.steps:
            if s.id in seen:
                raise ValueError(f"duplicate step id {s.id!r}")
            seen.add(s.id)
        return self

    def step(self, step_id: str) -> Step:
        """The step with this id. Raises KeyError."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)
