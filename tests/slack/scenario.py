"""Captured-style host output for a proxy that died on ``Error 1054 ... health_check_model``.

``migration_failed()`` returns fakes (a :class:`StatefulRunner` and a ``FakeSqlRunner``)
whose answers follow the field notes: the proxy ``Exited (1)`` right after ``using MySQL
storage``, ``nodes`` lacks ``health_check_model``. The runner is stateful where a fix
changes the host: after a compose ``restart``/``up`` the proxy shows as running.
Some outputs carry the configured secrets (a DSN with the MySQL password, a leaked token
line) so tests can prove they never reach Slack.
"""

from __future__ import annotations

import json
import re

from bot.escalation import CHUNK_LINES, part_index
from bot.models import CommandResult
from bot.transports.base import DEFAULT_MAX_OUTPUT_BYTES
from bot.transports.fake import FakeCommandRunner, FakeSqlRunner

MYSQL_PASSWORD = "mysql-pw-SECRET-4242"
BOT_TOKEN = "xoxb-1111-2222-BOTTOKENSECRET"
APP_TOKEN = "xapp-1-A111-APPTOKENSECRET"
SIGNING_SECRET = "signing-SECRET-0123456789abcdef"
SECRETS = (MYSQL_PASSWORD, BOT_TOKEN, APP_TOKEN, SIGNING_SECRET)

LABELS = "com.docker.compose.project=qcc_test,com.docker.compose.service={svc}"


def _ps_row(name: str, svc: str, state: str, status: str, ports: str = "") -> str:
    return json.dumps({"ID": name[-4:] + "0000", "Names": name, "Image": f"qcc_plus-{svc}", "State": state,
                       "Status": status, "Ports": ports, "Labels": LABELS.format(svc=svc),
                       "CreatedAt": "2025-12-10 06:13:50 +0000 UTC"})


def _inspect(proxy_state: str, exit_code: int) -> str:
    def one(name: str, svc: str, state: str, code: int) -> dict[str, object]:
        return {"Id": name + "0" * 20, "Name": "/" + name, "RestartCount": 0,
                "State": {"Status": state, "Running": state == "running", "Restarting": False,
                          "OOMKilled": False,
                          "Dead": False, "ExitCode": code, "Error": "",
                          "StartedAt": "2025-12-10T06:14:00.900000000Z",
                          "FinishedAt": "2025-12-10T06:14:01.800000000Z"},
                "Config": {"Env": [f"PROXY_MYSQL_DSN=qcc:{MYSQL_PASSWORD}@tcp(mysql:3306)/qcc_proxy"],
                           "Labels": {"com.docker.compose.project": "qcc_test",
                                      "com.docker.compose.service": svc}},
                "HostConfig": {"Memory": 0}}
    return json.dumps([one("qcc_test_proxy", "proxy", proxy_state, exit_code),
                       one("qcc_test_mysql", "mysql", "running", 0)])


LOG = "\n".join([
    "2025-12-10T06:14:01.100000000Z 2025/12/10 06:14:01 qcc_plus version: v1.9.4 (commit=1a2b3c4, "
    "build=2025-12-10)",
    "2025-12-10T06:14:01.150000000Z 2025/12/10 06:14:01 using health check mode: cli",
    "2025-12-10T06:14:01.200000000Z 2025/12/10 06:14:01 store: mysql pool configured (maxOpen=25)",
    f"2025-12-10T06:14:01.250000000Z 2025/12/10 06:14:01 debug dsn password={MYSQL_PASSWORD} leaked",
    "2025-12-10T06:14:01.300000000Z 2025/12/10 06:14:01 [migration] start config->settings migration",
    "2025-12-10T06:14:01.400000000Z 2025/12/10 06:14:01 [migration] config->settings migration finished",
    "2025-12-10T06:14:01.500000000Z 2025/12/10 06:14:01 using MySQL storage: ***@tcp(mysql:3306)/qcc_proxy",
    "2025-12-10T06:14:01.600000000Z 2025/12/10 06:14:01 Error 1054 (42S22): "
    "Unknown column 'health_check_model' in 'field list'",
])
GREP_MIGRATION = "\n".join(line for line in LOG.splitlines() if any(
    w in line.lower() for w in ("migration", "health_check_model", "error")))
COLUMNS = [{"name": n, "type": t, "nullable": "YES", "default_value": None} for n, t in (
    ("id", "bigint"), ("name", "varchar(128)"), ("base_url", "varchar(512)"), ("api_key", "varchar(512)"),
    ("health_check_method", "varchar(32)"))]
STATS = "\n".join(json.dumps(r) for r in (
    {"Name": "qcc_test_proxy", "CPUPerc": "0.00%", "MemUsage": "0B / 0B", "MemPerc": "0.00%"},
    {"Name": "qcc_test_mysql", "CPUPerc": "0.45%", "MemUsage": "412MiB / 1.9GiB", "MemPerc": "21.1%"}))
SS = ("State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
      'LISTEN 0      4096   0.0.0.0:3308       0.0.0.0:*     users:(("docker-proxy",pid=2211,fd=4))\n'
      'LISTEN 0      128    0.0.0.0:22         0.0.0.0:*     users:(("sshd",pid=501,fd=3))')
FREE = ("               total        used        free      shared  buff/cache   available\n"
        "Mem:            1987         700         800          10         487        1200\n"
        "Swap:              0           0           0")
DF = ("Filesystem     1024-blocks     Used Available Capacity Mounted on\n"
      "/dev/vda1         41152736 12000000  27000000      31% /")
PS = ("    PID    PPID   RSS %CPU ELAPSED COMMAND         COMMAND\n"
      "      1       0 11000  0.0  900000 systemd         /sbin/init\n"
      "    900       1 80000  0.3  900000 dockerd         /usr/bin/dockerd")
GIT_LOG = ("9f8e7d6c5b4a39281706f5e4d3c2b1a098765432\t1765347200\tfeat: health check model per node\n"
           "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d\t1765260800\tfix: proxy timeouts\n"
           "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567\t1765174400\tchore: deps")


class StatefulRunner(FakeCommandRunner):
    """A fake host whose proxy comes back up after a compose ``restart``/``up``."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.proxy_up = False
        self._refresh()

    def _refresh(self) -> None:
        state, status, code = (("running", "Up 2 seconds", 0) if self.proxy_up
                               else ("exited", "Exited (1) 2 minutes ago", 1))
        rows = "\n".join([_ps_row("qcc_test_proxy", "proxy", state, status,
                                  "0.0.0.0:8001->8001/tcp" if self.proxy_up else ""),
                          _ps_row("qcc_test_mysql", "mysql", "running", "Up 3 hours",
                                  "0.0.0.0:3308->3306/tcp")])
        exit1 = CommandResult(command="", exit_status=1)
        # bot.fixes.settle's probe after a restart: state, listening marker, /version, log tail.
        probe = ("running|2025-12-10T06:20:00.000000000Z|0\nlistening\n"
                 '{"version":"v1.9.4","git_commit":"1a2b3c4","build_date":"2025-12-10"}\n'
                 "2025/12/10 06:20:00 Claude Code proxy listening on :8001\n" if self.proxy_up
                 else f"{state}|2025-12-10T06:14:00.900000000Z|0\nsilent\n\n{LOG.splitlines()[-1]}\n")
        self.responses = {
            "com.docker.compose.oneoff=False": probe,
            "inspect $IDS": _inspect(state, code),
            'ps -a --no-trunc --filter "label': rows,
            "logs --tail": LOG,
            "migration|health_check_model": GREP_MIGRATION,
            "HealthScheduler": exit1,
            "panic|fatal": exit1,
            "stats --no-stream": STATS,
            "ss -ltnp": SS,
            '--filter "publish=': "",
            "free -m": FREE,
            "df -P": DF,
            "ps -eo pid,ppid": PS,
            "oom-kill": exit1,
            "/version": CommandResult(command="", exit_status=7),
            "log -3": GIT_LOG,
            "deploy-server": exit1,
            "compose -p qcc_test": "",
            "rm -f": "",
        }

    async def run(self, command: str, *, timeout_s: float,
                  max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES) -> CommandResult:
        lines = LOG.splitlines()
        if "mktemp" in command and "logs --timestamps" in command:  # the escalation's log dump
            self.commands_run.append(command)
            return CommandResult(command=command, exit_status=0,
                                 stdout=f"/tmp/qcc-escalate.t1 0 {len(lines)}\n")
        m = re.match(r"cat /tmp/qcc-escalate\.t1/part\.([a-z]{6}) ", command)  # one split(1) part
        if m:
            self.commands_run.append(command)
            first = part_index(m.group(1)) * CHUNK_LINES
            chunk = lines[first:first + CHUNK_LINES]
            return CommandResult(command=command, exit_status=0, stdout="".join(x + "\n" for x in chunk))
        result = await super().run(command, timeout_s=timeout_s, max_output_bytes=max_output_bytes)
        if "compose -p qcc_test" in command and (" restart " in command or " up " in command):
            self.proxy_up = True
            self._refresh()
        return result


def migration_failed(*, delay_s: float = 0.0) -> tuple[StatefulRunner, FakeSqlRunner]:
    """Fakes for the ``Error 1054`` scenario (see module doc)."""
    return StatefulRunner(delay_s=delay_s), FakeSqlRunner(columns=[dict(c) for c in COLUMNS])
