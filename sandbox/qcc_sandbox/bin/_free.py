"""free stand-in: the simulated host's memory (procps-ng 4 layout).

Units: ``-b -k -m -g`` (default KiB), ``-h`` human (``1.9Gi``); ``-t`` adds a Total line;
``-w`` and ``--si`` are accepted. Values come from ``state["memory"]`` (MiB), defaulting to
a healthy 2 GB host.
"""

# ruff: noqa: UP017 - runs under the host's python3, which may predate datetime.UTC (3.11)
from __future__ import annotations

import _host as host
from _sandbox import Exit, write_out


def _human(kib: float) -> str:
    value = kib * 1024.0
    for unit in ("B", "Ki", "Mi", "Gi", "Ti"):
        if value < 1024 or unit == "Ti":
            if unit == "B":
                return f"{int(value)}B"
            return f"{value:.1f}{unit}" if value < 10 else f"{int(round(value))}{unit}"
        value /= 1024.0
    return f"{value}"


def main(argv: list[str], directory: str, state: dict) -> int:
    """Print the memory table."""
    unit = "k"
    total_line = False
    for arg in argv:
        if arg in ("-b", "--bytes"):
            unit = "b"
        elif arg in ("-k", "--kibi", "--kilo"):
            unit = "k"
        elif arg in ("-m", "--mebi", "--mega"):
            unit = "m"
        elif arg in ("-g", "--gibi", "--giga"):
            unit = "g"
        elif arg in ("-h", "--human"):
            unit = "h"
        elif arg in ("-t", "--total"):
            total_line = True
        elif arg in ("-w", "--wide", "--si", "-l", "--lohi"):
            continue
        else:
            raise Exit(1, f"free: invalid option -- '{arg.lstrip('-')}'\n\nUsage:\n free [options]\n")
    mem = host.memory(state)

    def show(mib: float) -> str:
        kib = float(mib) * 1024
        if unit == "h":
            return _human(kib)
        return str(int({"b": kib * 1024, "k": kib, "m": kib / 1024, "g": kib / 1024 / 1024}[unit]))

    swap_free = mem.get("swap_free", mem["swap_total"] - mem["swap_used"])
    lines = [" " * 15 + "total        used        free      shared  buff/cache   available"]
    lines.append(
        "Mem:".ljust(8)
        + "".join(
            show(mem[k]).rjust(12) for k in ("total", "used", "free", "shared", "buff_cache", "available")
        )
    )
    lines.append(
        "Swap:".ljust(8)
        + "".join(show(v).rjust(12) for v in (mem["swap_total"], mem["swap_used"], swap_free))
    )
    if total_line:
        lines.append(
            "Total:".ljust(8)
            + "".join(
                show(v).rjust(12)
                for v in (
                    mem["total"] + mem["swap_total"],
                    mem["used"] + mem["swap_used"],
                    mem["free"] + swap_free,
                )
            )
        )
    write_out("".join(line + "\n" for line in lines))
    return 0

