"""The verb catalogue: a record is the whole definition of a verb, and a malformed record fails
at import instead of at the first command that reaches it."""

from __future__ import annotations

import pytest

from gepetto_core.commands.actions import ActionPlan
from gepetto_core.commands.arguments import YES, Arg, OneOf
from gepetto_core.commands.context import CommandContext
from gepetto_core.commands.verbs import (
    CATALOGUE,
    SPECS,
    VERBS,
    Mutation,
    Read,
    Variant,
    Verb,
    parse,
    verb_parser,
)
from gepetto_core.views import Message


async def _show(ctx: CommandContext) -> Message:
    return Message(text="shown")


async def _plan(ctx: CommandContext) -> ActionPlan:
    raise AssertionError("not run")


async def _apply(ctx: CommandContext, plan: ActionPlan) -> Message:
    raise AssertionError("not run")


READ = Read(_show)
CHANGE = Mutation(_plan, _apply)


def test_one_record_defines_parser_forms_role_and_policy() -> None:
    drain = Verb(
        "drain",
        "move everything off a server",
        arguments=(
            OneOf(Arg("-s", "--server"), Arg("--all", action="store_true"), required=True),
            YES,
        ),
        does=CHANGE,
        variants=(Variant("--all", Mutation(CHANGE.plan, CHANGE.apply, "admin", "approval")),),
    )
    assert [(f.key, f.role, f.policy, f.mutation) for f in drain.forms()] == [
        ("drain", "operator", "confirm", True),
        ("drain --all", "admin", "approval", True),
    ]
    parser = drain.build_parser()
    assert parser.format_usage().strip() == "usage: drain (-s SERVER | --all) [-y]"
    assert drain.form(None, vars(parser.parse_args(["--all"]))).key == "drain --all"
    assert drain.form(None, vars(parser.parse_args(["-s", "x"]))).key == "drain"


def test_sub_verbs_become_the_first_argument_and_their_own_forms() -> None:
    queue = Verb("queue", "q", subverbs={"show": READ, "flush": CHANGE}, default_subverb="show")
    assert {f.key: f.mutation for f in queue.forms()} == {"queue show": False, "queue flush": True}
    parser = queue.build_parser()
    assert parser.parse_args([]).sub == "show"
    assert queue.form("flush").does is CHANGE


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, "either `does` or `subverbs`"),
        ({"does": READ, "subverbs": {"a": READ}}, "either `does` or `subverbs`"),
        ({"subverbs": {"a": READ}, "default_subverb": "b"}, "default sub-verb 'b' unknown"),
        ({"does": READ, "variants": (Variant("--all", READ),)}, "not among its arguments"),
    ],
)
def test_malformed_records_fail_when_built(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Verb("bad", "bad", **fields)  # type: ignore[arg-type]


def test_lookups_are_derived_from_the_catalogue() -> None:
    assert list(VERBS) == [v.name for v in CATALOGUE]
    assert set(SPECS) == {f.key for v in CATALOGUE for f in v.forms()}
    assert SPECS["help"].role is None  # anyone may ask for help, even without a role
    assert parse("undeploy --all-on gpu-01").key == "undeploy --all-on"
    assert SPECS["undeploy --all-on"].policy == "approval"


def test_each_verb_parser_is_built_once() -> None:
    assert verb_parser("scales") is verb_parser("scales")
