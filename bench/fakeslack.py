"""The fake Slack Web API (``tests/fakes/slack_api.py``) in a process of its own, for the
escalation benchmark: uploads are streamed to ``<dir>/<file_id>`` instead of kept in memory,
so neither side's memory hides the other's. Prints its ``api_url`` on stdout, then serves
until terminated. Usage: ``python bench/fakeslack.py DIR``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web  # noqa: E402

from tests.fakes.slack_api import FakeSlackAPI  # noqa: E402


class DiskFakeSlack(FakeSlackAPI):
    """:class:`FakeSlackAPI` whose upload URL streams the body to a file (size recorded)."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        size = 0
        with (self.directory / file_id).open("wb") as fh:
            async for block in request.content.iter_chunked(256 * 1024):
                fh.write(block)
                size += len(block)
        self._record("upload", {"file_id": file_id, "size": size}, b"", 200)
        return web.Response(text=f"OK - {size}")


async def main(directory: Path) -> None:
    fake = await DiskFakeSlack(directory).start()
    print(fake.api_url, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await fake.stop()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
