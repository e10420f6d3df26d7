"""dmesg stand-in: the simulated kernel ring buffer (boot lines plus the scenario's kernel lines).

``-T``/``--ctime`` prints wall-clock stamps (``[Wed Dec 10 06:14:02 2025]``); otherwise
seconds since boot (``[123456.789012]``). ``--time-format iso`` is also understood. Other
flags are accepted and ignored. A scenario fault can make it fail like a non-root dmesg.
"""

# ruff: noqa: UP017 - runs under the host's python3, which may predate datetime.UTC (3.11)
from __future__ import annotations

from datetime import datetime, timezone

from _host import kernel_lines
from _sandbox import now as clock
from _sandbox import write_out


def main(argv: list[str], directory: str, state: dict) -> int:
    """Print the ring buffer."""
    ctime = any(
        a in ("-T", "--ctime") or (a.startswith("-") and not a.startswith("--") and "T" in a) for a in argv
    )
    iso = "iso" in argv or "--time-format=iso" in argv
    boot = float((state.get("host") or {}).get("boot_time") or clock() - 86400 * 12)
    out = []
    for t, text in kernel_lines(state):
        if iso:
            stamp = datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S,%f+00:00")
            out.append(f"{stamp} {text}")
        elif ctime:
            out.append(
                f"[{datetime.fromtimestamp(t, tz=timezone.utc).strftime('%a %b %e %H:%M:%S %Y')}] {text}"
            )
        else:
            rel = max(0.0, t - boot)
            out.append(f"[{int(rel):5d}.{int((rel % 1) * 1e6):06d}] {text}")
    write_out("".join(line + "\n" for line in out))
    return 0

