"""Docker's views of a container: ``ps`` rows and filters, ``inspect`` objects, ``stats`` rows.

Pure functions over the state dicts of ``_host.py``; ``now`` is epoch seconds. Shapes match
Docker 27's CLI (keys of ``{{json .}}``, the inspect document) and, where they were compared
with a real engine (tests/realengine/test_fidelity.py), what it really prints: a stopped
container's stats are ``0.00%`` / ``0B / 0B`` (not ``--``), ``State.Running`` is true while
``restarting``, a start that failed (``Created`` with ``State.Error``) has ExitCode 128, and
the MySQL service (a healthcheck in the stack's compose file) shows ``(healthy)``.
"""

# ruff: noqa: UP017 - runs under the host's python3, which may predate datetime.UTC (3.11)
from __future__ import annotations

import _host as host
from _sandbox import Exit


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def ps_row(c: dict, now: float, no_trunc: bool) -> dict:
    """One ``docker ps`` row as the ``{{json .}}`` template sees it."""
    command = " ".join([c.get("path", ""), *c.get("args", [])]).strip()
    if not no_trunc:
        command = _ellipsis(command, 20)
    mounts = [m.get("name") or m.get("source", "") for m in c.get("mounts") or []]
    if not no_trunc:
        mounts = [_ellipsis(m, 15) for m in mounts]
    labels = c.get("labels") or {}
    return {
        "Command": '"' + command + '"',
        "CreatedAt": host.created_at_text(c.get("created", now)),
        "ID": c["id"] if no_trunc else c["id"][:12],
        "Image": c.get("image", ""),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "LocalVolumes": str(sum(1 for m in c.get("mounts") or [] if m.get("type") == "volume")),
        "Mounts": ",".join(mounts),
        "Names": c["name"],
        "Networks": ",".join(sorted(c.get("networks") or {})),
        "Ports": host.ports_text(c, now),
        "RunningFor": host.human_duration(now - c.get("created", now)) + " ago",
        "Size": "0B",
        "State": host.effective_state(c, now),
        "Status": host.status_text(c, now),
    }


def _match_publish(c: dict, value: str, now: float) -> bool:
    port, _, proto = value.partition("/")
    if not host.is_running(c, now):
        return False
    for p in c.get("ports") or []:
        if proto and p.get("proto", "tcp") != proto:
            continue
        if "-" in port:
            lo, _, hi = port.partition("-")
            if lo.isdigit() and hi.isdigit() and int(lo) <= int(p["host_port"]) <= int(hi):
                return True
        elif port.isdigit() and int(port) == int(p["host_port"]):
            return True
    return False


def _filter_ok(c: dict, key: str, values: list[str], now: float) -> bool:
    labels = c.get("labels") or {}
    for value in values:
        if key == "label":
            k, eq, v = value.partition("=")
            if (labels.get(k) == v) if eq else (k in labels):
                return True
        elif key == "name":
            import re

            if re.search(value, c["name"]):
                return True
        elif key == "id":
            if c["id"].startswith(value):
                return True
        elif key == "status":
            if host.effective_state(c, now) == value:
                return True
        elif key == "publish":
            if _match_publish(c, value, now):
                return True
        elif key == "ancestor":
            if c.get("image", "").split(":")[0] == value.split(":")[0]:
                return True
        elif key == "exited":
            if host.effective_state(c, now) == "exited" and str(c.get("exit_code")) == value:
                return True
    return False


FILTER_KEYS = {"label", "name", "id", "status", "publish", "ancestor", "exited"}


def select(state: dict, filters: list[str], all_: bool, now: float) -> list[dict]:
    """Containers matching ``--filter`` values (same key ORed, different keys ANDed)."""
    grouped: dict[str, list[str]] = {}
    for f in filters:
        key, eq, value = f.partition("=")
        if not eq or key not in FILTER_KEYS:
            raise Exit(1, f"Error response from daemon: invalid filter '{key}'\n")
        grouped.setdefault(key, []).append(value)
    out = []
    for c in host.containers(state):
        if not all_ and "status" not in grouped and not host.is_running(c, now):
            continue
        if all(_filter_ok(c, key, values, now) for key, values in grouped.items()):
            out.append(c)
    return out


def inspect_obj(c: dict, now: float) -> dict:
    """The ``docker inspect`` object of one container (the fields the real one has, mostly)."""
    eff = host.effective_state(c, now)
    running = eff in ("running", "paused")
    project = c.get("project") or ""
    exit_code = int(c.get("exit_code") or 0)
    if eff == "created" and c.get("error") and not exit_code:
        exit_code = 128  # what the engine records when starting the container failed
    cid = c["id"]
    port_bindings = {
        f"{p['container_port']}/{p.get('proto', 'tcp')}": [{"HostIp": "", "HostPort": str(p["host_port"])}]
        for p in c.get("ports") or []
    }
    exposed: dict[str, dict] = {key: {} for key in port_bindings}
    exposed.update({f"{port}/tcp": {} for port in c.get("expose") or []})
    net_ports: dict = {}
    if running:
        for p in c.get("ports") or []:
            net_ports[f"{p['container_port']}/{p.get('proto', 'tcp')}"] = [
                {"HostIp": "0.0.0.0", "HostPort": str(p["host_port"])},
                {"HostIp": "::", "HostPort": str(p["host_port"])},
            ]
        for port in c.get("expose") or []:
            net_ports[f"{port}/tcp"] = None
    networks = {}
    for name, net in sorted((c.get("networks") or {}).items()):
        networks[name] = {
            "IPAMConfig": None,
            "Links": None,
            "Aliases": [c["name"], c.get("service") or c["name"]],
            "MacAddress": "02:42:ac:12:00:03" if running else "",
            "NetworkID": (name.encode().hex() * 8)[:64],
            "EndpointID": (cid[::-1])[:64] if running else "",
            "Gateway": "172.18.0.1" if running else "",
            "IPAddress": net.get("ip", "") if running else "",
            "IPPrefixLen": 16 if running else 0,
            "DNSNames": [c["name"], c.get("service") or c["name"], cid[:12]] if running else None,
        }
    finished = c.get("finished") if eff == "exited" else c.get("prev_finished")
    return {
        "Id": cid,
        "Created": host.docker_time(c.get("created")),
        "Path": c.get("path", ""),
        "Args": list(c.get("args") or []),
        "State": {
            "Status": eff,
            "Running": running or eff == "restarting",
            "Paused": eff == "paused",
            "Restarting": eff == "restarting",
            "OOMKilled": bool(c.get("oom_killed")),
            "Dead": eff == "dead",
            "Pid": int(c.get("pid") or 0) if running else 0,
            "ExitCode": 0 if running else exit_code,
            "Error": c.get("error", ""),
            "StartedAt": host.docker_time(c.get("started")),
            "FinishedAt": host.docker_time(finished),
            **({"Health": {"Status": c["health"], "FailingStreak": 0 if c["health"] == "healthy" else 3, "Log": []}}
               if running and c.get("health") else {}),
        },
        "Image": c.get("image_id", ""),
        "ResolvConfPath": f"/var/lib/docker/containers/{cid}/resolv.conf",
        "HostnamePath": f"/var/lib/docker/containers/{cid}/hostname",
        "HostsPath": f"/var/lib/docker/containers/{cid}/hosts",
        "LogPath": f"/var/lib/docker/containers/{cid}/{cid}-json.log",
        "Name": "/" + c["name"],
        "RestartCount": int(c.get("restart_count", 0)),
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "docker-default",
        "ExecIDs": None,
        "HostConfig": {
            "Binds": None,
            "ContainerIDFile": "",
            "LogConfig": {"Type": "json-file", "Config": {}},
            "NetworkMode": f"{project}_default" if project else "bridge",
            "PortBindings": port_bindings,
            "RestartPolicy": {"Name": c.get("restart_policy", "no"), "MaximumRetryCount": 0},
            "AutoRemove": False,
            "Privileged": False,
            "ShmSize": 67108864,
            "Runtime": "runc",
            "Memory": int(c.get("memory_limit", 0)),
            "MemorySwap": 0,
            "NanoCpus": 0,
            "OomKillDisable": False,
            "PidsLimit": None,
        },
        "Mounts": [
            {
                "Type": m.get("type", "volume"),
                "Name": m.get("name", ""),
                "Source": m.get("source", ""),
                "Destination": m.get("destination", ""),
                "Driver": "local",
                "Mode": "z",
                "RW": True,
                "Propagation": "",
            }
            for m in c.get("mounts") or []
        ],
        "Config": {
            "Hostname": cid[:12],
            "Domainname": "",
            "User": "",
            "AttachStdin": False,
            "AttachStdout": True,
            "AttachStderr": True,
            "ExposedPorts": exposed or None,
            "Tty": False,
            "OpenStdin": False,
            "StdinOnce": False,
            "Env": list(c.get("env") or []),
            "Cmd": list(c.get("args") or []),
            "Image": c.get("image", ""),
            "Volumes": None,
            "WorkingDir": c.get("workdir", "/app"),
            "Entrypoint": [c["path"]] if c.get("path") else None,
            "OnBuild": None,
            "Labels": dict(sorted((c.get("labels") or {}).items())),
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": (cid[1:] + cid[:1]) if running else "",
            "SandboxKey": f"/var/run/docker/netns/{cid[:12]}" if running else "",
            "Ports": net_ports,
            "Networks": networks,
        },
    }


def stats_row(c: dict, now: float, no_trunc: bool, given: str | None) -> dict:
    """One ``docker stats`` row; zero values for a container that is not running (as the engine prints)."""
    cid = c["id"] if no_trunc else c["id"][:12]
    row = {"Container": given or cid, "ID": cid, "Name": c["name"]}
    if not host.is_running(c, now):
        row.update(
            {
                "CPUPerc": "0.00%",
                "MemUsage": "0B / 0B",
                "MemPerc": "0.00%",
                "NetIO": "0B / 0B",
                "BlockIO": "0B / 0B",
                "PIDs": "0",
            }
        )
        return row
    s = c.get("stats") or {}
    row.update(
        {
            "CPUPerc": s.get("cpu", "0.12%"),
            "MemUsage": s.get("mem_usage", "18.4MiB / 1.921GiB"),
            "MemPerc": s.get("mem_perc", "0.94%"),
            "NetIO": s.get("net_io", "1.45kB / 0B"),
            "BlockIO": s.get("block_io", "0B / 0B"),
            "PIDs": str(s.get("pids", "9")),
        }
    )
    return row
