"""Secret redaction applied to every text before it is shown, posted or saved.

``redact_text(text) -> (redacted_text, lines_redacted)``.
"""

from __future__ import annotations

import re

REDACTED = "***"
_PATTERNS = [
    re.compile(r"(?i)(password|passwd|pwd|secret|token|api[_-]?key)(\s*[:=]\s*)(\S+)"),
]


def redact_text(text: str, extra_secrets: list[str] | None = None) -> tuple[str, int]:
    """Replace secrets in ``text``; returns the new text and the number of lines changed."""
    count = 0
    out = []
    for line in text.split("\n"):
        new = line
        for pat in _PATTERNS:
            new = pat.sub(lambda m: m.group(1) + m.group(2) + REDACTED, new)
        for s in extra_secrets or []:
            if s and s in new:
                new = new.replace(s, REDACTED)
        if new != line:
            count += 1
        out.append(new)
    return "\n".join(out), count
