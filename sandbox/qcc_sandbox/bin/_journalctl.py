"""journalctl stand-in: ``-k``/``--dmesg`` shows the simulated kernel lines in ``short`` format.

``-o short-iso`` prints ISO times (``2025-12-10T06:20:11+0000``); ``-n N``/``--lines=N``
keeps the last N; ``--no-pager`` and other flags are accepted. Without ``-k`` (e.g. ``-u docker``)
it prints ``-- No entries --``.
"""

# ruff: noqa: UP017 - runs under the host's python3, which may predate datetime.UTC (3.11)
from __future__ import annotations

from datetime import datetime, timezone

from _host import kernel_lines
from _sandbox import write_out


def main(argv: list[str], directory: str, state: dict) -> int:
    """Print journal entries."""
    kernel = any(a in ("-k", "--dmesg") for a in argv)
    lines_n = None
    for i, a in enumerate(argv):
        if a in ("-n", "--lines") and i + 1 < len(argv) and argv[i + 1].isdigit():
            lines_n = int(argv[i + 1])
        elif a.startswith("--lines=") and a[8:].isdigit():
            lines_n = int(a[8:])
        elif a.startswith("-n") and a[2:].isdigit():
            lines_n = int(a[2:])
    if not kernel:
        write_out("-- No entries --\n")
        return 0
    hostname = (state.get("host") or {}).get("hostname", "qcc-sandbox")
    entries = kernel_lines(state)
    if lines_n is not None:
        entries = entries[-lines_n:] if lines_n else []
    iso = "short-iso" in argv or "--output=short-iso" in argv or "-oshort-iso" in argv
    stamp = "%Y-%m-%dT%H:%M:%S+0000" if iso else "%b %d %H:%M:%S"
    out = [
        f"{datetime.fromtimestamp(t, tz=timezone.utc).strftime(stamp)} {hostname} kernel: {text}"
        for t, text in entries
    ]
    write_out("".join(line + "\n" for line in out) if out else "-- No entries --\n")
    return 0

