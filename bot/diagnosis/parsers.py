"""Pure parsers: text captured from one command in, typed model out.

Each parser names the command whose output it reads. Parsers never raise on odd
input: unparseable lines are skipped (and counted where it matters), because one
strange line must not lose the rest of a diagnosis. ``PARSERS`` maps the runbook's
``parser:`` names to these functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


def clean_text(text: str) -> str:
    """Strip ANSI escapes and normalise CRLF/CR line ends to LF."""
    return ANSI_RE.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


class Container(BaseModel):
    """One row of ``docker ps -a --format '{{json .}}'``."""

    id: str = ""
    name: str
    image: str = ""
    state: str = ""  # running | exited | created | restarting | paused | dead | removing
    status: str = ""  # "Exited (1) 2 minutes ago", "Up 3 hours", "Restarting (2) 5 seconds ago"
    ports: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    created_at: str = ""

    @property
    def compose_project(self) -> str | None:
        return self.labels.get("com.docker.compose.project")

    @property
    def compose_service(self) -> str | None:
        return self.labels.get("com.docker.compose.service")

    @property
    def exit_code(self) -> int | None:
        """Exit code shown in ``status`` (``Exited (137) ...``), else None."""
        m = re.search(r"(?:Exited|Restarting) \((-?\d+)\)", self.status)
        return int(m.group(1)) if m else None


def _parse_labels(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    if not isinstance(raw, str) or not raw:
        return out
    for part in raw.split(","):
        k, sep, v = part.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


def _state_from_status(status: str) -> str:
    s = status.lower()
    for prefix, state in (("up", "running"), ("exited", "exited"), ("created", "created"),
                          ("restarting", "restarting"), ("removal", "removing"), ("dead", "dead")):
        if s.startswith(prefix):
            return "paused" if state == "running" and "(paused)" in s else state
    return ""


def parse_docker_ps(text: str) -> list[Container]:
    """Parse ``docker ps -a --no-trunc --format '{{json .}}'`` (one JSON object per line).

    Tolerates ANSI codes, CRLF, blank lines and junk lines (skipped). ``Names`` may hold
    several comma-separated names; the first is used. Older Docker versions omit
    ``State``; it is derived from ``Status`` then.
    """
    out: list[Container] = []
    for line in clean_text(text).split("\n"):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(row, dict):
            continue
        names = str(row.get("Names") or row.get("Name") or "").split(",")
        name = names[0].strip().lstrip("/")
        if not name:
            continue
        status = str(row.get("Status") or "")
        out.append(
            Container(
                id=str(row.get("ID") or ""),
                name=name,
                image=str(row.get("Image") or ""),
                state=str(row.get("State") or _state_from_status(status)).lower(),
                status=status,
                ports=str(row.get("Ports") or ""),
                labels=_parse_labels(row.get("Labels")),
                created_at=str(row.get("CreatedAt") or ""),
            )
        )
    return out


def resolve_container(containers: list[Container], project: str, service: str) -> Container | None:
    """Find the container of ``service`` in compose ``project``.

    Order: compose labels (project and service); then the fixed name ``<project>_<service>``
    (current qcc_plus); then compose's default ``<project>-<service>-1`` /
    ``<project>_<service>_1`` (older naming). Returns None when nothing matches.
    """
    for c in containers:
        if c.compose_project == project and c.compose_service == service:
            return c
    candidates = (f"{project}_{service}", f"{project}-{service}-1", f"{project}_{service}_1")
    for cand in candidates:
        for c in containers:
            if c.name == cand:
                return c
    return None


Parser = Callable[[str], Any]


def _raw(text: str) -> str:
    return clean_text(text)


# Filled in by the diagnosis catalogue; every name used by the packaged runbook must exist.
PARSERS: dict[str, Parser] = {
    "docker_ps": parse_docker_ps,
    "docker_inspect": _raw,
    "docker_logs": _raw,
    "log_lines": _raw,
    "schema_columns": _raw,
    "docker_stats": _raw,
    "ss_listeners": _raw,
    "free": _raw,
    "df": _raw,
    "ps": _raw,
    "kernel_oom": _raw,
    "version_json": _raw,
    "git_log": _raw,
    "deploy_procs": _raw,
}
