"""The one exception tree of qcc-chatops.

Every error the bot raises on purpose is a :class:`BotError`. Library exceptions
(asyncssh, aiomysql, SQLAlchemy, slack_sdk) are translated into this tree at the
boundary where they happen (``raise ... from exc``) and never leak further::

    BotError
    ├── UserError                    the person asking can fix it; shown as a short message
    │   ├── ConfigError              the YAML/env configuration is invalid (carries .problems)
    │   ├── UnknownEnvironment       `/qcc diagnose prod2` with no such environment
    │   ├── NotAuthorized            not in a configured channel / not an approver
    │   ├── ApprovalError            approval cannot move on
    │   │   ├── ApprovalExpired
    │   │   └── ApprovalAlreadyHandled   (carries .handled_by)
    │   ├── BadCommand               unparseable slash-command text
    │   └── BundleError              a captured bundle is missing or malformed
    ├── RunbookError                 the runbook YAML is invalid (carries .problems)
    └── TransportError               a peer failed; carries host and detail
        ├── SSHError
        │   ├── SSHUnreachable       connect refused / DNS / timeout
        │   ├── SSHAuthFailed        key rejected
        │   └── HostKeyNotTrusted    host key missing from / differs from known_hosts
        ├── CommandTimeout           a step ran past its deadline (carries .timeout_s)
        ├── MySQLError
        │   ├── MySQLUnavailable     cannot connect / tunnel failed / silent server
        │   └── MySQLAccessDenied    Error 1045 / 1142
        ├── SlackError               Slack Web API failure after retries
        └── StateUnavailable         the bot's own state database failed or did not answer

``str(error)`` is always a single line fit to show an on-call engineer; it never
contains a secret (transports build messages from host names and error codes only).
"""

from __future__ import annotations


class BotError(Exception):
    """Base of every error raised on purpose by qcc-chatops."""


class UserError(BotError):
    """An error the person asking can fix; rendered as a short ephemeral or CLI message."""


class ConfigError(UserError):
    """The configuration is invalid.

    ``problems`` is a list of ``"dotted.path: message"`` strings, one per problem,
    so that every problem is reported at once.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        super().__init__(message)


class UnknownEnvironment(UserError):
    """The named environment is not configured. ``known`` lists the configured names.

    The name is shown ASCII-escaped (at most 40 characters): environment names are ASCII, so a
    look-alike (Cyrillic ``е`` in ``tеst``, fullwidth letters, an RTL override) shows as what it
    is, ``'t\\u0435st'``, instead of passing for ``test`` in the refusal.
    """

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = list(known)
        shown = ascii(name[:40]) + ("…" if len(name) > 40 else "")
        hint = "" if name.isascii() else " (non-ASCII characters shown escaped)"
        super().__init__(
            f"unknown environment {shown}{hint}; configured: {', '.join(sorted(known)) or 'none'}"
        )


class NotAuthorized(UserError):
    """The user may not do this here (channel not allowed, not an approver, self-approval)."""


class ApprovalError(UserError):
    """An approval cannot move to the requested state."""


class ApprovalExpired(ApprovalError):
    """The approval passed its expiry time before it was decided."""


class ApprovalAlreadyHandled(ApprovalError):
    """Someone already decided this approval; ``handled_by`` is their Slack user id."""

    def __init__(self, message: str, handled_by: str | None = None) -> None:
        self.handled_by = handled_by
        super().__init__(message)


class BadCommand(UserError):
    """The slash-command text could not be understood; the message holds the usage."""


class BundleError(UserError):
    """A captured diagnosis bundle is missing, unreadable or not a bundle."""


class RunbookError(BotError):
    """The runbook data failed validation; ``problems`` lists each one with its path."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        super().__init__(message)


class TransportError(BotError):
    """A remote peer (SSH host, MySQL, Slack) failed.

    ``host`` names the peer (``user@host:port`` or ``host:port``), ``detail`` is a
    short, secret-free description of what went wrong.
    """

    def __init__(self, message: str, *, host: str | None = None, detail: str | None = None) -> None:
        self.host = host
        self.detail = detail
        super().__init__(message)


class SSHError(TransportError):
    """An SSH-level failure."""


class SSHUnreachable(SSHError):
    """The SSH host could not be reached (refused, no route, DNS, connect timeout)."""


class SSHAuthFailed(SSHError):
    """The SSH server rejected our key."""


class HostKeyNotTrusted(SSHError):
    """The server's host key is not in, or differs from, the configured known_hosts.

    Never bypassed: the message tells an admin how to verify and record the key.
    """


class CommandTimeout(TransportError):
    """A command or query ran past its deadline (``timeout_s`` seconds)."""

    def __init__(self, message: str, *, timeout_s: float, host: str | None = None) -> None:
        self.timeout_s = timeout_s
        super().__init__(message, host=host, detail=f"timeout after {timeout_s:g}s")


class MySQLError(TransportError):
    """A MySQL-level failure."""


class MySQLUnavailable(MySQLError):
    """MySQL could not be reached or did not answer (tunnel failed, refused, silent)."""


class MySQLAccessDenied(MySQLError):
    """MySQL refused our credentials or privileges (1045, 1142)."""


class SlackError(TransportError):
    """The Slack Web API failed after the client's retries."""


class StateUnavailable(TransportError):
    """The bot's state database (SQLite file or MySQL) failed or did not answer in time."""
