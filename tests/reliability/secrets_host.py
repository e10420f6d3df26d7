"""Where secrets come from in the secrets test: a proxy that prints them, and a GitHub that has them.

* :func:`leaky_scenario` — ``migration_failed`` whose proxy prints its API key and admin password
  in its start-up log (as qcc_plus does on first start), and whose container environment holds
  the real MySQL password (in the DSN and in a plain ``DB_PASS``), so ``docker inspect`` shows it.
* :class:`FakeGitHub` — the two Actions endpoints the escalation uses; the run's log (a zip
  behind a redirect to *another origin*, as GitHub does) echoes the token and the password.
  It records the ``Authorization`` header of every request.
"""

from __future__ import annotations

import io
import zipfile

from aiohttp import web

from qcc_sandbox import scenario_from_dict
from qcc_sandbox.scenario import Scenario
from tests.reliability.secrets_guard import GITHUB_TOKEN, PROXY_ADMIN_PASSWORD, PROXY_API_KEY

REPO = "acme/qcc_plus"


def leaky_scenario(mysql_password: str) -> Scenario:
    """``migration_failed`` with secrets in the proxy's start-up log and container environment."""
    return scenario_from_dict({
        "name": "migration_failed_leaky",
        "snippets": {"proxy_boot": [{"gap_s": 0.21, "text": (
            "qcc_plus version: v1.9.4 (commit=0a8a22f, built=2025-12-10T05:58:12Z)\n"
            "using health check mode: cli\n"
            f"[proxy] default account API key: {PROXY_API_KEY}\n"
            f"[auth] created default admin account: username=admin password={PROXY_ADMIN_PASSWORD}\n"
            f"[store] dsn=qcc:{mysql_password}@tcp(mysql:3306)/qcc_proxy\n"
            "store: mysql pool configured (maxOpen=20, maxIdle=10, connMaxLifetime=30m0s)\n")}]},
        "services": {"proxy": {"env": {
            "PROXY_MYSQL_DSN": f"qcc:{mysql_password}@tcp(mysql:3306)/qcc_proxy?parseTime=true",
            "DB_PASS": mysql_password,
            "UPSTREAM_KEY": PROXY_API_KEY,
        }}},
    }, extends="migration_failed")


class FakeGitHub:
    """``GET /repos/{REPO}/actions/runs`` and ``…/runs/42/logs`` (302 to a download on another
    origin). ``auth`` lists ``(path, Authorization header)`` of every request, both servers."""

    def __init__(self, mysql_password: str) -> None:
        self.mysql_password = mysql_password
        self.auth: list[tuple[str, str]] = []
        self.api_url = ""
        self._runners: list[web.AppRunner] = []
        self._download_base = ""

    async def start(self) -> FakeGitHub:
        api = web.Application()
        api.add_routes([web.get(f"/repos/{REPO}/actions/runs", self._runs),
                        web.get(f"/repos/{REPO}/actions/runs/42/logs", self._logs)])
        blobs = web.Application()
        blobs.add_routes([web.get("/blob/42.zip", self._download)])
        api_port = await self._serve(api, "127.0.0.1")
        blob_port = await self._serve(blobs, "127.0.0.1")
        self.api_url = f"http://127.0.0.1:{api_port}"
        self._download_base = f"http://localhost:{blob_port}"  # another origin than the API's
        return self

    async def _serve(self, app: web.Application, host: str) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        self._runners.append(runner)
        return int(runner.addresses[0][1])

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    def _seen(self, request: web.Request) -> None:
        self.auth.append((request.path, request.headers.get("Authorization", "")))

    async def _runs(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.json_response({"workflow_runs": [{"id": 42, "name": "deploy-test", "conclusion": "failure",
                                                     "head_sha": "0a8a22f", "html_url": "https://gh/run/42"}]})

    async def _logs(self, request: web.Request) -> web.Response:
        self._seen(request)
        raise web.HTTPFound(f"{self._download_base}/blob/42.zip")

    async def _download(self, request: web.Request) -> web.Response:
        self._seen(request)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("deploy/1_Deploy.txt", (
                "Run scripts/deploy-server.sh test\n"
                f"  GITHUB_TOKEN: {GITHUB_TOKEN}\n"
                f"  MYSQL_PWD={self.mysql_password}\n"
                "health check failed after 60s\n"))
        return web.Response(body=buf.getvalue(), content_type="application/zip")
