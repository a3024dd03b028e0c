"""The command layer shared by the CLI and Slack: parse a command line, authorize the caller,
call the services, and return view models (`gepetto_core.views`), never formatted text.
Every verb is one record in `verbs.py`.

    execute("scales -g h200", caller, runtime) -> Table
"""

from gepetto_core.commands.arguments import ParsedCommand
from gepetto_core.commands.execute import execute
from gepetto_core.commands.registry import Caller, cli_caller
from gepetto_core.commands.verbs import VERBS, Verb, VerbSpec, parse, spec_for

__all__ = [
    "VERBS",
    "Caller",
    "ParsedCommand",
    "Verb",
    "VerbSpec",
    "cli_caller",
    "execute",
    "parse",
    "spec_for",
]
