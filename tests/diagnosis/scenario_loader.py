"""Load a scenario file of the diagnosis suite into step results and a context.

A scenario (``tests/diagnosis/scenarios/*.yaml``) holds ``description``, ``expected`` (the top
cause id), ``must_quote`` (a substring the top cause's evidence must contain), optional
``also_expected`` (cause ids that must also be listed), optional ``context`` (overrides of
:class:`AnalysisContext`) and ``steps``: per runbook step id its ``status`` and raw ``output``
(or ``rows`` for the SQL step, stored as the executor does: ``json.dumps(rows)``),
``stderr``, ``error`` and ``exit_status``. A step that is not listed was not run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.config import EnvironmentConfig
from bot.diagnosis.context import AnalysisContext
from bot.diagnosis.textutil import parse_time
from bot.models import StepResult, StepStatus

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
            output = json.dumps(spec["rows"])
        out.append(StepResult(id=step_id, title=step_id.replace("_", " "), status=StepStatus(spec["status"]),
                              output=output or "", stderr=spec.get("stderr", ""), error=spec.get("error"),
                              exit_status=spec.get("exit_status", 0 if spec["status"] == "ok" else None)))
    return out


def load_scenario(path: Path) -> Scenario:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    ctx_data = {**DEFAULT_CONTEXT, **(data.get("context") or {})}
    ctx_data["captured_at"] = parse_time(str(ctx_data["captured_at"]))
    return Scenario(name=path.stem, description=data["description"], expected=data["expected"],
                    must_quote=data["must_quote"], steps=build_steps(data["steps"]),
                    ctx=AnalysisContext(**ctx_data), also_expected=list(data.get("also_expected") or []))


def all_scenarios() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.yaml"))
