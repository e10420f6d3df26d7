"""curl stand-in: HTTP to the simulated host's loopback ports, answered from the state (no network).

Whoever holds the port (a running container publishing it, or a scenario listener) answers
from its ``http`` routes (``{"/version": {"status": 200, "body": "...", "content_type": ...}}``);
a holder slower than ``-m`` (``http_delay_s``) times out with exit 28; no holder gives exit 7
(connection refused); a holder without routes answers ``404 page not found``. Other hosts
fail with exit 7 without any traffic. Flags: ``-s -S -f -i -m/--max-time -o -w '%{http_code}'
-X -H -L --connect-timeout``.
"""

# ruff: noqa: UP017 - runs under the host's python3, which may predate datetime.UTC (3.11)
from __future__ import annotations

import time

import _host as host
from _sandbox import Exit, to_json, write_out
from _sandbox import now as clock

LOCAL = {"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0"}
VALUE_FLAGS = {
    "-m",
    "--max-time",
    "-o",
    "--output",
    "-w",
    "--write-out",
    "-X",
    "--request",
    "-H",
    "--header",
    "--connect-timeout",
    "-d",
    "--data",
    "-u",
    "--user",
    "-A",
    "--user-agent",
    "--retry",
}


def _ascii_json(obj: dict) -> str:
    """``json.dumps(obj, separators=(",", ":"))`` (ASCII output; json is imported only if needed)."""
    text = to_json(obj, separators=(",", ":"))
    if text.isascii():
        return text
    import json

    return json.dumps(obj, separators=(",", ":"))


def split_url(url: str) -> tuple[str, str, int | None, str]:
    """``(scheme, hostname, port, path)`` as ``urllib.parse.urlsplit`` gives them. A plain
    ``http(s)://host[:port][/path]`` is split here (urllib.parse imports re: ~10 ms of CPU);
    anything else goes to urlsplit. Raises ValueError for a port out of range, like urlsplit."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    name, colon, port = netloc.partition(":")
    plain = (
        sep
        and scheme in ("http", "https")
        and name
        and url.isascii()
        and url.isprintable()
        and not any(ch in url for ch in " []@?#%\\")
        and (port == "" or (port.isdigit() and int(port) <= 65535))
    )
    if plain:
        return scheme, name.lower(), int(port) if port else None, slash + path
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port, parts.path


def main(argv: list[str], directory: str, state: dict) -> int:
    """Fetch one URL."""
    flags: set[str] = set()
    values: dict[str, str] = {}
    urls: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in VALUE_FLAGS:
            values[a] = argv[i + 1] if i + 1 < len(argv) else ""
            i += 2
            continue
        if a.startswith("--") and "=" in a:
            k, _, v = a.partition("=")
            values[k] = v
        elif a.startswith("--"):
            flags.add(a)
        elif a.startswith("-") and len(a) > 1:
            if a[1] in "mowXHdu" and len(a) > 2:
                values["-" + a[1]] = a[2:]
            else:
                flags.update("-" + ch for ch in a[1:])
        else:
            urls.append(a)
        i += 1
    silent = "-s" in flags or "--silent" in flags
    show_err = "-S" in flags or "--show-error" in flags or not silent
    max_time = float(values.get("-m") or values.get("--max-time") or 0) or None
    if not urls:
        raise Exit(2, "curl: no URL specified!\ncurl: try 'curl --help' for more information\n")
    scheme, hostname, port_given, path = split_url(urls[0] if "://" in urls[0] else "http://" + urls[0])
    port = port_given or (443 if scheme == "https" else 80)

    def fail(code: int, message: str) -> Exit:
        return Exit(code, f"curl: ({code}) {message}\n" if show_err else "")

    if hostname not in LOCAL:
        raise fail(
            7,
            f"Failed to connect to {hostname} port {port} after 0 ms: Couldn't connect to server "
            "(the sandbox makes no network traffic)",
        )
    holder = host.port_holder(state, port, clock())
    if holder is None:
        raise fail(7, f"Failed to connect to {hostname} port {port} after 0 ms: Couldn't connect to server")
    delay = float(holder.get("http_delay_s") or 0)
    if max_time is not None and delay >= max_time:
        time.sleep(max_time)
        raise fail(28, f"Operation timed out after {int(max_time * 1000)} milliseconds with 0 bytes received")
    if delay:
        time.sleep(delay)
    routes = dict(holder.get("http") or {})
    owner = holder.get("owner") or {}
    if owner.get("version"):
        info = dict(owner["version"])
        if owner.get("image_commit"):
            info["git_commit"] = owner["image_commit"][:7]
        routes.setdefault(
            "/version",
            {
                "status": 200,
                "body": _ascii_json(info),
                "content_type": "application/json",
            },
        )
    route = routes.get(path or "/")
    if route is None:
        if not routes:
            raise fail(52, "Empty reply from server")
        route = {"status": 404, "body": "404 page not found\n", "content_type": "text/plain; charset=utf-8"}
    status = int(route.get("status", 200))
    body = str(route.get("body", ""))
    if ("-f" in flags or "--fail" in flags) and status >= 400:
        raise fail(22, f"The requested URL returned error: {status}")
    out = ""
    if "-i" in flags or "--include" in flags:
        out += (
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
            f"Content-Type: {route.get('content_type', 'application/json')}\r\n"
            f"Content-Length: {len(body.encode())}\r\n\r\n"
        )
    out += body
    target = values.get("-o") or values.get("--output")
    if target and target != "-":
        if target != "/dev/null":
            with open(target, "w", encoding="utf-8") as fh:
                fh.write(out)
        out = ""
    fmt = values.get("-w") or values.get("--write-out")
    if fmt:
        out += fmt.replace("%{http_code}", str(status)).replace("\\n", "\n")
    write_out(out)
    return 0

