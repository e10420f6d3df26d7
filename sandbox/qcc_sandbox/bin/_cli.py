"""Command-line helpers shared by the stand-ins: a cobra-like flag parser and Go-style output.

``parse(argv, spec, cmd)`` mimics the docker CLI (spf13/pflag): ``--flag=value``,
``--flag value``, ``-n5``, grouped short booleans (``-aq``), ``--`` ends flags. ``spec``
maps a key to ``(long, short, kind)`` with kind ``bool``, ``value`` or ``multi``. An
unknown flag raises :class:`Exit` 125 with docker's wording (``unknown flag: --x``).
"""

from __future__ import annotations

from _sandbox import Exit, to_json


def usage_error(cmd: str, message: str, code: int = 125) -> Exit:
    """Docker's usage failure: the message, ``See 'docker ps --help'.``, exit 125."""
    return Exit(code, f"{message}\nSee '{cmd} --help'.\n")


def parse(argv: list[str], spec: dict, cmd: str, *, interspersed: bool = True) -> tuple[dict, list[str]]:
    """Split ``argv`` into ``(options, positionals)``; see the module docstring."""
    longs = {long: key for key, (long, _short, _kind) in spec.items() if long}
    shorts = {short: key for key, (_long, short, _kind) in spec.items() if short}
    opts: dict = {
        key: ([] if kind == "multi" else (False if kind == "bool" else None))
        for key, (_l, _s, kind) in spec.items()
    }
    pos: list[str] = []

    def store(key: str, value: str) -> None:
        if spec[key][2] == "multi":
            opts[key].append(value)
        else:
            opts[key] = value

    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            pos.extend(argv[i + 1 :])
            break
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            key = longs.get(name)
            if key is None:
                raise usage_error(cmd, f"unknown flag: --{name}")
            if spec[key][2] == "bool":
                opts[key] = value.lower() not in ("false", "0") if eq else True
            else:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise usage_error(cmd, f"flag needs an argument: --{name}")
                    value = argv[i]
                store(key, value)
        elif arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                ch = arg[j]
                key = shorts.get(ch)
                if key is None:
                    raise usage_error(cmd, f"unknown shorthand flag: '{ch}' in {arg}")
                if spec[key][2] == "bool":
                    opts[key] = True
                    j += 1
                    continue
                rest = arg[j + 1 :]
                if rest.startswith("="):
                    rest = rest[1:]
                if not rest:
                    i += 1
                    if i >= len(argv):
                        raise usage_error(cmd, f"flag needs an argument: '{ch}' in {arg}")
                    rest = argv[i]
                store(key, rest)
                break
        else:
            pos.append(arg)
            if not interspersed:
                pos.extend(argv[i + 1 :])
                break
        i += 1
    return opts, pos


def go_json(obj, indent: int | None = None) -> str:
    """JSON as Go's ``encoding/json`` writes it: sorted keys, ``<``, ``>``, ``&`` escaped."""
    return to_json(
        obj, sort_keys=True, indent=indent, separators=(",", ":") if indent is None else (",", ": "), go=True
    )


_FIELD_PATTERN = r"\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}"


def _lookup(obj, path: str):
    value = obj
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _go_str(value) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_str(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_str(v) for v in value) + "]"
    return str(value)


def render_template(fmt: str, obj: dict) -> str:
    """A small Go-template subset: ``{{.Field}}``, ``{{.A.B}}``, ``{{json .}}``, ``{{json .A}}``.

    ``\\t`` and ``\\n`` written literally in the format become tab and newline (as docker does).
    """
    if fmt == "{{json .}}":  # what the bot asks for; skips importing re (~10 ms of start-up)
        return go_json(obj)
    import re

    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")

    def sub(m: re.Match) -> str:
        value = obj if m.group(2) == "" else _lookup(obj, m.group(2))
        if m.group(1):
            return go_json(value)
        return _go_str(value)

    return re.sub(_FIELD_PATTERN, sub, fmt)


def table(headers: list[str], rows: list[list[str]], pad: int = 3) -> str:
    """A tabwriter-style table (columns padded by ``pad`` spaces, last column unpadded)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for k, cell in enumerate(row):
            widths[k] = max(widths[k], len(cell))
    lines = []
    for row in [headers, *rows]:
        cells = [cell.ljust(widths[k] + pad) if k < len(row) - 1 else cell for k, cell in enumerate(row)]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def format_rows(fmt: str | None, rows: list[dict], headers: list[tuple[str, str]]) -> str:
    """Render rows with ``--format``: None/``table`` gives the default table from ``headers``
    (``(title, field)`` pairs); ``table TEMPLATE`` a custom table; anything else a line per row."""
    if not fmt or fmt == "table":
        return table([h for h, _ in headers], [[str(r.get(f, "")) for _, f in headers] for r in rows])
    if fmt.startswith("table "):
        tmpl = fmt[len("table ") :]
        cols = [c for c in tmpl.replace("\\t", "\t").split("\t")]
        import re

        titles = [re.sub(r"[{}.]|json", "", c).strip().upper() for c in cols]
        body = [[render_template(c, r) for c in cols] for r in rows]
        return table(titles, body)
    if fmt == "json":
        fmt = "{{json .}}"
    return "".join(render_template(fmt, r) + "\n" for r in rows)
