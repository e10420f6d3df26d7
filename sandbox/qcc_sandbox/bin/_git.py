"""git stand-in for the qcc_plus checkout: log, rev-parse, cat-file -e, show, status, checkout, reset, pull, fetch.

History comes from ``state["git"]`` (``workdir``, ``branch``, ``head``, ``commits``: newest
first, each ``{"sha", "ct", "subject", "author", "email"}``); ``checkout`` and ``reset --hard``
move ``head`` under the state lock (the history itself never changes). ``-C DIR`` must be
the checkout directory, as with the real tool (``fatal: cannot change to ...`` / ``not a git
repository``, exit 128). ``--format`` knows ``%H %h %ct %at %ci %s %an %ae %x09 %n %%``.
"""

# ruff: noqa: UP017 - runs under the host's python3, which may predate datetime.UTC (3.11)
from __future__ import annotations

import os
import time

from _sandbox import Exit, mutate, write_err, write_out

_FORMAT_TOKENS = ("x09", "ct", "at", "ci", "an", "ae", "H", "h", "s", "n", "%")


def fmt_commit(c: dict, fmt: str) -> str:
    """Expand a ``--format`` string for commit ``c``."""
    ci = time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(int(c["ct"])))
    table = {
        "H": c["sha"],
        "h": c["sha"][:7],
        "ct": str(int(c["ct"])),
        "at": str(int(c["ct"])),
        "ci": ci,
        "s": c["subject"],
        "an": c.get("author", "qcc-dev"),
        "ae": c.get("email", "dev@example.invalid"),
        "x09": "\t",
        "n": "\n",
        "%": "%",
    }
    # re.sub(r"%(x09|ct|...|%)", ...) without importing re: at each "%", the first token that
    # follows it is replaced; a "%" followed by none of them stays as it is.
    out = []
    i = 0
    while (j := fmt.find("%", i)) >= 0:
        out.append(fmt[i:j])
        token = next((t for t in _FORMAT_TOKENS if fmt.startswith(t, j + 1)), None)
        out.append("%" if token is None else table[token])
        i = j + 1 + (len(token) if token else 0)
    out.append(fmt[i:])
    return "".join(out)


def resolve(git: dict, rev: str) -> int | None:
    """Index of ``rev`` (HEAD, HEAD~N, HEAD^, branch, sha prefix) in ``commits``, or None."""
    commits = git.get("commits") or []
    head_i = next((i for i, c in enumerate(commits) if c["sha"] == git.get("head")), 0)
    if rev in ("HEAD", "@"):  # the common case, without importing re
        return head_i if head_i < len(commits) else None
    import re

    m = re.fullmatch(r"(HEAD|@|[A-Za-z0-9_./-]+?)((?:~\d*|\^)*)", rev)
    if not m:
        return None
    base, suffix = m.groups()
    if base in ("HEAD", "@"):
        idx = head_i
    elif base in (git.get("branch"), f"origin/{git.get('branch')}"):
        idx = 0
    else:
        hits = [i for i, c in enumerate(commits) if len(base) >= 4 and c["sha"].startswith(base)]
        if len(hits) != 1:
            return None
        idx = hits[0]
    for step in re.findall(r"~\d*|\^", suffix):
        idx += int(step[1:] or 1) if step.startswith("~") else 1
    return idx if idx < len(commits) else None


def main(argv: list[str], directory: str, state: dict) -> int:
    """Dispatch ``git [-C DIR] [-c k=v] [--no-pager] COMMAND ...``."""
    git = state.get("git") or {}
    cwd = os.getcwd()
    while argv and argv[0].startswith("-"):
        opt = argv.pop(0)
        if opt == "-C" and argv:
            target = argv.pop(0)
            target = target if os.path.isabs(target) else os.path.join(cwd, target)
            if not os.path.isdir(target):
                raise Exit(128, f"fatal: cannot change to '{target}': No such file or directory\n")
            cwd = target
        elif opt == "-c" and argv:
            argv.pop(0)
    workdir = git.get("workdir") or ""
    real = os.path.realpath(cwd)
    if not workdir or not (
        real == os.path.realpath(workdir) or real.startswith(os.path.realpath(workdir) + "/")
    ):
        raise Exit(128, "fatal: not a git repository (or any of the parent directories): .git\n")
    if not argv:
        raise Exit(1, "usage: git [-v | --version] [-h | --help] [-C <path>] <command> [<args>]\n")
    cmd, args = argv[0], argv[1:]
    commits = git.get("commits") or []
    if cmd == "log" or cmd == "show":
        count = None if cmd == "log" else 1
        fmt = None
        revs = []
        i = 0
        while i < len(args):
            a = args[i]
            if a.startswith("-") and a[1:].isdecimal():  # re.fullmatch(r"-\d+", a)
                count = int(a[1:])
            elif a in ("-n", "--max-count") and i + 1 < len(args):
                count = int(args[i + 1])
                i += 1
            elif a.startswith("--max-count="):
                count = int(a.split("=", 1)[1])
            elif a.startswith(("--format=", "--pretty=")):
                fmt = a.split("=", 1)[1]
                fmt = fmt[len("format:") :] if fmt.startswith(("format:", "tformat:")) else fmt
                fmt = fmt[1:] if fmt.startswith(":") else fmt
            elif a == "--oneline":
                fmt = "%h %s"
            elif a in ("-s", "--no-patch", "--no-decorate", "--no-color"):
                pass
            elif not a.startswith("-"):
                revs.append(a)
            i += 1
        start = resolve(git, revs[0] if revs else "HEAD")
        if start is None:
            raise Exit(
                128,
                f"fatal: ambiguous argument '{revs[0] if revs else 'HEAD'}': unknown revision or "
                "path not in the working tree.\n",
            )
        chosen = commits[start:] if count is None else commits[start : start + count]
        if fmt is None:
            fmt = "commit %H%nAuthor: %an <%ae>%nDate:   %ci%n%n    %s%n"
        write_out("".join(fmt_commit(c, fmt) + "\n" for c in chosen))
        return 0
    if cmd == "rev-parse":
        short = "--short" in args
        names = [a for a in args if not a.startswith("-")] or ["HEAD"]
        for name in names:
            idx = resolve(git, name)
            if idx is None:
                raise Exit(
                    128,
                    f"{name}\nfatal: ambiguous argument '{name}': unknown revision or path not in "
                    "the working tree.\n",
                )
            write_out((commits[idx]["sha"][:7] if short else commits[idx]["sha"]) + "\n")
        return 0
    if cmd == "cat-file":
        # `git cat-file -e <rev>[^{commit}]`: exit 0 when the object exists, 128 with git's message otherwise
        names = [a for a in args if not a.startswith("-")]
        if "-e" not in args or len(names) != 1:
            raise Exit(129, "usage: git cat-file -e <object>\n")
        rev = names[0].removesuffix("^{commit}")
        if resolve(git, rev) is None:
            raise Exit(128, f"fatal: Not a valid object name {names[0]}\n")
        return 0
    if cmd == "status":
        head = git.get("head", "")
        line = (
            f"HEAD detached at {head[:7]}"
            if git.get("detached")
            else f"On branch {git.get('branch', 'main')}"
        )
        write_out(f"{line}\nnothing to commit, working tree clean\n")
        return 0
    if cmd in ("pull", "fetch"):
        write_out("Already up to date.\n" if cmd == "pull" else "")
        return 0
    if cmd in ("checkout", "switch", "reset"):
        hard = "--hard" in args
        names = [a for a in args if not a.startswith("-")]
        if cmd == "reset" and not hard:
            raise Exit(1, "qcc-sandbox: only `git reset --hard REV` is simulated\n")
        target = names[0] if names else "HEAD"

        def move(st: dict) -> str:
            g = st.setdefault("git", {})
            idx = resolve(g, target)
            if idx is None:
                if cmd == "reset":
                    raise Exit(
                        128,
                        f"fatal: ambiguous argument '{target}': unknown revision or path not in the "
                        "working tree.\n",
                    )
                raise Exit(1, f"error: pathspec '{target}' did not match any file(s) known to git\n")
            c = g["commits"][idx]
            g["head"] = c["sha"]
            if cmd != "reset":
                g["detached"] = target != g.get("branch")
            return f"HEAD is now at {c['sha'][:7]} {c['subject']}\n"

        message = mutate(directory, move)
        if cmd == "reset":
            write_out(message)
        elif target == git.get("branch"):
            write_err(f"Switched to branch '{target}'\n")
        else:
            write_err(message)
        return 0
    raise Exit(1, f"git: '{cmd}' is not a git command. See 'git --help'.\n")

