"""The streamed Slack upload of ``SlackOut.upload``: external upload in three calls, the bytes
read from disk in blocks (never ``files_upload_v2``, which reads the whole file into memory)."""

from __future__ import annotations

import hashlib
import os

import pytest
from slack_sdk.web.async_client import AsyncWebClient

import handlers.slackio as slackio
from handlers.blockkit import FileOut
from handlers.slackio import SlackOut
from tests.fakes.slack_api import FakeSlackAPI


@pytest.fixture
async def fake():
    api = await FakeSlackAPI().start()
    try:
        yield api
    finally:
        await api.stop()


async def test_uploaded_bytes_equal_the_archive(fake, tmp_path, monkeypatch):
    """A 3 MiB binary archive arrives byte for byte (same SHA-256 and length as announced), sent
    in blocks of UPLOAD_BLOCK bytes, and is shared into the thread with its title; a redacted
    inline file rides in the same completion. ``files_upload_v2`` is never used."""
    archive = tmp_path / "qcc-escalation-test.tar.gz"
    archive.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    expected = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(slackio, "UPLOAD_BLOCK", 64 * 1024)
    reads: list[int] = []
    real_open = type(archive).open

    def spy_open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        fh = real_open(self, *args, **kwargs)
        if self == archive:
            real_read = fh.read

            def read(n=-1):  # type: ignore[no-untyped-def]
                reads.append(n)
                return real_read(n)

            fh.read = read
        return fh

    monkeypatch.setattr(type(archive), "open", spy_open)
    client = AsyncWebClient(token="xoxb-test-not-a-token", base_url=fake.api_url)

    async def no_v2(**_: object) -> None:
        raise AssertionError("files_upload_v2 reads the whole file into memory")

    monkeypatch.setattr(client, "files_upload_v2", no_v2)
    out = SlackOut(client, secrets=["hunter2-secret"])
    await out.upload("CINC", "1700000000.000100", [
        FileOut(archive.name, path=archive, title="escalation"),
        FileOut("note.txt", content="password hunter2-secret here"),
    ])

    asked = fake.calls_to("files.getUploadURLExternal")
    assert [c.params["filename"] for c in asked] == [archive.name, "note.txt"]
    assert int(asked[0].params["length"]) == archive.stat().st_size
    file_ids = [f["id"] for f in fake.calls_to("files.completeUploadExternal")[-1].params["files"]]
    body = fake.uploads[file_ids[0]]
    assert len(body) == archive.stat().st_size
    assert hashlib.sha256(body).hexdigest() == expected
    assert reads and all(0 < n <= 64 * 1024 for n in reads), "the archive is read in bounded blocks"
    assert b"hunter2-secret" not in fake.uploads[file_ids[1]]
    complete = fake.calls_to("files.completeUploadExternal")[-1].params
    assert complete["channel_id"] == "CINC" and complete["thread_ts"] == "1700000000.000100"
    assert [f["title"] for f in complete["files"]] == ["escalation", "note.txt"]


async def test_upload_url_failure_is_a_slack_error(fake, tmp_path):
    """An upload URL answering non-200 becomes SlackError and nothing is shared."""
    from aiohttp import web

    from bot.errors import SlackError

    async def refuse(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, text="nope")

    fake._upload = refuse  # type: ignore[method-assign]
    # the route was bound at start(): restart the fake so it serves the refusing handler
    await fake.stop()
    await fake.start()
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"x" * 1000)
    out = SlackOut(AsyncWebClient(token="xoxb-test-not-a-token", base_url=fake.api_url), secrets=[])
    with pytest.raises(SlackError, match="HTTP 500"):
        await out.upload("CINC", None, [FileOut(archive.name, path=archive)])
    assert fake.calls_to("files.completeUploadExternal") == []
