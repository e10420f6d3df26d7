"""``docker compose`` stand-in: ps, restart, up, start, stop, down, logs for the scenario's project.

The project model (services, their container templates, ``depends_on``, which ones are
built) comes from ``state["services"]`` and ``state["compose"]`` (``project``, ``file``).
A ``-f FILE`` must exist relative to ``--project-directory`` or the current directory, as
with the real tool, so a fix that forgets to ``cd`` into the checkout fails the same way.
Progress lines go to stderr (`` Container qcc_test_proxy  Started``).
"""

from __future__ import annotations

import os
import re

import _host as host
from _cli import Exit, format_rows, go_json, parse, usage_error
from _sandbox import hang_forever, mutate, write_err, write_out
from _sandbox import now as clock

GLOBAL_SPEC = {
    "project": ("project-name", "p", "value"),
    "file": ("file", "f", "multi"),
    "project_dir": ("project-directory", "", "value"),
    "env_file": ("env-file", "", "multi"),
    "profile": ("profile", "", "multi"),
    "ansi": ("ansi", "", "value"),
    "progress": ("progress", "", "value"),
    "parallel": ("parallel", "", "value"),
    "dry_run": ("dry-run", "", "bool"),
}
PS_HEADERS = [
    ("NAME", "Name"),
    ("IMAGE", "Image"),
    ("COMMAND", "Command"),
    ("SERVICE", "Service"),
    ("CREATED", "RunningFor"),
    ("STATUS", "Status"),
    ("PORTS", "Ports"),
]


def _progress(lines: list[str]) -> None:
    write_err("".join(f" {line}\n" for line in lines))


def _check_files(opts: dict) -> None:
    base = opts["project_dir"] or os.getcwd()
    if opts["file"]:
        for f in opts["file"]:
            path = f if os.path.isabs(f) else os.path.join(base, f)
            if not os.path.isfile(path):
                raise Exit(1, f"open {os.path.abspath(path)}: no such file or directory\n")
        return
    if opts["project"]:
        return  # compose v2 can address an existing project by name alone
    for name in ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"):
        if os.path.isfile(os.path.join(base, name)):
            return
    raise Exit(1, "no configuration file provided: not found\n")


def _project_name(opts: dict) -> str:
    if opts["project"]:
        return opts["project"]
    if os.environ.get("COMPOSE_PROJECT_NAME"):
        return os.environ["COMPOSE_PROJECT_NAME"]
    base = os.path.basename(os.path.abspath(opts["project_dir"] or os.getcwd())).lower()
    return re.sub(r"[^a-z0-9_-]", "", base)


def _order(state: dict, wanted: list[str], with_deps: bool) -> list[str]:
    services = state.get("services") or {}
    for name in wanted:
        if name not in services:
            raise Exit(1, f"no such service: {name}\n")
    seen: list[str] = []

    def visit(name: str) -> None:
        if name in seen:
            return
        if with_deps:
            for dep in services[name].get("depends_on") or []:
                if dep in services:
                    visit(dep)
        seen.append(name)

    for name in wanted or list(services):
        visit(name)
    return seen


def _project_containers(state: dict, project: str, service: str | None = None) -> list[dict]:
    return [
        c
        for c in host.containers(state)
        if c.get("project") == project and (service is None or c.get("service") == service)
    ]


def cmd_ps(state: dict, project: str, argv: list[str]) -> int:
    opts, pos = parse(
        argv,
        {
            "all": ("all", "a", "bool"),
            "format": ("format", "", "value"),
            "quiet": ("quiet", "q", "bool"),
            "services": ("services", "", "bool"),
        },
        "docker compose ps",
    )
    now = clock()
    found = [
        c
        for c in _project_containers(state, project)
        if (not pos or c.get("service") in pos) and (opts["all"] or host.is_running(c, now))
    ]
    if opts["quiet"]:
        write_out("".join(c["id"] + "\n" for c in found))
        return 0
    rows = []
    for c in found:
        rows.append(
            {
                "Command": '"' + " ".join([c.get("path", ""), *c.get("args", [])]).strip() + '"',
                "CreatedAt": host.created_at_text(c.get("created", now)),
                "ExitCode": int(c.get("exit_code", 0)),
                "Health": "",
                "ID": c["id"],
                "Image": c.get("image", ""),
                "Name": c["name"],
                "Names": c["name"],
                "Labels": ",".join(f"{k}={v}" for k, v in sorted((c.get("labels") or {}).items())),
                "Ports": host.ports_text(c, now),
                "Project": project,
                "Service": c.get("service", ""),
                "RunningFor": host.human_duration(now - c.get("created", now)) + " ago",
                "Size": "0B",
                "State": host.effective_state(c, now),
                "Status": host.status_text(c, now),
            }
        )
    if opts["format"] == "json":
        write_out("".join(go_json(r) + "\n" for r in rows))
    else:
        write_out(format_rows(opts["format"], rows, PS_HEADERS))
    return 0


def cmd_restart(directory: str, project: str, argv: list[str]) -> int:
    _opts, pos = parse(
        argv,
        {"timeout": ("timeout", "t", "value"), "no_deps": ("no-deps", "", "bool")},
        "docker compose restart",
    )

    def run(state: dict) -> tuple[list[str], str | None]:
        now = clock()
        order = _order(state, pos, with_deps=False)
        lines: list[str] = []
        for svc in order:
            for c in _project_containers(state, project, svc):
                lines.append(f"Container {c['name']}  Restarting")
                host.stop_container(c, now)
                err = host.start_container(state, c, directory, now)
                if err:
                    return lines, err
                lines.append(f"Container {c['name']}  Started")
        return lines, None

    lines, err = mutate(directory, run)
    _progress(lines)
    if err:
        write_err(err + "\n")
        return 1
    return 0


def cmd_up(directory: str, project: str, argv: list[str]) -> int:
    spec = {
        "detach": ("detach", "d", "bool"),
        "build": ("build", "", "bool"),
        "no_build": ("no-build", "", "bool"),
        "no_deps": ("no-deps", "", "bool"),
        "force_recreate": ("force-recreate", "", "bool"),
        "no_recreate": ("no-recreate", "", "bool"),
        "wait": ("wait", "", "bool"),
        "remove_orphans": ("remove-orphans", "", "bool"),
        "pull": ("pull", "", "value"),
        "timeout": ("timeout", "t", "value"),
        "no_start": ("no-start", "", "bool"),
    }
    opts, pos = parse(argv, spec, "docker compose up")
    if opts["build"] and opts["no_build"]:
        raise Exit(1, "--build and --no-build are incompatible\n")

    def run(state: dict) -> tuple[list[str], str | None]:
        now = clock()
        head = (state.get("git") or {}).get("head")
        lines: list[str] = []
        for svc in _order(state, pos, with_deps=not opts["no_deps"]):
            spec_ = state["services"][svc]
            built = bool(opts["build"] and spec_.get("build"))
            if built:
                lines += [f"Service {svc}  Building", f"Service {svc}  Built"]
            existing = _project_containers(state, project, svc)
            c = existing[0] if existing else None
            if c is not None and (opts["force_recreate"] or (built and c.get("image_commit") != head)):
                lines.append(f"Container {c['name']}  Recreate")
                host.stop_container(c, now)
                host.remove_container(state, c)
                c = host.create_from_service(
                    state, svc, now, image_commit=head if built else c.get("image_commit")
                )
                lines.append(f"Container {c['name']}  Recreated")
            elif c is None:
                clash = host.find_container(state, state["services"][svc]["template"]["name"])
                if clash is not None:
                    return lines, (
                        f'Error response from daemon: Conflict. The container name "/{clash["name"]}" '
                        f'is already in use by container "{clash["id"]}". You have to remove (or '
                        "rename) that container to be able to reuse that name."
                    )
                lines.append(f"Container {state['services'][svc]['template']['name']}  Creating")
                c = host.create_from_service(state, svc, now, image_commit=head if built else None)
                lines.append(f"Container {c['name']}  Created")
            elif host.is_running(c, now):
                lines.append(f"Container {c['name']}  Running")
                continue
            if opts["no_start"]:
                continue
            lines.append(f"Container {c['name']}  Starting")
            err = host.start_container(state, c, directory, now)
            if err:
                return lines, err
            lines.append(f"Container {c['name']}  Started")
        return lines, None

    lines, err = mutate(directory, run)
    _progress(lines)
    if err:
        write_err(err + "\n")
        return 1
    if not opts["detach"]:
        hang_forever()  # attached `up` follows the logs until interrupted
    return 0


def _simple(directory: str, project: str, argv: list[str], name: str, verb: tuple[str, str], action) -> int:
    opts, pos = parse(
        argv,
        {
            "timeout": ("timeout", "t", "value"),
            "volumes": ("volumes", "v", "bool"),
            "remove_orphans": ("remove-orphans", "", "bool"),
            "force": ("force", "f", "bool"),
            "stop": ("stop", "s", "bool"),
            "rmi": ("rmi", "", "value"),
        },
        f"docker compose {name}",
    )

    def run(state: dict) -> tuple[list[str], str | None]:
        now = clock()
        lines: list[str] = []
        order = _order(state, pos, with_deps=False)
        if name in ("stop", "down"):
            order = list(reversed(order))
        for svc in order:
            for c in _project_containers(state, project, svc):
                lines.append(f"Container {c['name']}  {verb[0]}")
                err = action(state, c, now)
                if err:
                    return lines, err
                lines.append(f"Container {c['name']}  {verb[1]}")
        if name == "down":
            lines.append(f"Network {project}_default  Removed")
        return lines, None

    lines, err = mutate(directory, run)
    _progress(lines)
    if err:
        write_err(err + "\n")
        return 1
    return 0


def cmd_logs(state: dict, project: str, argv: list[str]) -> int:
    opts, pos = parse(
        argv,
        {
            "tail": ("tail", "n", "value"),
            "timestamps": ("timestamps", "t", "bool"),
            "follow": ("follow", "f", "bool"),
            "no_prefix": ("no-log-prefix", "", "bool"),
            "no_color": ("no-color", "", "bool"),
        },
        "docker compose logs",
    )
    now = clock()
    tail = None if opts["tail"] in (None, "all") else int(opts["tail"])
    for c in reversed(_project_containers(state, project)):
        if pos and c.get("service") not in pos:
            continue
        prefix = b"" if opts["no_prefix"] else (c["name"] + "  | ").encode()
        host.stream_logs(c, now, tail=tail, timestamps=bool(opts["timestamps"]), prefix=prefix)
    return 0


def main(argv: list[str], directory: str, state: dict) -> int:
    """``docker compose [global flags] SUBCOMMAND ...``."""
    opts, pos = parse(argv, GLOBAL_SPEC, "docker compose", interspersed=False)
    if not pos:
        raise usage_error("docker compose", "Usage:  docker compose [OPTIONS] COMMAND")
    sub, rest = pos[0], pos[1:]
    if sub == "version":
        write_out("Docker Compose version v2.29.7\n")
        return 0
    _check_files(opts)
    project = _project_name(opts)
    simulated = (state.get("compose") or {}).get("project")
    if project != simulated:
        raise Exit(
            1,
            f"qcc-sandbox: compose project {project!r} is not simulated here "
            f"(the scenario's project is {simulated!r})\n",
        )
    if sub == "ps":
        return cmd_ps(state, project, rest)
    if sub == "restart":
        return cmd_restart(directory, project, rest)
    if sub == "up":
        return cmd_up(directory, project, rest)
    if sub == "logs":
        return cmd_logs(state, project, rest)
    if sub == "stop":
        return _simple(
            directory,
            project,
            rest,
            "stop",
            ("Stopping", "Stopped"),
            lambda st, c, now: host.stop_container(c, now) and None,
        )
    if sub == "start":
        return _simple(
            directory,
            project,
            rest,
            "start",
            ("Starting", "Started"),
            lambda st, c, now: host.start_container(st, c, directory, now),
        )
    if sub in ("down", "rm"):

        def remove(st: dict, c: dict, now: float) -> None:
            host.stop_container(c, now)
            host.remove_container(st, c)

        return _simple(
            directory,
            project,
            rest,
            sub,
            ("Stopping", "Removed") if sub == "down" else ("Removing", "Removed"),
            remove,
        )
    raise Exit(1, f'unknown docker command: "compose {sub}"\n')
