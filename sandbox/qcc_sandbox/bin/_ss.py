"""ss stand-in: TCP listeners of the simulated host (scenario listeners + docker-proxy per published port).

Supports ``-l -t -n -p -a -u -H -4 -6`` (grouped, e.g. ``-ltnp``) and one filter of the form
``sport = :PORT`` (also ``( sport = :PORT )``, ``==``, ``eq``). Output follows iproute2's
``ss`` 6.x layout, including its ``Peer Address:PortProcess`` header quirk.
"""

# ruff: noqa: UP017 - runs under the host's python3, which may predate datetime.UTC (3.11)
from __future__ import annotations

import _host as host
from _sandbox import Exit, write_out
from _sandbox import now as clock

SERVICES = {
    22: "ssh",
    53: "domain",
    80: "http",
    443: "https",
    3306: "mysql",
    8000: "irdmi",
    8001: "vcom-tunnel",
}


def main(argv: list[str], directory: str, state: dict) -> int:
    """Print the socket table."""
    flags: set[str] = set()
    expr: list[str] = []
    for arg in argv:
        if arg.startswith("--"):
            flags.add(
                {
                    "--listening": "l",
                    "--tcp": "t",
                    "--numeric": "n",
                    "--processes": "p",
                    "--all": "a",
                    "--udp": "u",
                    "--no-header": "H",
                }.get(arg, "?")
            )
        elif arg.startswith("-") and len(arg) > 1:
            flags.update(arg[1:])
        else:
            expr.extend(arg.replace("(", " ").replace(")", " ").split())
    unknown = flags - set("ltnpauH46xwr")
    if unknown:
        raise Exit(255, f"ss: invalid option -- '{sorted(unknown)[0]}'\nUsage: ss [ OPTIONS ]\n")
    sport = None
    if expr:
        if (
            len(expr) != 3
            or expr[0] != "sport"
            or expr[1] not in ("=", "==", "eq")
            or not expr[2].startswith(":")
        ):
            raise Exit(255, "ss: bad filter expression (the sandbox supports `sport = :PORT`)\n")
        sport = expr[2][1:]
    listening = "l" in flags or "a" in flags
    tcp = "t" in flags or not (flags & set("utwx"))
    rows = []
    if listening and tcp:
        for item in host.host_listeners(state, clock()):
            if item.get("proto", "tcp") != "tcp":
                continue
            port = int(item["port"])
            if sport is not None and str(port) != sport and SERVICES.get(port) != sport:
                continue
            shown = str(port) if "n" in flags else SERVICES.get(port, str(port))
            peer = "[::]" if item["addr"].startswith("[") else "0.0.0.0"
            proc = (
                f'users:(("{item["process"]}",pid={item["pid"]},fd={item.get("fd", 3)}))'
                if "p" in flags
                else ""
            )
            rows.append(
                ("LISTEN", "0", str(item.get("backlog", 4096)), f"{item['addr']}:{shown}", f"{peer}:*", proc)
            )
    out = []
    if "H" not in flags:
        out.append("State  Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess")
    for state_, rq, sq, local, peer, proc in rows:
        addr, _, lport = local.rpartition(":")
        paddr, _, pport = peer.rpartition(":")
        out.append(f"{state_:<6} {rq:<6} {sq:<6} {addr:>14}:{lport:<5} {paddr:>13}:{pport:<4} {proc}".rstrip())
    write_out("".join(line + "\n" for line in out))
    return 0

