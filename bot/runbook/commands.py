"""Turn runbook steps into exact shell lines, from configuration values only.

Every value is passed through :func:`shlex.quote` as a ``NAME=value`` assignment in
front of ``sh -c <script>``; the script text itself comes from the runbook file.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from bot.config import EnvironmentConfig
from bot.runbook.models import KNOWN_VARS

KILL_AFTER_S = 2


def step_variables(env: EnvironmentConfig, resolved: Mapping[str, str] | None = None) -> dict[str, str]:
    """The values a script may read: configuration plus resolved container names.

    ``resolved`` holds ``proxy_container`` / ``mysql_container`` found from compose
    labels; explicit names in configuration win over them.
    """
    resolved = dict(resolved or {})
    values = {
        "docker": env.docker,
        "compose_project": env.compose_project,
        "compose_file": env.compose_file,
        "workdir": env.workdir,
        "proxy_service": env.proxy_service,
        "mysql_service": env.mysql_service,
        "proxy_port": str(env.proxy_port),
        "docker_root": env.docker_root,
        "cgroup_root": env.cgroup_root,
        "log_tail": str(env.log_tail),
        "database": env.mysql.database if env.mysql else "",
        "proxy_container": env.proxy_container or resolved.get("proxy_container", ""),
        "mysql_container": env.mysql_container or resolved.get("mysql_container", ""),
    }
    assert set(values) == KNOWN_VARS  # noqa: S101 - the model and this map must agree
    return values


def render_script(script: str, variables: Mapping[str, str], *, timeout_s: float, merge_stderr: bool = False) -> str:
    """Build the remote command line for ``script``.

    Shape: ``timeout -k 2 <T> env LC_ALL=C NAME='value' ... sh -c '<script>'`` where ``T`` is
    the step timeout in whole seconds (at least 1). ``LC_ALL=C`` makes every tool print the same
    headers, dates and numbers whatever the host's language. Only variables the script mentions
    are passed. With ``merge_stderr`` the script's stderr is merged into stdout.
    """
    used = sorted(name for name in variables if f"${name}" in script or f"${{{name}}}" in script)
    assigns = " ".join(f"{name}={shlex.quote(variables[name])}" for name in used)
    body = f"{{ {script} ; }} 2>&1" if merge_stderr else script
    seconds = max(1, int(round(timeout_s)))
    env_part = f"env LC_ALL=C {assigns} " if assigns else "env LC_ALL=C "
    return f"timeout -k {KILL_AFTER_S} {seconds} {env_part}sh -c {shlex.quote(body)}"


def render_argv(argv: list[str], variables: Mapping[str, str]) -> str:
    """Render an argv template (``${name}`` placeholders) to one quoted shell line.

    Used for fix commands (restart, rollback). Each element is substituted then quoted,
    so a value can never become shell syntax.
    """
    out = []
    for part in argv:
        for name, value in variables.items():
            part = part.replace("${" + name + "}", value)
        out.append(shlex.quote(part))
    return " ".join(out)
