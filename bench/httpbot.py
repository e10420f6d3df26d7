"""The Slack bot served over HTTP in a process of its own, for the HTTP benchmark.

``python bench/httpbot.py API_URL STATE_DIR [PROFILE_OUT]``: the product's ``running_bot`` +
``start_http`` (production progress interval) over in-memory transports showing the
``migration_failed`` host (tests/slack/scenario.py; every command answers after
``HOST_DELAY_S``), talking to the fake Slack at ``API_URL``. Prints the HTTP port, then reads
commands on stdin: ``idle`` (answers ``idle`` once every background task finished), ``cpu``
(answers the process's CPU seconds) and ``stop``. With ``PROFILE_OUT`` the whole serving time
is profiled with pyinstrument and written there as text.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.transports.base import EnvironmentTransports  # noqa: E402
from bot.transports.fake import FakeTransportProvider  # noqa: E402
from handlers.server import running_bot, start_http  # noqa: E402
from tests.slack.conftest import make_settings  # noqa: E402
from tests.slack.scenario import MYSQL_PASSWORD, migration_failed  # noqa: E402

HOST_DELAY_S = 0.5  # every remote command answers after this long, as on the busy host of the SSH figures


async def serve(api_url: str, state_dir: str) -> None:
    os.environ["QCC_TEST_MYSQL_PASSWORD"] = MYSQL_PASSWORD
    settings = make_settings(api_url)
    envs = {}
    for name in ("test", "prod"):
        shell, sql = migration_failed()
        shell.delay_s = HOST_DELAY_S
        envs[name] = EnvironmentTransports(name, shell, sql)
    transports = FakeTransportProvider(envs)
    async with running_bot(settings, http=True, transports=transports,
                           state_url=f"sqlite+aiosqlite:///{state_dir}/state.db") as bot:
        runner, port = await start_http(bot.app, "127.0.0.1", 0)
        print(port, flush=True)
        loop = asyncio.get_running_loop()
        try:
            while True:
                line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
                if line == "idle":
                    await bot.rt.tasks.wait_idle(120)
                    print("idle", flush=True)
                elif line == "cpu":
                    print(f"{time.process_time():.6f}", flush=True)
                elif line in ("stop", ""):
                    break
        finally:
            await runner.cleanup()


def main() -> None:
    api_url, state_dir = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="disabled", interval=0.001)
        with profiler:
            asyncio.run(serve(api_url, state_dir))
        Path(sys.argv[3]).write_text(profiler.output_text(unicode=False, color=False))
    else:
        asyncio.run(serve(api_url, state_dir))


if __name__ == "__main__":
    main()
