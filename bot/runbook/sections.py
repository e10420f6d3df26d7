"""Split the output of a step that reads several things in one round trip.

A multi-part script prints each part between two marker lines::

    @@qcc-begin host_memory
    <output of free -m>
    @@qcc-end host_memory rc=0

:func:`split_sections` returns ``{id: (text, rc)}`` for every complete part (``rc`` is the
part's exit status, ``None`` when the end marker is missing, e.g. the script was cut off).
Text outside markers is ignored. Pure; never raises.
"""

from __future__ import annotations

import re

BEGIN = "@@qcc-begin"
END = "@@qcc-end"
_BEGIN_RE = re.compile(r"^@@qcc-begin (\S+)\s*$")
_END_RE = re.compile(r"^@@qcc-end (\S+) rc=(-?\d+)\s*$")


def split_sections(text: str) -> dict[str, tuple[str, int | None]]:
    """``{part id: (text, exit status or None)}`` in output order (see module doc)."""
    out: dict[str, tuple[str, int | None]] = {}
    current: str | None = None
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if m := _BEGIN_RE.match(line):
            if current is not None:
                out[current] = ("\n".join(lines), None)
            current, lines = m.group(1), []
        elif current is not None and (m := _END_RE.match(line)) and current == m.group(1):
            body = "\n".join(lines).rstrip("\n")  # the script prints a newline before the end marker
            out[current] = (body + "\n" if body else "", int(m.group(2)))
            current, lines = None, []
        elif current is not None:
            lines.append(line)
    if current is not None:
        out[current] = ("\n".join(lines), None)
    return out


def has_sections(text: str) -> bool:
    """True when ``text`` holds at least one begin marker (a multi-part output)."""
    return any(_BEGIN_RE.match(line) for line in text.split("\n"))
