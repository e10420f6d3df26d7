"""docker CLI stand-in: answers from $QCC_SANDBOX_DIR/state.json like a Docker 27 host would.

Subcommands: ps (container ls), inspect, logs, stats, rm, start, stop, restart, kill, exec,
version, compose (see _compose.py). Output shapes follow the real CLI: ``--format '{{json .}}'``
lines with sorted keys and Go's HTML escaping, ``inspect`` as an indented JSON array,
``logs`` writing the container's stdout to stdout and its stderr to stderr with RFC3339Nano
``--timestamps``. Errors use the daemon's wording and exit codes (1; 125 for usage).
"""

# ruff: noqa: UP017 - runs under the host's python3, which may predate datetime.UTC (3.11)
from __future__ import annotations

import os
import time

import _host as host
from _cli import Exit, format_rows, go_json, parse, render_template, usage_error
from _dockerfmt import inspect_obj, ps_row, select, stats_row
from _sandbox import hang_forever, mutate, read_state, write_err, write_out
from _sandbox import now as clock

PS_SPEC = {
    "all": ("all", "a", "bool"),
    "quiet": ("quiet", "q", "bool"),
    "no_trunc": ("no-trunc", "", "bool"),
    "filter": ("filter", "f", "multi"),
    "format": ("format", "", "value"),
    "last": ("last", "n", "value"),
    "latest": ("latest", "l", "bool"),
    "size": ("size", "s", "bool"),
}
PS_HEADERS = [
    ("CONTAINER ID", "ID"),
    ("IMAGE", "Image"),
    ("COMMAND", "Command"),
    ("CREATED", "RunningFor"),
    ("STATUS", "Status"),
    ("PORTS", "Ports"),
    ("NAMES", "Names"),
]
STATS_HEADERS = [
    ("CONTAINER ID", "ID"),
    ("NAME", "Name"),
    ("CPU %", "CPUPerc"),
    ("MEM USAGE / LIMIT", "MemUsage"),
    ("MEM %", "MemPerc"),
    ("NET I/O", "NetIO"),
    ("BLOCK I/O", "BlockIO"),
    ("PIDS", "PIDs"),
]
ALIASES = {
    ("container", "ls"): "ps",
    ("container", "list"): "ps",
    ("container", "ps"): "ps",
    ("container", "inspect"): "inspect",
    ("container", "logs"): "logs",
    ("container", "stats"): "stats",
    ("container", "rm"): "rm",
    ("container", "start"): "start",
    ("container", "stop"): "stop",
    ("container", "restart"): "restart",
    ("container", "kill"): "kill",
    ("container", "exec"): "exec",
}


def _now() -> float:
    return clock()


# --------------------------------------------------------------------------------- ps


def cmd_ps(argv: list[str], directory: str, state: dict) -> int:
    opts, pos = parse(argv, PS_SPEC, "docker ps")
    if pos:
        raise usage_error("docker ps", '"docker ps" accepts no arguments.\n\nUsage:  docker ps [OPTIONS]')
    now = _now()
    found = select(state, opts["filter"], bool(opts["all"] or opts["last"] or opts["latest"]), now)
    if opts["latest"]:
        found = found[:1]
    elif opts["last"]:
        found = found[: int(opts["last"])]
    if opts["quiet"]:
        write_out("".join((c["id"] if opts["no_trunc"] else c["id"][:12]) + "\n" for c in found))
        return 0
    rows = [ps_row(c, now, bool(opts["no_trunc"])) for c in found]
    write_out(format_rows(opts["format"], rows, PS_HEADERS))
    return 0


# ----------------------------------------------------------------------------- inspect


def cmd_inspect(argv: list[str], directory: str, state: dict) -> int:
    opts, pos = parse(
        argv,
        {"format": ("format", "f", "value"), "size": ("size", "s", "bool"), "type": ("type", "", "value")},
        "docker inspect",
    )
    if not pos:
        raise usage_error("docker inspect", '"docker inspect" requires at least 1 argument.')
    now = _now()
    found, missing = [], []
    for ref in pos:
        c = host.find_container(state, ref)
        (found.append(inspect_obj(c, now)) if c else missing.append(ref))
    if opts["format"]:
        write_out("".join(render_template(opts["format"], obj) + "\n" for obj in found))
    else:
        write_out(go_json(found, indent=4) + "\n" if found else "[]\n")
    for ref in missing:
        write_err(f"Error: No such object: {ref}\n")
    return 1 if missing else 0


# -------------------------------------------------------------------------------- logs


def _parse_time(value: str, now: float) -> float:
    import re

    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", value)
    if value and m and any(m.groups()):
        h, mi, s = m.groups()
        return now - (int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0))
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    from datetime import datetime

    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise Exit(
            1,
            f'Error response from daemon: invalid value for "since": failed to parse value as time '
            f'or duration: "{value}"\n',
        ) from None


def cmd_logs(argv: list[str], directory: str, state: dict) -> int:
    opts, pos = parse(
        argv,
        {
            "tail": ("tail", "n", "value"),
            "timestamps": ("timestamps", "t", "bool"),
            "follow": ("follow", "f", "bool"),
            "details": ("details", "", "bool"),
            "since": ("since", "", "value"),
            "until": ("until", "", "value"),
        },
        "docker logs",
    )
    if len(pos) != 1:
        raise usage_error("docker logs", '"docker logs" requires exactly 1 argument.')
    c = host.find_container(state, pos[0])
    if c is None:
        raise Exit(1, f"Error response from daemon: No such container: {pos[0]}\n")
    tail = None
    if opts["tail"] not in (None, "all"):
        try:
            tail = int(opts["tail"])
        except ValueError:
            raise Exit(
                1, f'Error response from daemon: invalid value for "tail": "{opts["tail"]}"\n'
            ) from None
        tail = None if tail < 0 else tail
    now = _now()
    since = _parse_time(opts["since"], now) if opts["since"] else None
    until = _parse_time(opts["until"], now) if opts["until"] else None
    host.stream_logs(c, now, tail=tail, timestamps=bool(opts["timestamps"]), since=since, until=until)
    if opts["follow"] and host.is_running(c, now):
        hang_forever()
    return 0


# ------------------------------------------------------------------------------- stats


def cmd_stats(argv: list[str], directory: str, state: dict) -> int:
    opts, pos = parse(
        argv,
        {
            "all": ("all", "a", "bool"),
            "no_stream": ("no-stream", "", "bool"),
            "no_trunc": ("no-trunc", "", "bool"),
            "format": ("format", "", "value"),
        },
        "docker stats",
    )
    now = _now()
    if pos:
        pairs = []
        for ref in pos:
            c = host.find_container(state, ref)
            if c is None:
                raise Exit(1, f"Error response from daemon: No such container: {ref}\n")
            pairs.append((c, ref))
    else:
        pairs = [(c, None) for c in host.containers(state) if opts["all"] or host.is_running(c, now)]
    while True:
        rows = [stats_row(c, now, bool(opts["no_trunc"]), ref) for c, ref in pairs]
        write_out(format_rows(opts["format"], rows, STATS_HEADERS))
        if opts["no_stream"]:
            return 0
        time.sleep(1.0)
        now = _now()


# -------------------------------------------------------------------- lifecycle commands


def _each(state: dict, refs: list[str], action) -> tuple[list[str], list[str]]:
    done, errors = [], []
    for ref in refs:
        c = host.find_container(state, ref)
        if c is None:
            errors.append(f"Error response from daemon: No such container: {ref}")
            continue
        err = action(c)
        (errors.append(err) if err else done.append(ref))
    return done, errors


def _lifecycle(name: str, argv: list[str], directory: str, spec: dict, action_factory) -> int:
    opts, pos = parse(argv, spec, f"docker {name}")
    if not pos:
        raise usage_error(f"docker {name}", f'"docker {name}" requires at least 1 argument.')

    def run(state: dict):
        now = _now()
        return _each(state, pos, action_factory(state, opts, now))

    done, errors = mutate(directory, run)
    write_out("".join(ref + "\n" for ref in done))
    if errors:
        write_err("".join(e + "\n" for e in errors))
        return 1
    return 0


def cmd_rm(argv: list[str], directory: str, state: dict) -> int:
    def factory(st: dict, opts: dict, now: float):
        def act(c: dict) -> str | None:
            if host.is_running(c, now) and not opts["force"]:
                return (
                    f'Error response from daemon: cannot remove container "/{c["name"]}": container is '
                    "running: stop the container before removing or force remove"
                )
            host.stop_container(c, now, exit_code=137)
            host.remove_container(st, c)
            return None

        return act

    return _lifecycle(
        "rm",
        argv,
        directory,
        {"force": ("force", "f", "bool"), "volumes": ("volumes", "v", "bool"), "link": ("link", "l", "bool")},
        factory,
    )


# `docker stop` and `docker restart` take the same options.
STOP_SPEC = {
    "time": ("time", "t", "value"),
    "timeout": ("timeout", "", "value"),
    "signal": ("signal", "s", "value"),
}


def cmd_stop(argv: list[str], directory: str, state: dict) -> int:
    def factory(st: dict, opts: dict, now: float):
        return lambda c: host.stop_container(c, now) and None

    return _lifecycle(
        "stop",
        argv,
        directory,
        STOP_SPEC,
        factory,
    )


def cmd_kill(argv: list[str], directory: str, state: dict) -> int:
    def factory(st: dict, opts: dict, now: float):
        def act(c: dict) -> str | None:
            if not host.is_running(c, now):
                return (
                    f"Error response from daemon: cannot kill container: {c['name']}: "
                    f"container {c['id']} is not running"
                )
            host.stop_container(c, now, exit_code=137)
            return None

        return act

    return _lifecycle("kill", argv, directory, {"signal": ("signal", "s", "value")}, factory)


def cmd_start(argv: list[str], directory: str, state: dict) -> int:
    def factory(st: dict, opts: dict, now: float):
        return lambda c: host.start_container(st, c, directory, now)

    code = _lifecycle(
        "start",
        argv,
        directory,
        {"attach": ("attach", "a", "bool"), "interactive": ("interactive", "i", "bool")},
        factory,
    )
    if code:
        write_err(
            "Error: failed to start containers: " + " ".join(a for a in argv if not a.startswith("-")) + "\n"
        )
    return code


def cmd_restart(argv: list[str], directory: str, state: dict) -> int:
    def factory(st: dict, opts: dict, now: float):
        def act(c: dict) -> str | None:
            host.stop_container(c, now)
            return host.start_container(st, c, directory, now)

        return act

    return _lifecycle(
        "restart",
        argv,
        directory,
        STOP_SPEC,
        factory,
    )


# -------------------------------------------------------------------------------- exec


def cmd_exec(argv: list[str], directory: str, state: dict) -> int:
    import _mysqlexec

    spec = {
        "interactive": ("interactive", "i", "bool"),
        "tty": ("tty", "t", "bool"),
        "detach": ("detach", "d", "bool"),
        "env": ("env", "e", "multi"),
        "user": ("user", "u", "value"),
        "workdir": ("workdir", "w", "value"),
        "privileged": ("privileged", "", "bool"),
    }
    opts, pos = parse(argv, spec, "docker exec", interspersed=False)
    if len(pos) < 2:
        raise usage_error("docker exec", '"docker exec" requires at least 2 arguments.')
    c = host.find_container(state, pos[0])
    if c is None:
        raise Exit(1, f"Error response from daemon: No such container: {pos[0]}\n")
    if not host.is_running(c, _now()):
        raise Exit(1, f"Error response from daemon: container {c['id']} is not running\n")
    program = os.path.basename(pos[1])
    if program in ("mysql", "mariadb") and (c.get("service") == "mysql" or "mysql" in c.get("image", "")):
        return _mysqlexec.run_client(state.get("database"), pos[2:], interactive=bool(opts["interactive"]))
    raise Exit(
        127,
        "OCI runtime exec failed: exec failed: unable to start container process: exec: "
        f'"{pos[1]}": executable file not found in $PATH: unknown\n',
    )


# ----------------------------------------------------------------------------- version


def cmd_version(argv: list[str], directory: str, state: dict) -> int:
    opts, _ = parse(argv, {"format": ("format", "f", "value")}, "docker version")
    info = {
        "Client": {"Version": "27.3.1", "ApiVersion": "1.47", "Os": "linux", "Arch": "amd64"},
        "Server": {"Version": "27.3.1", "ApiVersion": "1.47", "Os": "linux", "Arch": "amd64"},
    }
    if opts["format"]:
        write_out(render_template(opts["format"], info) + "\n")
    else:
        write_out(
            "Client: Docker Engine - Community\n Version:           27.3.1\n API version:       1.47\n\n"
            "Server: Docker Engine - Community\n Engine:\n  Version:          27.3.1\n"
        )
    return 0


COMMANDS = {
    "ps": cmd_ps,
    "inspect": cmd_inspect,
    "logs": cmd_logs,
    "stats": cmd_stats,
    "rm": cmd_rm,
    "stop": cmd_stop,
    "start": cmd_start,
    "restart": cmd_restart,
    "kill": cmd_kill,
    "exec": cmd_exec,
    "version": cmd_version,
}


def main(argv: list[str], directory: str, state: dict) -> int:
    """Dispatch ``docker [global flags] SUBCOMMAND ...``."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in ("--version", "-v"):
            write_out("Docker version 27.3.1, build ce12230\n")
            return 0
        if (
            argv[i] in ("-H", "--host", "--context", "-c", "--log-level", "-l", "--config")
            and "=" not in argv[i]
        ):
            i += 1
        i += 1
    argv = argv[i:]
    if not argv:
        write_out("Usage:  docker [OPTIONS] COMMAND\n")
        return 0
    sub, rest = argv[0], argv[1:]
    if sub == "container" and rest:
        sub, rest = ALIASES.get(("container", rest[0]), rest[0]), rest[1:]
    if sub == "compose":
        import _compose

        return _compose.main(rest, directory, read_state(directory))
    fn = COMMANDS.get(sub)
    if fn is None:
        raise Exit(1, f"docker: '{sub}' is not a docker command.\nSee 'docker --help'\n")
    return fn(rest, directory, state)

