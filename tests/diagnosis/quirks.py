"""Output quirks the parsers must survive, applied to clean captured fixtures."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def ansi(text: str) -> str:
    """Colour codes around every line (a wrapper that forces a TTY)."""
    return "\n".join(f"\x1b[0;32m{ln}\x1b[0m" if ln else ln for ln in text.split("\n"))


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def junk(text: str) -> str:
    """Blank lines, a warning line and a line of U+FFFD replacement characters (bad bytes)."""
    lines = text.split("\n")
    return "\n".join(["", "WARNING: Error loading config file: /root/.docker/config.json: permission denied",
                      lines[0], "", "\ufffd\ufffd\x00\ufffd garbage \ufffd", *lines[1:], "   ", "\ufffd"])


QUIRKS = {"clean": lambda t: t, "ansi": ansi, "crlf": crlf, "junk": junk,
          "all": lambda t: junk(crlf(ansi(t)))}


def around(text: str) -> str:
    """Junk before and after a multi-line document (an `Error: No such object` line, bad bytes)."""
    return "Error: No such object: 0f3e\n\ufffd\ufffd\n" + text + "\n\ufffd trailing junk\n"


DOCUMENT_QUIRKS = {"clean": lambda t: t, "ansi": ansi, "crlf": crlf, "around": around,
                   "all": lambda t: around(crlf(ansi(t)))}
