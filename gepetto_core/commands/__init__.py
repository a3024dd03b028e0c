"""The command layer shared by the CLI and Slack: parse a command line, authorize the caller,
call the services, and return view models (`gepetto_core.views`), never formatted text.

    execute("scales -g h200", caller, runtime) -> Table
"""

from gepetto_core.commands.execute import execute
from gepetto_core.commands.parser import ParsedCommand, parse
from gepetto_core.commands.registry import Caller, VerbSpec, cli_caller, spec_for

__all__ = ["Caller", "ParsedCommand", "VerbSpec", "cli_caller", "execute", "parse", "spec_for"]
