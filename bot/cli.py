"""``qcc-bot``: the diagnosis engine from a terminal, and the Slack bot's entry point.

Subcommands::

    qcc-bot diagnose [--env NAME] [--format text|json] [--save-bundle DIR]
    qcc-bot fix [--env NAME] [--fresh] [ACTION]
    qcc-bot analyze DIR [--format text|json]
    qcc-bot demo [--scenario NAME] [--format text|json] [--list-scenarios] [--fix]
    qcc-bot check-config [--env NAME]
    qcc-bot serve [--http] [--port N]

``--config PATH`` (or ``$QCC_CONFIG``, default ``./qcc.yaml``) names the YAML file.
``diagnose`` and ``fix`` record their runs in the state store (``state_url``) like Slack does,
as actor ``cli:<OS user>``. ``serve`` is the Slack front end, found through the
``qcc_chatops.frontends`` entry point (``bot/`` never imports the Slack layer).
Exit codes: 0 a report was produced (whatever it found) / the command succeeded;
2 bad input (configuration, unknown environment, bad bundle); 1 an internal error;
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from bot.errors import BadCommand, BotError, ConfigError, RunbookError, UserError

if TYPE_CHECKING:  # imported where used: `qcc-bot --version` / `--help` stay fast (docs/benchmarks.md)
    from bot.config import Settings
    from bot.models import Diagnosis

log = logging.getLogger("qcc_bot")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qcc-chatops")
    except PackageNotFoundError:
        return "unknown"


def _build_parser() -> argparse.ArgumentParser:
    # `demo` reads no configuration (the built-in sandbox): a `--config` given to it is refused
    # with the reason instead of silently ignored. (`analyze` accepts it, checked: scripts pass
    # the same options to every command.)
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    common = argparse.ArgumentParser(add_help=False, parents=[verbose])
    common.add_argument("--config", metavar="PATH", help="YAML config (default: $QCC_CONFIG or ./qcc.yaml)")

    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument("--format", choices=("text", "json"), default="text", help="report format")

    p = argparse.ArgumentParser(prog="qcc-bot",
                                description="Diagnose qcc_plus deploy crashes from its runbook.")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("diagnose", parents=[common, fmt], help="run the runbook live against an environment")
    d.add_argument("--env", metavar="NAME",
                   help="environment name from the config (default: the only one, else slack.default_environment)")
    d.add_argument("--save-bundle", metavar="DIR", help="also write the raw step outputs to DIR (replayable)")

    f = sub.add_parser("fix", parents=[common],
                       help="list, confirm (typed environment name) and run a fix without Slack")
    f.add_argument("--env", metavar="NAME",
                   help="environment name from the config (default: the only one, else slack.default_environment)")
    f.add_argument("--fresh", action="store_true",
                   help="diagnose now instead of using the latest recorded diagnosis")
    f.add_argument("action", nargs="?", metavar="ACTION",
                   help="fix to run: its id (e.g. add_column) or number; without it, list the fixes")

    a = sub.add_parser("analyze", parents=[common, fmt], help="re-analyze a saved bundle offline")
    a.add_argument("bundle", metavar="DIR", help="directory written by diagnose --save-bundle")

    m = sub.add_parser("demo", parents=[verbose, fmt],
                       help="diagnose a built-in sandbox host (no real server)")
    m.add_argument("--config", help=argparse.SUPPRESS)  # refused with a reason, see _demo
    m.add_argument("--scenario", default="migration_failed", help="sandbox scenario (see --list-scenarios)")
    m.add_argument("--list-scenarios", action="store_true", help="list the scenarios and exit")
    m.add_argument("--save-bundle", metavar="DIR", help="also write the raw step outputs to DIR")
    m.add_argument("--fix", action="store_true",
                   help="the whole loop: diagnose, propose, confirm (typed for you), fix, verify")

    c = sub.add_parser("check-config", parents=[common], help="validate the config and report every problem")
    c.add_argument("--env", metavar="NAME", help="check only this environment")

    s = sub.add_parser("serve", parents=[common], help="run the Slack bot (Socket Mode by default)")
    s.add_argument("--http", action="store_true", help="serve Slack's HTTP API on /slack/events instead")
    s.add_argument("--port", type=int, default=3000,
                   help="HTTP port: /slack/events (with --http), /healthz and /metrics; default 3000")
    s.add_argument("--host", default="0.0.0.0", help="HTTP bind address")
    return p


def _print_report(diagnosis: Diagnosis, fmt: str, out: TextIO) -> None:
    if fmt == "json":
        out.write(json.dumps(diagnosis.to_report_json(), indent=2, ensure_ascii=False) + "\n")
        return
    from rich.console import Console

    from bot.report.text import render_text

    width = None if out.isatty() else 120
    render_text(diagnosis, Console(file=out, highlight=False, soft_wrap=False, width=width))


def _pick_environment(settings, name: str | None) -> str:  # noqa: ANN001
    """``--env``, else the only configured environment, else ``slack.default_environment``."""
    if name:
        return name
    if len(settings.environments) == 1:
        return next(iter(settings.environments))
    if settings.slack.default_environment:
        return str(settings.slack.default_environment)
    known = ", ".join(sorted(settings.environments)) or "none"
    raise BadCommand(f"which environment? pass --env NAME (configured: {known})")


def _check_bundle_target(target: str | None) -> None:
    """Refuse a --save-bundle path before any work is done (absent, or an empty directory)."""
    if not target:
        return
    from pathlib import Path

    from bot.errors import BundleError

    p = Path(target)
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise BundleError(f"--save-bundle needs a new or empty directory: {p}")
    parent = p if p.exists() else p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    import os

    if not os.access(parent, os.W_OK):
        raise BundleError(f"--save-bundle: {parent} is not writable")


def _save_bundle_after_report(target: str | None, bundle, err: TextIO) -> int:  # noqa: ANN001
    """Save after the report is printed, so a failing save never loses the diagnosis."""
    if not target:
        return 0
    from bot.bundle import save_bundle

    try:
        err.write(f"bundle saved to {save_bundle(target, bundle)}\n")
    except UserError as exc:
        err.write(f"qcc-bot: {exc} (the report above is complete)\n")
        return 2
    return 0


def _usable_settings(args: argparse.Namespace) -> Settings:
    """Settings with ``args.env`` picked and checked before any connection."""
    from bot.config import check_environment_files, load_settings

    settings = load_settings(args.config)
    args.env = _pick_environment(settings, args.env)
    settings.environment(args.env)  # UnknownEnvironment before any connection
    problems = check_environment_files(settings, args.env)
    if problems:
        raise ConfigError(f"environment {args.env!r} cannot be used (run check-config)", problems)
    return settings


async def _diagnose(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from rich.console import Console

    from bot.app import lifespan
    from bot.cli_fix import cli_actor, diagnose_recorded

    settings = _usable_settings(args)
    _check_bundle_target(args.save_bundle)
    # Live progress only for a text report on a terminal: JSON and piped output stay clean.
    console = Console(file=out, highlight=False)
    async with lifespan(settings, with_state=True) as services:
        recorded = await diagnose_recorded(services, args.env, actor=cli_actor(), console=console,
                                           live=args.format == "text" and out.isatty())
    _print_report(recorded.diagnosis, args.format, out)
    return _save_bundle_after_report(args.save_bundle, recorded.bundle, err)


async def _fix(args: argparse.Namespace, out: TextIO, inp: TextIO) -> int:
    from rich.console import Console

    from bot.app import lifespan
    from bot.cli_fix import cli_actor, stdin_confirm, terminal_fix

    settings = _usable_settings(args)
    console = Console(file=out, highlight=False, soft_wrap=False, width=None if out.isatty() else 120)
    async with lifespan(settings, with_state=True) as services:
        return await terminal_fix(services, args.env, action=args.action, fresh=args.fresh, actor=cli_actor(),
                                  console=console, confirm=stdin_confirm(inp, console), live=out.isatty())


def _analyze(args: argparse.Namespace, out: TextIO) -> int:
    from bot.bundle import load_bundle
    from bot.diagnosis.engine import analyze

    if args.config is not None:  # not needed (the bundle holds its context), but a named file must exist
        from bot.config import load_settings

        load_settings(args.config)

    bundle = load_bundle(args.bundle)
    diagnosis = analyze(bundle.steps, bundle.context, started_at=bundle.started_at,
                        duration_s=bundle.duration_s)
    # The saved outputs were redacted at capture; keep the count the live report showed.
    diagnosis = diagnosis.model_copy(
        update={"redacted_lines": max(diagnosis.redacted_lines, bundle.redacted_lines)})
    _print_report(diagnosis, args.format, out)
    return 0


async def _demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.config is not None:
        raise UserError("demo runs on its built-in sandbox host and reads no configuration; "
                        f"to diagnose the environments of {args.config}: qcc-bot diagnose --config {args.config}")
    # The host simulator is a separate package (sandbox/, not in the wheel or the image).
    try:
        from qcc_sandbox.demo import list_scenarios, run_demo
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "qcc_sandbox":
            raise
        err.write("qcc-bot: demo needs the sandbox package: pip install -e ./sandbox (from a source checkout)\n")
        return 2

    if args.list_scenarios:
        scenarios = list_scenarios()
        if args.format == "json":
            out.write(json.dumps([{"name": n, "title": t} for n, t in scenarios], indent=2) + "\n")
        else:
            for name, description in scenarios:
                out.write(f"{name:36} {description}\n")
        return 0
    if not args.scenario.strip():
        raise BadCommand("--scenario needs a name (see --list-scenarios)")
    if args.fix:
        if args.format == "json":
            raise BadCommand("demo --fix shows the loop as text (prompts, fixes, audit rows); "
                             "--format json is for one report: qcc-bot demo --format json")
        if args.save_bundle:
            raise BadCommand("demo --fix runs several diagnoses; --save-bundle saves one: "
                             "qcc-bot demo --save-bundle DIR")
        from bot.cli_fix import demo_fix

        return await demo_fix(args.scenario, out=out, err=err)
    _check_bundle_target(args.save_bundle)
    run = await run_demo(args.scenario, log=err)
    _print_report(run.diagnosis, args.format, out)
    return _save_bundle_after_report(args.save_bundle, run.bundle, err)


def _check_config(args: argparse.Namespace, out: TextIO) -> int:
    from bot.config import check_environment_files, default_config_path, load_settings
    from bot.runbook.loader import load_runbook

    path = default_config_path(args.config)
    settings = load_settings(path)
    problems = check_environment_files(settings, args.env)
    try:
        load_runbook(settings.runbook)
    except RunbookError as exc:
        problems += [f"runbook: {p}" for p in exc.problems] or [f"runbook: {exc}"]
    if not settings.environments:
        problems.append("environments: no environment is configured (see qcc.example.yaml)")
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    names = ", ".join(sorted(settings.environments)) or "none"
    out.write(f"{path}: OK ({len(settings.environments)} environment(s): {names})\n")
    for name, env in sorted(settings.environments.items()):
        if not env.approval.approvers and not env.approval.approver_usergroup:
            out.write(f"  warning: environments.{name}.approval: no approvers and no approver_usergroup, "
                      "so every fix approval is refused\n")
    return 0


async def _serve(args: argparse.Namespace) -> int:
    from bot.config import load_settings

    settings = load_settings(args.config)
    from importlib.metadata import entry_points

    # The Slack layer registers itself (pyproject: [project.entry-points."qcc_chatops.frontends"]).
    found = list(entry_points(group="qcc_chatops.frontends", name="serve"))
    if not found:
        raise BotError("the Slack front end is not installed (pip install qcc-chatops, or -e . in a checkout)")
    serve = found[0].load()
    await serve(settings, http=args.http, port=args.port, host=args.host)
    return 0


def run(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None,
        inp: TextIO | None = None) -> int:
    """Run the CLI with ``argv``; returns the exit code (never raises for known errors).

    ``inp`` (default stdin) is where ``fix`` reads the typed confirmation."""
    out = out or sys.stdout
    err = err or sys.stderr
    inp = inp or sys.stdin
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=err,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import asyncio

    try:
        if args.command == "diagnose":
            return asyncio.run(_diagnose(args, out, err))
        if args.command == "fix":
            return asyncio.run(_fix(args, out, inp))
        if args.command == "analyze":
            return _analyze(args, out)
        if args.command == "demo":
            return asyncio.run(_demo(args, out, err))
        if args.command == "check-config":
            return _check_config(args, out)
        if args.command == "serve":
            return asyncio.run(_serve(args))
    except (ConfigError, RunbookError) as exc:
        err.write(f"qcc-bot: {exc}\n")
        for problem in exc.problems:
            err.write(f"  - {problem}\n")
        return 2
    except UserError as exc:
        err.write(f"qcc-bot: {exc}\n")
        return 2
    except BotError as exc:
        err.write(f"qcc-bot: {exc}\n")
        return 1
    except KeyboardInterrupt:
        err.write("qcc-bot: interrupted\n")
        return 130
    except Exception:
        ref = uuid.uuid4().hex[:8]
        log.exception("internal error (ref %s)", ref)
        err.write(f"qcc-bot: internal error (ref {ref}); rerun with -v for details\n")
        return 1
    return 2


def main() -> None:
    """Console-script entry point (``qcc-bot``).

    Loads ``./.env`` (if present) into the environment first, without overriding variables
    already set, so secrets can live there as the README says.
    """
    try:
        from dotenv import load_dotenv

        load_dotenv(".env", override=False)
        code = run()
    except KeyboardInterrupt:  # Ctrl-C outside the commands' own handling (start-up, teardown)
        sys.stderr.write("qcc-bot: interrupted\n")
        code = 130
    sys.stdout.flush()  # the report is out before the interpreter's teardown
    sys.exit(code)


if __name__ == "__main__":
    main()
