"""Load a scenario file of the diagnosis suite into step results and a context.

A scenario (``tests/diagnosis/scenarios/*.yaml``) holds ``description``, ``expected`` (the top
cause id), ``must_quote`` (a substring the top cause's evidence must contain), optional
``also_expected`` (cause ids that must also be listed), optional ``context`` (overrides of
:class:`AnalysisContext`) and ``steps``: per runbook step id its ``status`` and raw ``output``
(or ``rows`` for the SQL step, a list or a mapping ``column name -> row``, stored as the
executor does: ``json.dumps(rows)``), ``stderr``, ``error`` and ``exit_status``. A step that
is not listed was not run. JSON outputs may be written as data, so that ``extends`` can merge
into them: ``json_list`` (a mapping ``name -> object``, printed as ``docker inspect`` does: one
JSON array, 4-space indent) or ``json_lines`` (``name -> object``, one compact object a line,
as ``--format '{{json .}}'``); the names are merge handles only, the objects are printed in
mapping order.

A file may say ``extends: NAME`` (``NAME.yaml`` in the same folder; the shared bases start
with ``_`` and are not scenarios themselves): the two are deep-merged by the sandbox's own
:func:`qcc_sandbox.scenario.resolve_extends` (mappings merge key by key, strings and lists
replace, ``null`` deletes, e.g. ``steps: {kernel_oom: null}`` for a step that did not run),
so a file holds only what makes its case. A file without ``extends`` stands alone (the old
full format). :func:`expand` gives the merged mapping, validated by :class:`ScenarioFile`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.config import EnvironmentConfig
from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.textutil import parse_time
from bot.models import StepResult, StepStatus
from qcc_sandbox.scenario import resolve_extends

SCENARIO_DIR = Path(__file__).parent / "scenarios"
_ROLLBACK_FIELD = EnvironmentConfig.model_fields["rollback_command"]
PW = "S3cr3t-Qcc-Pass!"  # the MySQL password the scenarios' `docker inspect` env carries (must be redacted)
DEFAULT_CONTEXT: dict[str, Any] = {
    "environment": "test",
    "compose_project": "qcc_test",
    "compose_file": "docker-compose.test.yml",
    "workdir": "/opt/qcc_plus",
    "proxy_port": 8001,
    "database": "qcc_proxy",
    "has_mysql": True,
    "captured_at": "2025-12-10T06:20:00Z",
    "rollback_command": _ROLLBACK_FIELD.get_default(call_default_factory=True),  # the configured default
}


class StepSpec(BaseModel):
    """One step's captured result in a scenario file."""

    model_config = ConfigDict(extra="forbid")
    status: StepStatus
    output: str = ""
    # The SQL step: result rows (stored as json.dumps(rows)); a mapping name -> row lets a file
    # drop or change one row of its base (`rows: {health_check_model: null}`).
    rows: list[dict[str, Any]] | dict[str, dict[str, Any]] | None = None
    json_list: dict[str, dict[str, Any]] | None = None  # name -> object, printed as one indented array
    json_lines: dict[str, dict[str, Any]] | None = None  # name -> object, printed one compact object a line
    stderr: str = ""
    error: str | None = None
    exit_status: int | None = None

    @model_validator(mode="after")
    def _one_output(self) -> StepSpec:
        given = [k for k in ("output", "rows", "json_list", "json_lines") if k in self.model_fields_set]
        if len(given) > 1:
            raise ValueError(f"a step has one output, got {given} (set the inherited one to null)")
        return self


class ScenarioFile(BaseModel):
    """An expanded scenario file (after ``extends``); unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
    description: str = Field(min_length=1)
    expected: str
    must_quote: str = Field(min_length=1)
    also_expected: list[str] = Field(default_factory=list)
    context: dict[str, Any] = Field(default_factory=dict)
    steps: dict[str, StepSpec]


@dataclass
class Scenario:
    name: str
    description: str
    expected: str
    must_quote: str
    steps: list[StepResult]
    ctx: AnalysisContext
    also_expected: list[str] = field(default_factory=list)


def build_steps(raw: dict[str, dict[str, Any]]) -> list[StepResult]:
    """StepResults from a scenario's ``steps`` mapping (in file order)."""
    out = []
    for step_id, spec in raw.items():
        output = spec.get("output", "")
        if "rows" in spec:
            rows = spec["rows"]
            output = json.dumps(list(rows.values()) if isinstance(rows, dict) else rows)
        elif "json_list" in spec:
            output = json.dumps(list(spec["json_list"].values()), indent=4) + "\n"
        elif "json_lines" in spec:
            output = "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in spec["json_lines"].values())
        out.append(StepResult(id=step_id, title=step_id.replace("_", " "), status=StepStatus(spec["status"]),
                              output=output or "", stderr=spec.get("stderr", ""), error=spec.get("error"),
                              exit_status=spec.get("exit_status", 0 if spec["status"] == "ok" else None)))
    return out


def expand(path: Path) -> dict[str, Any]:
    """The scenario file at ``path`` with its ``extends`` chain merged in, validated (raw mapping).

    Raises :class:`qcc_sandbox.scenario.ScenarioError` for a missing base or a loop and
    :class:`pydantic.ValidationError` for a result that is not a valid scenario.
    """
    data = resolve_extends(path, default_parent=None)
    ScenarioFile.model_validate(data)
    return data


def load_scenario(path: Path) -> Scenario:
    data = expand(path)
    ctx_data = {**DEFAULT_CONTEXT, **(data.get("context") or {})}
    ctx_data["captured_at"] = parse_time(str(ctx_data["captured_at"]))
    return Scenario(name=path.stem, description=data["description"], expected=data["expected"],
                    must_quote=data["must_quote"], steps=build_steps(data["steps"]),
                    ctx=AnalysisContext(**ctx_data), also_expected=list(data.get("also_expected") or []))


def all_scenarios() -> list[Path]:
    """The scenario files (``_*.yaml`` are the shared bases, not scenarios)."""
    return sorted(p for p in SCENARIO_DIR.glob("*.yaml") if not p.name.startswith("_"))
