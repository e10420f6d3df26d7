"""Generate the configuration reference (``docs/configuration.md``) from the settings models.

Run ``python -m bot.configdoc > docs/configuration.md`` after changing :mod:`bot.config`;
``tests/triggers/test_configdoc.py`` fails when the committed file differs from this output.

Every field of :class:`bot.config.Settings` and of the models nested in it becomes one row
(dotted path, type, default, constraints, note). The note is the field's ``description`` when
it has one, else the comment on the field's line (or the comment lines just above it) in
``bot/config.py``, so the reference stays next to the code it describes.
"""

from __future__ import annotations

import inspect
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bot import config

HEADER = """# Configuration reference

_Generated from the settings models in `bot/config.py` by `python -m bot.configdoc > docs/configuration.md`;
do not edit by hand (a test fails when this file is out of date)._

Settings come from a YAML file (`--config PATH`, else `$QCC_CONFIG`, else `./qcc.yaml`; start from
`qcc.example.yaml`) and from environment variables (or a `.env` file; see `.env.example`):

* **Secrets never go in the YAML.** Slack: `SLACK_BOT_TOKEN`, `SLACK_APP_TOKEN`,
  `SLACK_SIGNING_SECRET` (and `SLACK_API_URL`); GitHub API: `GITHUB_TOKEN`. The MySQL password
  of an environment, the GitHub webhook secret and the Alertmanager token are read from the
  variables *named* by `environments.<name>.mysql.password_env`, `webhooks.github_secret_env`
  and `webhooks.alertmanager_token_env`.
* Top-level settings can also be given as `QCC_<NAME>` (nested with `__`, e.g.
  `QCC_WATCH__WINDOW_MIN=15`); values in the YAML file win.

Endpoints on the bot's port (`qcc-bot serve [--http] --port N`, default 3000): `POST /slack/events`
(HTTP mode), `GET /healthz`, `GET /metrics`, `POST /hooks/github` (GitHub `workflow_run`
webhooks, signed) and `POST /hooks/alertmanager` (Alertmanager v4), see `handlers/webhooks.py`.
"""


# Notes for fields that carry neither a description nor a comment in bot/config.py
# ("Model.field"); a field's own description or comment wins.
NOTES: dict[str, str] = {
    "Settings.environments": "the qcc_plus deployments, by name (`test`, `prod`, ...)",
    "Settings.state_url": "SQLAlchemy async URL of the bot's state (SQLite file, or MySQL/MariaDB "
                          "`mysql+aiomysql://...` shared by replicas)",
    "Settings.slack": "Slack credentials (from the environment) and channel routing",
    "Settings.github": "GitHub API access (escalation bundle's CI log)",
    "Settings.webhooks": "the deploy/alert trigger endpoints",
    "Settings.watch": "the post-deploy watch",
    "Settings.step_concurrency": "runbook steps run at once per diagnosis",
    "Settings.lease_s": "seconds without a heartbeat after which another replica marks a run interrupted",
    "Settings.shutdown_grace_s": "seconds SIGTERM waits for running work before cancelling it",
    "EnvironmentConfig.ssh": "how to reach the host",
    "EnvironmentConfig.compose_project": "docker compose project name (`-p`)",
    "EnvironmentConfig.compose_file": "compose file, relative to `workdir`",
    "EnvironmentConfig.workdir": "the qcc_plus checkout on the host",
    "EnvironmentConfig.proxy_service": "compose service of the Go proxy",
    "EnvironmentConfig.mysql_service": "compose service of MySQL",
    "EnvironmentConfig.mysql_container": "explicit MySQL container name (see proxy_container)",
    "EnvironmentConfig.proxy_port": "the proxy's port on the host (`/version`, `/`)",
    "EnvironmentConfig.mysql": "MySQL as seen from the host (schema checks, SQL fixes); none: SQL steps skipped",
    "EnvironmentConfig.docker_root": "docker's data root (disk check)",
    "EnvironmentConfig.log_tail": "proxy log lines read per diagnosis",
    "EnvironmentConfig.production": "production: no self-approval by default, stricter fixes",
    "EnvironmentConfig.approval": "who may approve fixes",
    "EnvironmentConfig.ci_repo": "GitHub repository (owner/name) of the CI runs (escalation bundle)",
    "EnvironmentConfig.ci_workflow": "CI workflow name or file whose latest run log goes into the escalation",
    "EnvironmentConfig.slack": "where automatic incidents are posted",
    "EnvironmentConfig.triggers": "webhooks that start a diagnosis of this environment",
    "SSHConfig.port": "SSH port",
    "SSHConfig.user": "SSH user",
    "SSHConfig.key_file": "private key file (default: the SSH agent / default keys)",
    "SSHConfig.known_hosts": "known_hosts file (default `~/.ssh/known_hosts`); host keys are always verified",
    "SSHConfig.connect_timeout_s": "seconds to connect",
    "SSHConfig.keepalive_interval_s": "seconds between keepalives on the shared connection",
    "SSHConfig.max_sessions": "concurrent channels on one connection (below sshd's MaxSessions)",
    "MySQLConfig.host": "MySQL host as seen from the environment's host",
    "MySQLConfig.port": "MySQL port as seen from the environment's host",
    "MySQLConfig.user": "MySQL user (read-only for diagnoses)",
    "MySQLConfig.password_env": "name of the variable holding the password",
    "MySQLConfig.database": "qcc_plus database",
    "MySQLConfig.connect_timeout_s": "seconds to connect",
    "MySQLConfig.query_timeout_s": "seconds per query",
    "ApprovalPolicy.allow_self_approval": "the requester may approve their own fix (false by default in production)",
    "ApprovalPolicy.expiry_s": "seconds an approval request stays open",
    "EnvironmentSlack.incident_channel": "channel id for automatic incidents (triggers, watch); none: "
                                         "webhooks for this environment are refused (422)",
    "EnvironmentTriggers.github": "the deploy workflow of this environment",
    "EnvironmentTriggers.alertmanager": "Alertmanager label matchers of this environment",
    "GitHubTrigger.workflow": "workflow name or file path",
    "GitHubTrigger.branch": "only runs of this branch (default: any)",
    "AlertmanagerTrigger.match": "labels an alert must carry, all equal",
    "SlackSettings.bot_token": "from `SLACK_BOT_TOKEN` (xoxb-...)",
    "SlackSettings.app_token": "from `SLACK_APP_TOKEN` (xapp-..., Socket Mode)",
    "SlackSettings.signing_secret": "from `SLACK_SIGNING_SECRET` (HTTP mode)",
    "SlackSettings.api_url": "Web API base URL (`SLACK_API_URL`; tests point it at a fake)",
    "SlackSettings.default_environment": "environment of /qcc in channels without one",
    "GitHubSettings.token": "from `GITHUB_TOKEN`",
    "GitHubSettings.api_url": "GitHub API base URL",
    "WebhookSettings.github_secret_env": "name of the variable holding the GitHub webhook secret",
    "WebhookSettings.alertmanager_token_env": "name of the variable holding the Alertmanager bearer token "
                                              "(unset: no token required)",
    "WebhookSettings.max_body_bytes": "larger webhook bodies are refused (413)",
    "WatchSettings.window_min": "minutes a watch lasts (`/qcc watch [env] [minutes]` overrides)",
    "WatchSettings.interval_s": "seconds between two polls",
}


@dataclass(frozen=True)
class Row:
    """One setting: its dotted ``path`` (``<name>`` marks a mapping key) and what to show."""

    path: str
    type: str
    default: str
    constraints: str
    note: str


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside ``annotation`` (``X``, ``X | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for a in get_args(annotation) for m in _models(a)]
    return []


def _type_name(annotation: Any) -> str:
    if annotation is SecretStr:
        return "secret"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
                "Path": "path", "PosixPath": "path"}.get(annotation.__name__, annotation.__name__)
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping {_type_name(args[0])} → {_type_name(args[1])}" if args else "mapping"
    return str(annotation).replace("typing.", "")


def _default(field: FieldInfo) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    else:
        return "**required**"
    if isinstance(value, BaseModel):
        return "(section below)"
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | dict) and not value:
        return "`[]`" if isinstance(value, list) else "`{}`"
    text = str(value) if not isinstance(value, list) else " ".join(str(v) for v in value)
    return f"`{text}`"


def _constraints(field: FieldInfo) -> str:
    out = []
    for meta in field.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("min_length", "min length "),
                           ("max_length", "max length ")):
            value = getattr(meta, attr, None)
            if value is not None:
                out.append(f"{sign}{value}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            out.append(f"matches `{pattern}`")
    return ", ".join(out)


def _comments(cls: type) -> dict[str, str]:
    """Field name -> the comment on its line, or on the comment lines just above it."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    notes: dict[str, str] = {}
    above: list[str] = []
    for line in source.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# ").strip())
            continue
        m = re.match(r"^\s{4}([a-z_][a-z0-9_]*)\s*:[^#]*?(?:#\s*(.*))?$", line)
        if m and not line.startswith("     "):
            note = " ".join([*above, m.group(2) or ""]).strip()
            note = re.sub(r"noqa: \S+( - )?", "", note).strip()
            if note:
                notes[m.group(1)] = note
        above = []
    return notes


def walk(cls: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, type[BaseModel], list[Row]]]:
    """``(section path, model, rows)`` for ``cls`` and every model nested in it, depth first."""
    rows: list[Row] = []
    nested: list[tuple[str, type[BaseModel]]] = []
    notes = {**{k.split(".", 1)[1]: v for k, v in NOTES.items() if k.split(".", 1)[0] == cls.__name__},
             **_comments(cls)}
    for name, field in cls.model_fields.items():
        path = f"{prefix}{name}"
        annotation = field.annotation
        inner = _models(annotation)
        if get_origin(annotation) is dict and _models(get_args(annotation)[1]):
            nested.append((f"{path}.<name>", _models(get_args(annotation)[1])[0]))
            rows.append(Row(path, f"mapping name → `{get_args(annotation)[1].__name__}`", _default(field), "",
                            field.description or notes.get(name, "")))
            continue
        if inner:
            nested.append((path, inner[0]))
            optional = " (optional)" if type(None) in get_args(annotation) else ""
            rows.append(Row(path, f"`{inner[0].__name__}`{optional}", _default(field), "",
                            field.description or notes.get(name, "")))
            continue
        rows.append(Row(path, _type_name(annotation), _default(field), _constraints(field),
                        field.description or notes.get(name, "")))
    yield prefix.rstrip(".") or "(top level)", cls, rows
    for path, model in nested:
        yield from walk(model, path + ".")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _doc(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")


def render() -> str:
    """The whole reference as Markdown."""
    out = [HEADER]
    seen: set[str] = set()
    for path, model, rows in walk(config.Settings):
        if path in seen:
            continue
        seen.add(path)
        out.append(f"## `{path}` — {model.__name__}\n")
        if _doc(model):
            out.append(_doc(model) + "\n")
        out.append("| Setting | Type | Default | Constraints | Notes |")
        out.append("|---|---|---|---|---|")
        for r in rows:
            out.append(f"| `{r.path}` | {_cell(r.type)} | {_cell(r.default)} | {_cell(r.constraints)} | "
                       f"{_cell(r.note)} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def setting_paths() -> list[str]:
    """Every dotted setting path (for the test that the committed reference is complete)."""
    return [r.path for _, _, rows in walk(config.Settings) for r in rows]


def main() -> int:
    sys.stdout.write(render())
    return 0


DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

if __name__ == "__main__":
    raise SystemExit(main())
