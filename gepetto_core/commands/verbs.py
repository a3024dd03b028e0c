"""Every operator command, one record per verb, shared by the CLI and Slack.

Adding a verb means adding one `Verb` record to `CATALOGUE` below, and nothing else: its
arguments, its one-line summary, and for each of its forms the role it needs, how it is
confirmed and the handler that runs it. Parsing (`parse`), `help` (CLI and Slack), role checks
(on every command and every Slack click) and `execute` all read the records.

A verb runs one action (`does`), or one of several chosen by what was typed:
  - `subverbs`: the word after the verb (`backoff list|clear`, `autoscaler pause|...`);
  - `variants`: a flag that makes the verb another action with its own role and policy
    (`undeploy --all-on` needs an admin and, from Slack, a second person's approval).
Each such form has a key derived from the record (`deploy`, `backoff clear`, `undeploy
--all-on`): what the audit log records and what refusals name.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from gepetto_core.commands import actions, fleet_views, inventory_views, operator, scaling_views
from gepetto_core.commands.actions import ActionPlan
from gepetto_core.commands.arguments import (
    YES,
    Arg,
    Argument,
    ArgumentParser,
    OneOf,
    ParsedCommand,
    declared_flags,
    deployment_ref,
    gpu_type,
    limit,
    parse_duration,
    tokenize,
    usable_name,
)
from gepetto_core.commands.context import CommandContext
from gepetto_core.commands.registry import Caller, Policy, allowed
from gepetto_core.config import Role
from gepetto_core.errors import UsageError
from gepetto_core.views import Message, Result

Reader = Callable[[CommandContext], Awaitable[Result]]
Planner = Callable[[CommandContext], Awaitable[ActionPlan]]
Applier = Callable[[CommandContext, ActionPlan], Awaitable[Result]]
# A rule across options that argparse cannot state: (sub-verb, options) -> the problem, or None.
Check = Callable[[str | None, Mapping[str, Any]], str | None]


@dataclass(frozen=True)
class Read:
    """Shows something and changes nothing; never asks for confirmation."""

    run: Reader
    role: Role | None = "viewer"  # None: anyone, even without a role, from any channel
    policy: Literal["none"] = field(default="none", init=False)


@dataclass(frozen=True)
class Mutation:
    """`plan` says what will happen and changes nothing; `apply` does it once confirmed."""

    plan: Planner
    apply: Applier
    role: Role = "operator"
    policy: Literal["confirm", "approval"] = "confirm"


Action = Read | Mutation


@dataclass(frozen=True)
class Variant:
    """A flag that turns the verb into another action (`--all-on`, `--dry-run`)."""

    flag: str
    does: Action

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class VerbSpec:
    """One form of a verb, as role checks, confirmation and `execute` see it."""

    verb: str  # `undeploy`
    key: str  # `undeploy --all-on`
    does: Action

    @property
    def role(self) -> Role | None:
        return self.does.role

    @property
    def policy(self) -> Policy:
        return self.does.policy

    @property
    def mutation(self) -> bool:
        return isinstance(self.does, Mutation)


@dataclass(frozen=True)
class Verb:
    """One operator command: everything the CLI, Slack and `execute` need to know of it."""

    name: str
    summary: str  # one line, for `help`
    arguments: tuple[Argument, ...] = ()
    does: Action | None = None  # what the verb does without a sub-verb
    subverbs: Mapping[str, Action] = field(default_factory=dict)
    default_subverb: str | None = None  # `backoff` alone is `backoff list`
    variants: tuple[Variant, ...] = ()
    check: Check | None = None

    def __post_init__(self) -> None:
        if (self.does is None) == (not self.subverbs):
            raise ValueError(f"{self.name}: give either `does` or `subverbs`")
        if self.default_subverb is not None and self.default_subverb not in self.subverbs:
            raise ValueError(f"{self.name}: default sub-verb {self.default_subverb!r} unknown")
        undeclared = {v.flag for v in self.variants} - declared_flags(self.arguments)
        if undeclared:
            raise ValueError(f"{self.name}: variant flag(s) not among its arguments: {undeclared}")

    def _spec(self, qualifier: str | None, does: Action) -> VerbSpec:
        return VerbSpec(self.name, f"{self.name} {qualifier}" if qualifier else self.name, does)

    def forms(self) -> Iterator[VerbSpec]:
        for sub, does in self.subverbs.items():
            yield self._spec(sub, does)
        if self.does is not None:
            yield self._spec(None, self.does)
        for variant in self.variants:
            yield self._spec(variant.flag, variant.does)

    def form(self, sub: str | None = None, opts: Mapping[str, Any] | None = None) -> VerbSpec:
        """The form a command line chose: its sub-verb, else the first variant flag given
        (`opts` as parsed), else the verb itself."""
        if sub is not None:
            return self._spec(sub, self.subverbs[sub])
        for variant in self.variants:
            if opts and opts.get(variant.dest):
                return self._spec(variant.flag, variant.does)
        assert self.does is not None, "a verb with sub-verbs always parses one"
        return self._spec(None, self.does)

    def build_parser(self) -> ArgumentParser:
        parser = ArgumentParser(
            prog=self.name, description=self.summary, add_help=False, allow_abbrev=False
        )
        if self.default_subverb is not None:
            parser.add_argument(
                "sub", nargs="?", choices=tuple(self.subverbs), default=self.default_subverb
            )
        elif self.subverbs:
            parser.add_argument("sub", choices=tuple(self.subverbs))
        for argument in self.arguments:
            argument.add_to(parser)
        return parser


# --- rules across options ------------------------------------------------------------------


def _duration_only_with_pause(sub: str | None, opts: Mapping[str, Any]) -> str | None:
    if opts.get("duration") is not None and sub != "pause":
        return f"autoscaler {sub}: a duration only goes with `pause`"
    return None


def _list_takes_no_filter(sub: str | None, opts: Mapping[str, Any]) -> str | None:
    if sub == "list" and (opts.get("chute") or opts.get("server")):
        return "backoff list takes no -c/-s; use `backoff clear -c CHUTE`"
    return None


def _no_force_with_dry_run(sub: str | None, opts: Mapping[str, Any]) -> str | None:
    if opts.get("dry_run") and opts.get("force"):
        return "recycle: --force makes no sense with --dry-run"
    return None


# --- `help` lists this catalogue, so its handler lives here -------------------------------


async def _help(ctx: CommandContext) -> Message:
    topic = ctx.command.opts.get("topic")
    if topic and topic in VERBS:
        return Message(level="info", text=VERBS[topic].summary, details=[f"usage: {usage(topic)}"])
    shown = {s.verb for s in visible_specs(ctx.caller, ctx.rt.settings.roles)}
    details = [f"{v.name:<11} {v.summary}" for v in CATALOGUE if v.name in shown]
    text = "gepetto commands" + ("" if not topic else f" (no command {topic!r})")
    return Message(level="info", text=text, details=details)


# --- the catalogue -------------------------------------------------------------------------

PNG = Arg("--png", type=usable_name, metavar="FILE", help="CLI: write the image to FILE")

CATALOGUE: tuple[Verb, ...] = (
    Verb(
        "help",
        "list the commands you may run",
        arguments=(Arg("topic", nargs="?", type=usable_name),),
        does=Read(_help, role=None),
    ),
    Verb("nodes", "servers: GPUs, cost, disk, status, lock", does=Read(inventory_views.nodes_view)),
    Verb(
        "pods",
        "pods with node, phase, IP and start time",
        arguments=(
            Arg("-n", "--namespace", type=usable_name, help="only this namespace (default: all)"),
        ),
        does=Read(inventory_views.pods_view),
    ),
    Verb(
        "insts",
        "chute instances and their state",
        arguments=(
            Arg("-d", "--node", type=usable_name, help="only this node/server (name or id)"),
        ),
        does=Read(inventory_views.insts_view),
    ),
    Verb(
        "chutes",
        "deployable chutes ranked by expected gain",
        arguments=(
            Arg("-g", "--gpu", type=gpu_type, help="only chutes that support this GPU type"),
            Arg("--limit", type=limit, default=50),
        ),
        does=Read(scaling_views.chutes_view),
    ),
    Verb(
        "scales",
        "best chute x server combinations by value",
        arguments=(
            Arg("-g", "--gpu", type=gpu_type, help="only servers with this GPU type"),
            Arg("-s", "--server", type=usable_name, help="only this server (name or id)"),
            Arg("--limit", type=limit, default=30),
        ),
        does=Read(scaling_views.scales_view),
    ),
    Verb(
        "why",
        "why the autoscaler did or did not pick a chute",
        arguments=(Arg("chute", type=usable_name, help="chute id or name"),),
        does=Read(scaling_views.why_view),
    ),
    Verb(
        "recycle",
        "one sync + reconcile pass (--dry-run to preview)",
        arguments=(
            Arg("--dry-run", action="store_true", help="show what would be removed"),
            Arg("--force", action="store_true", help="lift the mass-removal guard"),
            YES,
        ),
        does=Mutation(actions.plan_recycle, actions.apply_recycle),
        variants=(Variant("--dry-run", Read(actions.preview_recycle)),),
        check=_no_force_with_dry_run,
    ),
    Verb(
        "deploy",
        "deploy a chute on a server",
        arguments=(
            Arg("-c", "--chute", type=usable_name, required=True, help="chute id or name"),
            Arg("-s", "--server", type=usable_name, required=True, help="server id or name"),
            Arg("--no-wait", action="store_true", help="return once the Job is created"),
            Arg("--timeout", type=parse_duration, default=timedelta(minutes=30)),
            YES,
        ),
        does=Mutation(actions.plan_deploy, actions.apply_deploy),
    ),
    Verb(
        "undeploy",
        "remove a deployment (or --all-on SERVER)",
        arguments=(
            OneOf(
                Arg("-i", "--id", type=deployment_ref, help="deployment id"),
                Arg("--all-on", type=usable_name, help="every deployment on this server"),
                required=True,
            ),
            YES,
        ),
        does=Mutation(actions.plan_undeploy, actions.apply_undeploy),
        variants=(
            Variant(
                "--all-on",
                Mutation(
                    actions.plan_undeploy, actions.apply_undeploy, role="admin", policy="approval"
                ),
            ),
        ),
    ),
    Verb(
        "backoff",
        "list or clear the failure back-off",
        arguments=(
            Arg("-c", "--chute", type=usable_name, help="clear only this chute's failures"),
            Arg("-s", "--server", type=usable_name, help="clear only this server's failures"),
            YES,
        ),
        subverbs={
            "list": Read(operator.backoff_list),
            "clear": Mutation(operator.plan_backoff_clear, operator.apply_backoff_clear),
        },
        default_subverb="list",
        check=_list_takes_no_filter,
    ),
    Verb(
        "autoscaler",
        "status | pause [30m] | resume | shadow",
        arguments=(
            Arg("duration", nargs="?", type=parse_duration, help="pause only: for how long"),
            YES,
        ),
        subverbs={
            "status": Read(operator.autoscaler_status),
            "pause": Mutation(operator.plan_autoscaler, operator.apply_autoscaler),
            "resume": Mutation(operator.plan_autoscaler, operator.apply_autoscaler),
            "shadow": Mutation(operator.plan_autoscaler, operator.apply_autoscaler),
        },
        check=_duration_only_with_pause,
    ),
    Verb(
        "lock",
        "keep deploys off a server",
        arguments=(Arg("server", type=usable_name, help="server id or name"), YES),
        does=Mutation(operator.plan_lock, operator.apply_lock),
    ),
    Verb(
        "unlock",
        "allow deploys on a server again",
        arguments=(Arg("server", type=usable_name, help="server id or name"), YES),
        does=Mutation(operator.plan_lock, operator.apply_lock),
    ),
    Verb(
        "audit",
        "who did what (--user, --since, --limit)",
        arguments=(
            Arg("--user", type=usable_name, help="only this actor"),
            Arg("--since", type=parse_duration, help="only this recent (e.g. 24h)"),
            Arg("--limit", type=limit, default=50),
        ),
        does=Read(operator.audit_view, role="operator"),
    ),
    Verb(
        "fleet",
        "map of every server's GPUs by state (--png FILE)",
        arguments=(PNG,),
        does=Read(fleet_views.fleet_view),
    ),
    Verb(
        "report",
        "earnings, cost, deploys, idle GPU-hours: 24h | 7d",
        arguments=(
            Arg("window", nargs="?", choices=("24h", "7d"), default="24h"),
            PNG,
        ),
        does=Read(fleet_views.report_view),
    ),
)

# --- lookups, all derived from the catalogue -----------------------------------------------

VERBS: Mapping[str, Verb] = {v.name: v for v in CATALOGUE}
SPECS: Mapping[str, VerbSpec] = {s.key: s for v in CATALOGUE for s in v.forms()}


@functools.cache
def verb_parser(verb: str) -> ArgumentParser:
    """Built once per verb: building one (argparse, gettext) was most of a Slack ack's CPU time.
    Parsing does not change a parser; nothing else may."""
    return VERBS[verb].build_parser()


def usage(verb: str) -> str:
    return verb_parser(verb).format_usage().strip().removeprefix("usage: ")


def parse(command: str | Sequence[str]) -> ParsedCommand:
    """Parse `scales -g h200 -s gpu-01` (a string or argv). No I/O; raises only UsageError."""
    tokens = tokenize(command)
    if not tokens:
        raise UsageError("no command given; try `help`")
    name = tokens[0].lower()
    verb = VERBS.get(name)
    if verb is None:
        close = difflib.get_close_matches(name, list(VERBS), n=3)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        raise UsageError(f"unknown command {tokens[0]!r}{hint}; try `help`")
    rest = tokens[1:]
    if "-h" in rest or "--help" in rest:
        return ParsedCommand("help", "help", opts={"topic": name}, argv=tuple(tokens))
    opts = dict(vars(verb_parser(name).parse_args(rest)))
    sub = opts.pop("sub", None)
    yes = bool(opts.pop("yes", False))
    problem = verb.check(sub, opts) if verb.check else None
    if problem:
        raise UsageError(problem)
    return ParsedCommand(name, verb.form(sub, opts).key, sub, opts, yes, tuple(tokens))


def spec_for(command: ParsedCommand) -> VerbSpec:
    return SPECS[command.key]


def visible_specs(caller: Caller, roles: Mapping[str, Role]) -> list[VerbSpec]:
    """The forms the caller may run (`help` lists only their verbs)."""
    return [s for s in SPECS.values() if allowed(caller, s, roles)]
