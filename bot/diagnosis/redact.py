"""Secret redaction applied to every text before it is shown, posted or saved.

``redact_text(text, extra_secrets=None) -> (redacted_text, lines_redacted)``; secrets become
``***``. What is caught (line by line; a cheap substring pre-check skips clean lines, so 50 MB
of logs stay fast):

* the proxy's start-up credential lines: ``default admin account: username=admin password=...``,
  ``default API key: sk-ant-...``, ``proxy api key: ...``, ``admin token: ...``;
* DSNs ``user:pass@tcp(host:3306)/db`` → ``***@tcp(host:3306)/db`` and URL credentials
  (``mysql://user:pass@host`` → ``mysql://***@host``);
* ``-p<password>`` after ``mysql``/``mysqladmin``/``mysqldump`` and ``--password=...``;
* Anthropic ``sk-ant-...`` (and other ``sk-...``) keys, Slack ``xox[abprs]-...``/``xapp-...``,
  GitHub ``ghp_``/``gho_``/``ghs_``/``ghu_``/``ghr_``/``github_pat_...``, ``Bearer``/``Basic``
  credentials, AWS access key ids and secret keys, PEM private-key blocks;
* generic ``key=value`` / ``key: value`` / ``"key": "value"`` where the key names a password,
  secret, token, API key or access key (``(using password: YES)`` is left alone), also the
  Chinese ``密码:`` / ``密钥:`` / ``令牌:`` of the original project's messages;
* every literal in ``extra_secrets`` (e.g. the configured MySQL password).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

REDACTED = "***"

Repl = str | Callable[[re.Match[str]], str]


def _quoted(m: re.Match[str]) -> str:
    value = m.group(2)
    if len(value) > 1 and value[0] in "\"'":
        return m.group(1) + value[0] + REDACTED + value[0]
    return m.group(1) + REDACTED


# (triggers: lower-case substrings that must occur for the pattern to be tried, pattern, replacement)
_SUBS: list[tuple[tuple[str, ...], re.Pattern[str], Repl]] = [
    # DSNs and URL credentials
    (("@tcp(", "@unix("), re.compile(r"(?<![\w@])[^\s/@'\"()=,;]+(?::[^\s'\"]*?)?@(tcp|unix)\("),
     REDACTED + r"@\1("),
    (("://",), re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/\s:@'\"]+:[^\s'\"]*@", re.I), r"\1" + REDACTED + "@"),
    # vendor tokens
    (("sk-",), re.compile(r"\bsk-ant-[A-Za-z0-9_-]{8,}"), REDACTED),
    (("sk-",), re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), REDACTED),
    (("xox",), re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{8,}"), REDACTED),
    (("xapp-",), re.compile(r"\bxapp-\d-[A-Za-z0-9-]{8,}"), REDACTED),
    (("ghp_", "gho_", "ghs_", "ghu_", "ghr_"), re.compile(r"\bgh[opsur]_[A-Za-z0-9]{20,}"), REDACTED),
    (("github_pat_",), re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"), REDACTED),
    (("akia", "asia"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (("bearer", "basic"), re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    # command-line passwords
    (("mysql",), re.compile(r"(\bmysql(?:admin|dump|sh)?\b[^\n|;&]*?\s-p)(?!\s)([^\s'\"]+)"),
     r"\1" + REDACTED),
    (("--password",), re.compile(r"(?i)(--password[= ])(?!\*\*\*)(\"[^\"]*\"|'[^']*'|\S+)"),
     r"\1" + REDACTED),
    # key = value pairs whose key names a secret
    (("passw", "pwd", "secret", "token", "key", "credential"), re.compile(
        r"""(?ix)
        (?<![\w.-])
        (["']?[\w.-]*?(?:passw(?:or)?d|passwd|pwd|secret|token(?!s)|api[\s_-]?key|apikey|access[\s_-]?key
                        |private[\s_-]?key|credentials?)[\w.-]*["']?\s*[:=]\s*)
        (?!\*\*\*)(?!(?:YES|NO)\))
        ("[^"]*"|'[^']*'|[^\s,;&)"']+)
        """), _quoted),
    (("密码", "密钥", "令牌"),
     re.compile(r"((?:密码|密钥|令牌)\s*[:：=]\s*)(?!\*\*\*)([^\s\"',，]+)"), _quoted),
]
_KEYWORDS_RE = re.compile("|".join(re.escape(k) for t, _, _ in _SUBS for k in t) + "|private key")


def _suspicious(low: str) -> bool:
    """Cheap pre-check on the lower-cased line: could it hold a secret?"""
    return _KEYWORDS_RE.search(low) is not None


_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END [A-Z ]*PRIVATE KEY-----")


def redact_line(line: str, extra_secrets: Iterable[str] = ()) -> str:
    """One line with its secrets replaced by ``***``.

    Known literals go first: a pattern may stop inside a value (``MYSQL_PWD=ab'cd`` ends at the
    quote), and what it leaves behind would no longer match the literal.
    """
    new = line
    for s in extra_secrets:
        if s and s in new:
            new = new.replace(s, REDACTED)
    low = new.lower()
    if _suspicious(low):
        for triggers, rx, repl in _SUBS:
            if any(t in low for t in triggers):
                new = rx.sub(repl, new)
    return new


def redact_text(text: str, extra_secrets: list[str] | None = None) -> tuple[str, int]:
    """Replace secrets in ``text``; returns the new text and the number of lines changed."""
    if not text:
        return text, 0
    extras = [s for s in (extra_secrets or []) if s and len(s) >= 3]
    count = 0
    out = []
    in_pem = False
    for line in text.split("\n"):
        if in_pem or _PEM_BEGIN.search(line):
            in_pem = not _PEM_END.search(line)
            new = REDACTED if line.strip() else line
        else:
            new = redact_line(line, extras)
        if new != line:
            count += 1
        out.append(new)
    return "\n".join(out), count
