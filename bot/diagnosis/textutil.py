"""Small text helpers shared by the parsers, the log scanner and the log summary.

* :func:`clean_text` — strip ANSI escapes, normalise CRLF/CR to LF.
* :func:`iter_lines` — lazily yield the lines of a (possibly 50 MB) string without a list copy.
* :func:`parse_time` — RFC 3339 / RFC3339Nano (Docker) to an aware ``datetime`` or None.
* :func:`split_docker_ts` — ``"2025-12-10T06:14:02.123456789Z msg"`` to ``(datetime, "msg")``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
DOCKER_TS_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})) ?"
)
_FRACTION_RE = re.compile(r"(\.\d{6})\d+")


def clean_text(text: str) -> str:
    """Strip ANSI escapes and normalise CRLF/CR line ends to LF."""
    if not text:
        return ""
    if "\x1b" in text:
        text = ANSI_RE.sub("", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def clean_line(line: str) -> str:
    """One line without ANSI escapes, trailing CR/LF and NUL bytes."""
    if "\x1b" in line:
        line = ANSI_RE.sub("", line)
    if "\x00" in line:
        line = line.replace("\x00", "")
    return line.rstrip("\r\n")


def iter_lines(text: str) -> Iterator[str]:
    """Yield the lines of ``text`` (split on LF, a trailing CR dropped) one by one.

    Unlike ``str.splitlines`` this never materialises a list, so a 50 MB log costs one
    line of extra memory at a time. Bare CRs inside a line are kept (``clean_line``
    does not split on them) because progress-bar output would otherwise explode.
    """
    pos = 0
    n = len(text)
    while pos < n:
        end = text.find("\n", pos)
        if end < 0:
            yield text[pos:].rstrip("\r")
            return
        yield text[pos:end].rstrip("\r")
        pos = end + 1


def parse_time(value: object) -> datetime | None:
    """Parse Docker's RFC3339Nano (``2025-12-10T06:14:02.123456789Z``) to an aware datetime.

    Docker's zero time ``0001-01-01T00:00:00Z`` and anything unparseable give None.
    """
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    s = _FRACTION_RE.sub(r"\1", value.strip())
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def split_docker_ts(line: str) -> tuple[datetime | None, str]:
    """Split the ``docker logs --timestamps`` prefix off ``line``: ``(timestamp or None, rest)``."""
    m = DOCKER_TS_RE.match(line)
    if not m:
        return None, line
    return parse_time(m.group(1)), line[m.end():]


def json_objects(text: str) -> list[dict[str, Any]]:
    """JSON objects found one per line in ``text`` (``docker ps --format '{{json .}}'`` and
    the like; junk lines skipped)."""
    out: list[dict[str, Any]] = []
    for line in clean_text(text).split("\n"):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            out.append(row)
    return out


def json_array(text: str) -> list[Any]:
    """The first JSON array in ``text`` (``docker inspect`` output, possibly after warnings), else
    the JSON objects found one per line; ``[]`` when there is neither."""
    body = clean_text(text or "")
    start = body.find("[")
    while start >= 0:
        try:
            value, _ = json.JSONDecoder().raw_decode(body, start)
        except json.JSONDecodeError:
            start = body.find("[", start + 1)
            continue
        if isinstance(value, list):
            return value
        start = body.find("[", start + 1)
    return json_objects(body)  # one object per line (docker inspect --format '{{json .}}')
