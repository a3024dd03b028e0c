"""Command-line arguments, with no I/O (Slack acks before anything is fetched): the value types,
how a verb declares its options (`Arg`, `OneOf`), and what parsing yields (`ParsedCommand`).

argparse reports problems by printing and calling `sys.exit`; `ArgumentParser` here turns every
such exit into `UsageError`. Values that can be checked without I/O are checked here: durations,
limits, UUID shapes. Which verbs exist and what they take is `verbs.py`.
"""

from __future__ import annotations

import argparse
import re
import shlex
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NoReturn

from gepetto_core.errors import UsageError

MAX_DURATION = timedelta(days=30)
MAX_LIMIT = 1000
_DURATION_PART = re.compile(r"(\d{1,6})([dhms])")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
# Short ids as the tables show them (8 hex digits) or any longer piece of a UUID.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ID_PREFIX = re.compile(r"[0-9a-f]{8}(-?[0-9a-f]{1,4})*-?", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedCommand:
    verb: str
    # The form of the verb, what authorization and the audit log go by: `deploy`,
    # `undeploy --all-on`, `backoff list` (see `verbs.Verb`).
    key: str
    sub: str | None = None  # backoff list|clear, autoscaler pause|resume|shadow|status
    opts: Mapping[str, Any] = field(default_factory=dict)
    yes: bool = False  # -y: the caller asked to skip the confirmation prompt
    argv: tuple[str, ...] = ()


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        # argparse quotes the offending tokens as typed; a token holding a newline or another
        # control character would break the one-line error, so those are shown escaped.
        shown = _CONTROL.sub(lambda m: repr(m.group())[1:-1], message)
        raise UsageError(f"{self.prog}: {shown} ({self.format_usage().strip()})")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError((message or f"{self.prog}: invalid arguments").strip())

    def _print_message(self, message: str, file: Any = None) -> None:
        # Nothing reaches the terminal from here; callers render usage themselves.
        return None


# --- how a verb declares its arguments -----------------------------------------------------


@dataclass(frozen=True, init=False)
class Arg:
    """One `add_argument` call, kept as data: `Arg("-g", "--gpu", type=gpu_type, help=...)`."""

    flags: tuple[str, ...]
    options: Mapping[str, Any]

    def __init__(self, *flags: str, **options: Any) -> None:
        object.__setattr__(self, "flags", flags)
        object.__setattr__(self, "options", options)

    def add_to(self, parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup) -> None:
        parser.add_argument(*self.flags, **self.options)


@dataclass(frozen=True, init=False)
class OneOf:
    """Options that exclude each other (`undeploy -i ID | --all-on SERVER`)."""

    args: tuple[Arg, ...]
    required: bool

    def __init__(self, *args: Arg, required: bool = False) -> None:
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "required", required)

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_mutually_exclusive_group(required=self.required)
        for arg in self.args:
            arg.add_to(group)


Argument = Arg | OneOf
YES = Arg("-y", "--yes", action="store_true", help="do not ask for confirmation")


def declared_flags(arguments: Sequence[Argument]) -> set[str]:
    flags: set[str] = set()
    for argument in arguments:
        for arg in argument.args if isinstance(argument, OneOf) else (argument,):
            flags.update(arg.flags)
    return flags


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


def limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"limit must be 1..{MAX_LIMIT}, got {text!r}")
    return int(text)


def usable_name(text: str) -> str:
    value = text.strip()
    if not value or len(value) > 200 or any(not c.isprintable() for c in value):
        raise argparse.ArgumentTypeError(f"not a usable name: {text!r}")
    return value


def gpu_type(text: str) -> str:
    value = usable_name(text).lower()
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


def tokenize(command: str | Sequence[str]) -> list[str]:
    if isinstance(command, str):
        try:
            return shlex.split(command)
        except ValueError as e:  # unbalanced quotes, a trailing backslash
            raise UsageError(f"cannot read the command line: {e}") from None
    return [str(token) for token in command]
