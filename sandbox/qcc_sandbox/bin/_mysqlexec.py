"""``docker exec <mysql container> mysql ...``: the real client against the scenario's database.

The container's MySQL is simulated by the real MySQL/MariaDB named in ``state["database"]``
(``host, port, user, password, database, container_database``). Connection options given by
the caller (``-uroot -pX -h ... -P ...``) are replaced by the sandbox's; the database name the
container knows (``container_database``, e.g. ``qcc_proxy``) is mapped to the real one. The
password travels in ``MYSQL_PWD``, never on a command line.
"""

from __future__ import annotations

import subprocess
import sys

from _host import _mysql_client, mysql_client_command
from _sandbox import Exit

_WITH_VALUE = {"-u", "-h", "-P", "-S", "--user", "--host", "--port", "--socket", "--protocol"}
_PREFIXES = (
    "-u",
    "-h",
    "-P",
    "-S",
    "-p",
    "--user=",
    "--host=",
    "--port=",
    "--socket=",
    "--protocol=",
    "--password",
)


def sanitize(args: list[str], database: dict) -> list[str]:
    """Drop the caller's connection options and map the container's database name."""
    out: list[str] = []
    skip = False
    alias = database.get("container_database")
    real = str(database.get("database", ""))
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in _WITH_VALUE:
            skip = True
            continue
        if arg.startswith(_PREFIXES):
            continue
        if alias and arg == alias:
            arg = real
        elif alias and arg in (f"-D{alias}", f"--database={alias}"):
            arg = arg.replace(alias, real)
        out.append(arg)
    return out


def run_client(database: dict | None, args: list[str], *, interactive: bool) -> int:
    """Run the real client; returns its exit status. Raises :class:`Exit` when impossible."""
    if not database:
        raise Exit(
            1,
            "ERROR 2002 (HY000): Can't connect to local server through socket "
            "'/var/run/mysqld/mysqld.sock' (2)\n",
        )
    client = _mysql_client()
    if client is None:
        raise Exit(
            127,
            "OCI runtime exec failed: exec failed: unable to start container process: exec: "
            '"mysql": executable file not found in $PATH: unknown\n',
        )
    base, env = mysql_client_command(client, database)
    argv = [*base, *sanitize(args, database)]
    sys.stdout.flush()
    proc = subprocess.run(argv, env=env, stdin=None if interactive else subprocess.DEVNULL, check=False)
    return proc.returncode
