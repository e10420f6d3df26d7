"""df stand-in: the simulated host's filesystems (coreutils layout).

``-P`` (POSIX: ``1024-blocks``/``Capacity``), ``-k``, ``-h``; path arguments map to the
mount with the longest matching prefix (one line per argument, like the real df).
"""

# ruff: noqa: UP017 - runs under the host's python3, which may predate datetime.UTC (3.11)
from __future__ import annotations

import math
import os

import _host as host
from _sandbox import Exit, write_out


def _human(kib: int) -> str:
    value = float(kib)
    for unit in ("K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.1f}{unit}" if value < 10 else f"{int(math.ceil(value))}{unit}"
        value /= 1024.0
    return str(kib)


def _mount_for(path: str, disks: list[dict]) -> dict:
    path = os.path.normpath(path if path.startswith("/") else "/" + path)
    best = None
    for d in disks:
        m = d["mount"]
        if path == m or path.startswith(m.rstrip("/") + "/") or m == "/":
            if best is None or len(m) > len(best["mount"]):
                best = d
    return best or disks[0]


def main(argv: list[str], directory: str, state: dict) -> int:
    """Print the filesystem table."""
    posix = human = False
    paths = []
    for arg in argv:
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 1:
            for ch in arg[1:]:
                if ch == "P":
                    posix = True
                elif ch == "h":
                    human = True
                elif ch in "klaT":
                    continue
                else:
                    raise Exit(1, f"df: invalid option -- '{ch}'\nTry 'df --help' for more information.\n")
        elif arg in ("--portability",):
            posix = True
        elif arg in ("--human-readable",):
            human = True
        elif arg.startswith("--"):
            continue
        else:
            paths.append(arg)
    disks = host.disks(state)
    chosen = [_mount_for(p, disks) for p in paths] if paths else disks
    if human:
        head = ("Filesystem", "Size", "Used", "Avail", "Use%", "Mounted on")
    else:
        head = (
            "Filesystem",
            "1024-blocks" if posix else "1K-blocks",
            "Used",
            "Available",
            "Capacity" if posix else "Use%",
            "Mounted on",
        )
    rows = []
    for d in chosen:
        used, avail = int(d["used_k"]), int(d["avail_k"])
        pct = f"{math.ceil(used * 100 / (used + avail)) if used + avail else 0}%"
        if human:
            rows.append(
                (d["filesystem"], _human(int(d["size_k"])), _human(used), _human(avail), pct, d["mount"])
            )
        else:
            rows.append((d["filesystem"], str(d["size_k"]), str(used), str(avail), pct, d["mount"]))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(6)]
    out = []
    for r in [head, *rows]:
        cells = [r[0].ljust(max(widths[0], 14))] + [r[i].rjust(widths[i]) for i in range(1, 5)] + [r[5]]
        out.append(" ".join(cells))
    write_out("".join(line + "\n" for line in out))
    return 0

