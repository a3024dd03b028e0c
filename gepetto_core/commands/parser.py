"""Command lines -> `ParsedCommand`, with no I/O (Slack acks before anything is fetched).

One argparse parser per verb. argparse reports problems by printing and calling `sys.exit`;
`_Parser` turns every such exit into `UsageError`, the only exception `parse` raises.
Values that can be checked without I/O are checked here: durations, limits, UUID shapes.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import re
import shlex
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NoReturn

from gepetto_core.errors import UsageError

MAX_DURATION = timedelta(days=30)
MAX_LIMIT = 1000
_DURATION_PART = re.compile(r"(\d{1,6})([dhms])")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
# Short ids as the tables show them (8 hex digits) or any longer piece of a UUID.
_ID_PREFIX = re.compile(r"[0-9a-f]{8}(-?[0-9a-f]{1,4})*-?", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedCommand:
    verb: str
    sub: str | None = None  # backoff list|clear, autoscaler pause|resume|shadow|status
    opts: Mapping[str, Any] = field(default_factory=dict)
    yes: bool = False  # -y: the caller asked to skip the confirmation prompt
    argv: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The registry key: verb, sub-verb or the flag that changes what the verb does."""
        if self.verb == "recycle" and self.opts.get("dry_run"):
            return "recycle --dry-run"
        if self.verb == "undeploy" and self.opts.get("all_on"):
            return "undeploy --all-on"
        return f"{self.verb} {self.sub}" if self.sub else self.verb


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} ({self.format_usage().strip()})")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError((message or f"{self.prog}: invalid arguments").strip())

    def _print_message(self, message: str, file: Any = None) -> None:
        # Nothing reaches the terminal from here; callers render usage themselves.
        return None


# --- value types (argparse turns ValueError/ArgumentTypeError into a usage error) --------


def parse_duration(text: str) -> timedelta:
    """`45s`, `30m`, `2h`, `1d`, `1h30m`; a unit is required, at most 30 days."""
    value = text.strip().lower()
    pos, seconds = 0, 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            break
        seconds += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not value or pos != len(value):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30m, 2h, 1d)")
    duration = timedelta(seconds=seconds)
    if duration <= timedelta(0) or duration > MAX_DURATION:
        raise argparse.ArgumentTypeError(f"duration must be between 1s and 30d, got {text!r}")
    return duration


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"limit must be 1..{MAX_LIMIT}, got {text!r}")
    return int(text)


def _name(text: str) -> str:
    value = text.strip()
    if not value or len(value) > 200 or any(not c.isprintable() for c in value):
        raise argparse.ArgumentTypeError(f"not a usable name: {text!r}")
    return value


def _gpu(text: str) -> str:
    value = _name(text).lower()
    if not re.fullmatch(r"[a-z0-9_.\-]+", value):
        raise argparse.ArgumentTypeError(f"not a GPU type: {text!r}")
    return value


def deployment_ref(text: str) -> str:
    """A deployment id: a full UUID, or its first 8+ hex digits as the tables show them."""
    value = text.strip().lower()
    try:
        return str(uuid.UUID(value))
    except ValueError:
        pass
    if _ID_PREFIX.fullmatch(value) and len(value) < 36:
        return value
    raise argparse.ArgumentTypeError(
        f"malformed deployment id {text!r} (a UUID, or at least its first 8 hex digits)"
    )


# --- one parser per verb -----------------------------------------------------------------

_Builder = Callable[[_Parser], None]


def _yes(p: _Parser) -> None:
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def _nodes(p: _Parser) -> None:
    pass


def _pods(p: _Parser) -> None:
    p.add_argument("-n", "--namespace", type=_name, help="only this namespace (default: all)")


def _insts(p: _Parser) -> None:
    p.add_argument("-d", "--node", type=_name, help="only this node/server (name or id)")


def _chutes(p: _Parser) -> None:
    p.add_argument("-g", "--gpu", type=_gpu, help="only chutes that support this GPU type")
    p.add_argument("--limit", type=_limit, default=50)


def _scales(p: _Parser) -> None:
    p.add_argument("-g", "--gpu", type=_gpu, help="only servers with this GPU type")
    p.add_argument("-s", "--server", type=_name, help="only this server (name or id)")
    p.add_argument("--limit", type=_limit, default=30)


def _recycle(p: _Parser) -> None:
    p.add_argument("--dry-run", action="store_true", help="show what would be removed")
    p.add_argument("--force", action="store_true", help="lift the mass-removal guard")
    _yes(p)


def _deploy(p: _Parser) -> None:
    p.add_argument("-c", "--chute", type=_name, required=True, help="chute id or name")
    p.add_argument("-s", "--server", type=_name, required=True, help="server id or name")
    p.add_argument("--no-wait", action="store_true", help="return once the Job is created")
    p.add_argument("--timeout", type=parse_duration, default=timedelta(minutes=30))
    _yes(p)


def _undeploy(p: _Parser) -> None:
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("-i", "--id", type=deployment_ref, help="deployment id")
    target.add_argument("--all-on", type=_name, help="every deployment on this server")
    _yes(p)


def _backoff(p: _Parser) -> None:
    p.add_argument("sub", nargs="?", choices=("list", "clear"), default="list")
    p.add_argument("-c", "--chute", type=_name, help="clear only this chute's failures")
    p.add_argument("-s", "--server", type=_name, help="clear only this server's failures")
    _yes(p)


def _why(p: _Parser) -> None:
    p.add_argument("chute", type=_name, help="chute id or name")


def _autoscaler(p: _Parser) -> None:
    p.add_argument("sub", choices=("status", "pause", "resume", "shadow"))
    p.add_argument("duration", nargs="?", type=parse_duration, help="pause only: for how long")
    _yes(p)


def _server_arg(p: _Parser) -> None:
    p.add_argument("server", type=_name, help="server id or name")
    _yes(p)


def _audit(p: _Parser) -> None:
    p.add_argument("--user", type=_name, help="only this actor")
    p.add_argument("--since", type=parse_duration, help="only this recent (e.g. 24h)")
    p.add_argument("--limit", type=_limit, default=50)


def _help(p: _Parser) -> None:
    p.add_argument("topic", nargs="?", type=_name)


# --- #26: fleet map and report (the lead ports these two into the merged verb records) ---


def _png(p: _Parser) -> None:
    p.add_argument("--png", type=_name, metavar="FILE", help="CLI: write the image to FILE")


def _fleet(p: _Parser) -> None:
    _png(p)


def _report(p: _Parser) -> None:
    p.add_argument("window", nargs="?", choices=("24h", "7d"), default="24h")
    _png(p)


VERBS: dict[str, tuple[str, _Builder]] = {
    "help": ("list the commands you may run", _help),
    "nodes": ("servers: GPUs, cost, disk, status, lock", _nodes),
    "pods": ("pods with node, phase, IP and start time", _pods),
    "insts": ("chute instances and their state", _insts),
    "chutes": ("deployable chutes ranked by expected gain", _chutes),
    "scales": ("best chute x server combinations by value", _scales),
    "why": ("why the autoscaler did or did not pick a chute", _why),
    "recycle": ("one sync + reconcile pass (--dry-run to preview)", _recycle),
    "deploy": ("deploy a chute on a server", _deploy),
    "undeploy": ("remove a deployment (or --all-on SERVER)", _undeploy),
    "backoff": ("list or clear the failure back-off", _backoff),
    "autoscaler": ("status | pause [30m] | resume | shadow", _autoscaler),
    "lock": ("keep deploys off a server", _server_arg),
    "unlock": ("allow deploys on a server again", _server_arg),
    "audit": ("who did what (--user, --since, --limit)", _audit),
    "fleet": ("map of every server's GPUs by state (--png FILE)", _fleet),  # #26
    "report": ("earnings, cost, deploys, idle GPU-hours: 24h | 7d", _report),  # #26
}


@functools.cache
def verb_parser(verb: str) -> _Parser:
    """Built once per verb: building one (argparse, gettext) was most of a Slack ack's CPU time.
    Parsing does not change a parser; nothing else may."""
    summary, build = VERBS[verb]
    parser = _Parser(prog=verb, description=summary, add_help=False, allow_abbrev=False)
    build(parser)
    return parser


def usage(verb: str) -> str:
    return verb_parser(verb).format_usage().strip().removeprefix("usage: ")


def tokenize(command: str | Sequence[str]) -> list[str]:
    if isinstance(command, str):
        try:
            return shlex.split(command)
        except ValueError as e:  # unbalanced quotes, a trailing backslash
            raise UsageError(f"cannot read the command line: {e}") from None
    return [str(token) for token in command]


def parse(command: str | Sequence[str]) -> ParsedCommand:
    """Parse `scales -g h200 -s gpu-01` (a string or argv). Raises only UsageError."""
    tokens = tokenize(command)
    if not tokens:
        raise UsageError("no command given; try `help`")
    verb = tokens[0].lower()
    if verb not in VERBS:
        close = difflib.get_close_matches(verb, list(VERBS), n=3)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        raise UsageError(f"unknown command {tokens[0]!r}{hint}; try `help`")
    rest = tokens[1:]
    if "-h" in rest or "--help" in rest:
        return ParsedCommand("help", opts={"topic": verb}, argv=tuple(tokens))
    namespace = verb_parser(verb).parse_args(rest)
    opts = dict(vars(namespace))
    sub = opts.pop("sub", None)
    yes = bool(opts.pop("yes", False))
    if verb == "autoscaler" and opts.get("duration") is not None and sub != "pause":
        raise UsageError(f"autoscaler {sub}: a duration only goes with `pause`")
    if verb == "backoff" and sub == "list" and (opts.get("chute") or opts.get("server")):
        raise UsageError("backoff list takes no -c/-s; use `backoff clear -c CHUTE`")
    if verb == "recycle" and opts.get("dry_run") and opts.get("force"):
        raise UsageError("recycle: --force makes no sense with --dry-run")
    return ParsedCommand(verb, sub, opts, yes, tuple(tokens))
