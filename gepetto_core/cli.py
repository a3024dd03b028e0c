"""The `gepetto` command line.

The console script is `bot.main:main` (the composition root), which adds the long-running
process commands (`serve`, `demo`) to this one; the core itself knows nothing of Slack or the
sandboxes. Operator commands (`nodes`, `scales`, `deploy`, ...) go through the command layer
(`gepetto_core.commands`) and are rendered here: tables with tabulate, `--json` as the view
model, `--wide` for full ids. Actions print their plan and ask before applying (`-y` skips).
Errors are one line on stderr and a non-zero exit code (2 for usage); `--debug` shows the
traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gepetto_core.adapters.database import migrate
from gepetto_core.adapters.host import local_user
from gepetto_core.commands import VERBS, ParsedCommand, cli_caller, execute, parse, spec_for
from gepetto_core.config import Settings, load_settings
from gepetto_core.errors import ConfigError, GepettoError, UsageError
from gepetto_core.render_text import render_text
from gepetto_core.views import Composite, Message, PlanView, Progress, Result, dump_result
from gepetto_core.wiring import runtime

EXIT_ERROR = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class ProcessCommand:
    """A long-running command the composition root adds (`serve`, `demo`); it reads its own
    settings (the bot's include Slack's) and its own arguments (`options` shows them in -h)."""

    summary: str
    run: Callable[[Sequence[str]], int]
    options: str = ""


def _db_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gepetto db", description="database migrations")
    sub = parser.add_subparsers(dest="db_command", required=True)
    sub.add_parser("upgrade", help="apply pending migrations")
    sub.add_parser("status", help="list migrations and when they were applied")
    return parser


async def _db_command(settings: Settings, command: str) -> None:
    dsn = settings.postgres_dsn()
    if dsn is None:
        raise ConfigError("POSTGRESQL", "is not set (gepetto demo runs an embedded database)")
    applied, rows = await migrate(dsn, apply=command == "upgrade")
    if command == "upgrade":
        print(f"applied {len(applied)} migration(s)" + (f": {applied}" if applied else ""))
    for row in rows:
        when = row.applied_at.isoformat(timespec="seconds") if row.applied_at else "pending"
        print(f"{row.version:04d}  {row.name:<28} {when}")


# --- the operator commands (shared with Slack through gepetto_core.commands) ------------------

GLOBAL_FLAGS = {"--debug", "--json", "--wide"}
EXIT_CANCELLED = 1
EXIT_INTERNAL = 70
_PROGRESS_MARK = {"done": "✓", "running": "…", "failed": "✗", "pending": "·"}


@dataclass(frozen=True)
class Output:
    json: bool = False
    wide: bool = False
    debug: bool = False


def _emit(result: Result, out: Output) -> None:
    if out.json:
        print(json.dumps(dump_result(result), indent=2, default=str))
    else:
        print(render_text(result, wide=out.wide))


def _has_error(result: Result) -> bool:
    if isinstance(result, Message):
        return result.level == "error"
    if isinstance(result, Progress):
        return result.failed
    if isinstance(result, Composite):
        return any(_has_error(item) for item in result.items)
    return False


class _ProgressPrinter:
    """Deploy progress on stderr, one line per step as it completes (stdout stays the result)."""

    def __init__(self) -> None:
        self._shown = 0

    async def __call__(self, progress: Progress) -> None:
        states = progress.states()
        upto = progress.current + (1 if progress.failed else 0)
        for name, state in states[self._shown : upto]:
            line = f"  {_PROGRESS_MARK[state]} {name}"
            if progress.detail and (state == "failed" or states.index((name, state)) == upto - 1):
                line += f" — {progress.detail}"
            print(line, file=sys.stderr, flush=True)
        self._shown = max(self._shown, upto)


def _confirm(prompt: str) -> bool:
    print(prompt, end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        return False
    return answer.strip().lower() in ("y", "yes")


def write_png(result: Result, path: str) -> str:
    """`fleet --png FILE` / `report --png FILE` (#26): draw the result's image into FILE."""
    from gepetto_core.render_png import render_result_png  # matplotlib only when asked

    png = render_result_png(result)
    if png is None:
        raise UsageError("--png: this command has no image")
    try:
        with open(path, "wb") as f:
            f.write(png)
    except OSError as e:
        raise UsageError(f"--png: cannot write {path}: {e.strerror}") from None
    return f"wrote {path} ({len(png):,} bytes)"


async def _run_command(parsed: ParsedCommand, settings: Settings, out: Output) -> int:
    caller = cli_caller(local_user())
    spec = spec_for(parsed)
    async with runtime(settings) as rt:
        result = await execute(parsed, caller, rt)
        if not spec.mutation:
            _emit(result, out)
            if parsed.opts.get("png"):  # #26
                print(write_png(result, str(parsed.opts["png"])), file=sys.stderr)
            return EXIT_ERROR if _has_error(result) else 0
        assert isinstance(result, PlanView)
        if not result.steps:
            _emit(result.model_copy(update={"steps": ["nothing to do"]}), out)
            return 0
        _emit(result, out)
        if not parsed.yes and not await asyncio.to_thread(_confirm, "Proceed? [y/N] "):
            print("gepetto: cancelled; nothing changed", file=sys.stderr)
            return EXIT_CANCELLED
        outcome = await execute(parsed, caller, rt, confirmed=True, progress=_ProgressPrinter())
        _emit(outcome, out)
        return EXIT_ERROR if _has_error(outcome) else 0


def _top_help(processes: Mapping[str, ProcessCommand]) -> str:
    lines = ["usage: gepetto [--json] [--wide] [--debug] COMMAND [ARGS]", "", "commands:"]
    lines += [f"  {v.name:<11} {v.summary}" for v in VERBS.values() if v.name != "help"]
    lines += ["  db          database migrations (upgrade | status)"]
    lines += [f"  {name:<11} {command.summary}" for name, command in processes.items()]
    lines += ["", "`gepetto COMMAND -h` shows a command's options."]
    return "\n".join(lines)


def _configure_logging(debug: bool) -> None:
    # Without this, library warnings reach stderr through logging's last-resort handler and
    # an error stops being one line.
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.CRITICAL,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(
    argv: Sequence[str] | None = None, *, processes: Mapping[str, ProcessCommand] | None = None
) -> int:
    """Run one command line. `processes`: the long-running commands the composition root adds
    (`bot.main` adds `serve` and `demo`)."""
    processes = processes or {}
    tokens = list(sys.argv[1:] if argv is None else argv)
    flags = {t for t in tokens if t in GLOBAL_FLAGS}
    rest = [t for t in tokens if t not in GLOBAL_FLAGS]
    out = Output(json="--json" in flags, wide="--wide" in flags, debug="--debug" in flags)
    _configure_logging(out.debug)
    if not rest or rest[0] in ("-h", "--help"):
        print(_top_help(processes), file=sys.stdout if rest else sys.stderr)
        return 0 if rest else EXIT_USAGE
    try:
        if rest[0] == "db":
            args = _db_parser().parse_args(rest[1:])
            asyncio.run(_db_command(load_settings(), args.db_command))
            return 0
        if rest[0] in processes:
            if "-h" in rest[1:] or "--help" in rest[1:]:
                command = processes[rest[0]]
                usage = " ".join(filter(None, ["usage: gepetto", rest[0], command.options]))
                print(f"{usage}\n\n{command.summary}")
                return 0
            return processes[rest[0]].run(rest[1:])
        parsed = parse(rest)  # no I/O: a bad command line fails before anything connects
        if parsed.verb == "help" and parsed.opts.get("topic") is None:
            print(_top_help(processes))
            return 0
        return asyncio.run(_run_command(parsed, load_settings(), out))
    except UsageError as e:
        if out.debug:
            raise
        print(f"gepetto: usage error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except GepettoError as e:
        if out.debug:
            raise
        print(f"gepetto: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("gepetto: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one line, the traceback with --debug
        if out.debug:
            raise
        print(
            f"gepetto: internal error: {type(e).__name__}: {e} (run with --debug for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
