"""The secrets guard of the reliability run: distinctive secret values and a log scanner.

* :data:`BOT_TOKEN`, :data:`APP_TOKEN`, :data:`SIGNING_SECRET` and :data:`GITHUB_TOKEN` are
  the distinctive values every reliability bot (and CLI run) is configured with;
  :data:`PROXY_API_KEY` and :data:`PROXY_ADMIN_PASSWORD` are printed in the proxy's start-up
  log by :func:`tests.reliability.secrets_host.leaky_scenario`. MySQL passwords are per
  database; the harness adds them with :func:`watch` for the duration of the test.
* :class:`LogScanner` is a logging handler attached to the root logger (at DEBUG) for the
  whole reliability run (:func:`secrets_log_guard`, autouse, session scope). It formats every
  record (message, traceback, stack) and scans it for every watched value; each test fails in
  its teardown if one of its records leaked, and the session total of leaks found anywhere
  (logs, Slack payloads, CLI output, state rows) is the ``secrets_leaked`` figure.
* :func:`find_leaks` is the one scanner used for Slack payloads, CLI output and state rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pytest

from tests.reliability.figures import set_number

BOT_TOKEN = "xoxb-4242-REL-bot-Zq9vK2mP7tL3wY"
APP_TOKEN = "xapp-1-A0REL4242-app-Vx8nB4cR1hJ6"
SIGNING_SECRET = "rel-signing-9d1f7c3b5a2e4f60ab17"
GITHUB_TOKEN = "ghp_RelTest4242abcdefghijklmnopqrstuv"
PROXY_API_KEY = "sk-ant-api03-RELKEY4242-Hq7Wm2Zx9Lp4Tn6V"
PROXY_ADMIN_PASSWORD = "RelAdminPw4242-Kd8s"

WINDOW = 12  # a piece of a secret this long, found anywhere, counts as a leak
STATIC_SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, GITHUB_TOKEN, PROXY_API_KEY, PROXY_ADMIN_PASSWORD)
# Loggers too chatty at DEBUG to be worth formatting (no secrets pass through them).
_QUIET = ("aiosqlite",)


@dataclass
class Leak:
    """One place a watched secret was found (``where``: "log", "slack", "cli", "state", ...)."""

    where: str
    secret: str
    context: str

    def __str__(self) -> str:
        return f"{self.where}: {self.secret[:6]}… in {self.context[:160]!r}"


@dataclass
class Guard:
    """Watched values and every leak found in this run."""

    secrets: set[str] = field(default_factory=lambda: set(STATIC_SECRETS))
    leaks: list[Leak] = field(default_factory=list)

    def watch(self, *values: str) -> None:
        """Add secret values (e.g. a per-test MySQL password, watched until the test ends)."""
        self.secrets |= {v for v in values if v and len(v) >= 4}

    def scan(self, where: str, text: str, extra: Iterable[str] = ()) -> list[Leak]:
        """Record and return the watched values found in ``text``, whole or in part (any
        :data:`WINDOW`-character piece of a longer one: a cut-off prefix leaks too), plus the
        ``extra`` values found whole and any scenario-planted ``REDACTME`` secret."""
        found = []
        for secret in self.secrets:
            piece = next((p for p in _pieces(secret) if p in text), None)
            if piece is not None:
                found.append(Leak(where, secret, _around(text, piece)))
        for value in set(extra) - self.secrets:  # e.g. a scenario's planted DSN: matched whole
            if value and value in text:
                found.append(Leak(where, value, _around(text, value)))
        if "REDACTME" in text:  # every secret a sandbox scenario plants carries this marker
            found.append(Leak(where, "REDACTME", _around(text, "REDACTME")))
        self.leaks += found
        return found


GUARD = Guard()


def watch(*values: str) -> None:
    """Add secret values for the whole run."""
    GUARD.watch(*values)


def find_leaks(where: str, text: str, extra: Iterable[str] = ()) -> list[Leak]:
    """Every watched secret (and ``extra``) in ``text``; counted in the ``secrets_leaked`` figure."""
    return GUARD.scan(where, text, extra)


def _pieces(secret: str) -> list[str]:
    """The secret itself, then overlapping windows of it (longer secrets only)."""
    if len(secret) < 2 * WINDOW:
        return [secret] if secret else []
    starts = sorted({*range(0, len(secret) - WINDOW + 1, WINDOW // 2), len(secret) - WINDOW})
    return [secret] + [secret[i:i + WINDOW] for i in starts]


def _around(text: str, secret: str) -> str:
    i = text.find(secret)
    return text[max(0, i - 60): i + len(secret) + 20]


class LogScanner(logging.Handler):
    """Formats every record and remembers the ones holding a watched value."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 - a record that cannot be formatted holds nothing to scan
            return
        self.count += 1
        GUARD.scan("log", text)


@pytest.fixture(scope="session", autouse=True)
def secrets_log_guard() -> Iterator[LogScanner]:
    """For the whole reliability run: root logger at DEBUG, every record scanned for secrets;
    at the end the ``secrets_leaked`` figure is the number of leaks found anywhere."""
    root = logging.getLogger()
    scanner = LogScanner()
    old_level = root.level
    quiet = {name: logging.getLogger(name).level for name in _QUIET}
    root.addHandler(scanner)
    root.setLevel(logging.DEBUG)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        yield scanner
    finally:
        root.removeHandler(scanner)
        root.setLevel(old_level)
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)
        set_number("secrets_leaked", len(GUARD.leaks))


@pytest.fixture(autouse=True)
def no_secret_in_this_tests_logs(secrets_log_guard: LogScanner) -> Iterator[None]:
    """Fail the test (in its teardown) when one of its log records held a watched secret."""
    before = len([leak for leak in GUARD.leaks if leak.where == "log"])
    watched = set(GUARD.secrets)
    yield
    GUARD.secrets = watched  # this test's own values (its database password) are gone with it
    mine = [leak for leak in GUARD.leaks if leak.where == "log"][before:]
    set_number("secrets_leaked", len(GUARD.leaks))
    assert not mine, "secrets in log records: " + "; ".join(str(leak) for leak in mine[:5])
