"""The command parser: what it accepts, what it refuses, and that it never raises anything but
UsageError (argparse would otherwise print and call sys.exit)."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gepetto_core.commands.arguments import parse_duration
from gepetto_core.commands.verbs import SPECS, VERBS, parse, spec_for
from gepetto_core.errors import UsageError


def test_the_community_command_lines_parse() -> None:
    scales = parse("scales -g h200 -s gpu-01")
    assert (scales.verb, scales.opts["gpu"], scales.opts["server"]) == ("scales", "h200", "gpu-01")
    deploy = parse(
        "deploy -c 610528a4-f2db-55c8-a43f-b83f3f215d00 -s 04b118aa-b1a7-41d0-a73e-374831c3023e"
    )
    assert deploy.opts["chute"] == "610528a4-f2db-55c8-a43f-b83f3f215d00" and not deploy.yes
    assert parse("insts -d chutes-miner-gpu-01").opts["node"] == "chutes-miner-gpu-01"
    assert parse("pods -n chutes").opts["namespace"] == "chutes"
    assert parse("chutes -g H200").opts["gpu"] == "h200"
    assert parse(["undeploy", "-i", "04B118AA-B1A7-41D0-A73E-374831C3023E", "-y"]).opts["id"] == (
        "04b118aa-b1a7-41d0-a73e-374831c3023e"
    )
    assert parse("undeploy -i 04b118aa").opts["id"] == "04b118aa"  # the short id of the tables
    assert parse("recycle --dry-run").key == "recycle --dry-run"
    assert parse("recycle -y").key == "recycle"
    assert parse("undeploy --all-on gpu-01 -y").key == "undeploy --all-on"


def test_sub_verbs_and_their_keys() -> None:
    assert parse("backoff").key == "backoff list"
    assert parse("backoff clear -c flux -y").key == "backoff clear"
    pause = parse("autoscaler pause 1h30m")
    assert pause.key == "autoscaler pause" and pause.opts["duration"] == timedelta(minutes=90)
    assert parse("autoscaler status").key == "autoscaler status"
    assert parse("lock gpu-01 -y").opts["server"] == "gpu-01"
    assert parse("why 'my chute'").opts["chute"] == "my chute"
    assert parse("deploy -h").verb == "help"


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("", "no command"),
        ("sclaes", "did you mean: scales"),
        ("deploy -c x", "-s/--server"),
        ("undeploy", "-i/--id --all-on"),
        ("undeploy -i 12345678 --all-on x", "not allowed with"),
        ("undeploy -i zz-not-a-uuid", "malformed deployment id"),
        ("undeploy -i 1234567", "malformed deployment id"),
        ("autoscaler pause 0m", "between 1s and 30d"),
        ("autoscaler pause 31d", "between 1s and 30d"),
        ("autoscaler pause 5", "not a duration"),
        ("autoscaler shadow 5m", "only goes with `pause`"),
        ("autoscaler", "required"),
        ("backoff list -c x", "backoff list takes no"),
        ("recycle --dry-run --force", "makes no sense"),
        ("chutes --limit 0", "limit must be"),
        ("chutes --lim 5", "unrecognized arguments"),  # no abbreviations
        ("why 'unbalanced", "cannot read the command line"),
        ("nodes extra", "unrecognized arguments"),
    ],
)
def test_refusals_are_usage_errors(line: str, fragment: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(line)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_durations() -> None:
    assert parse_duration("45s") == timedelta(seconds=45)
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("1d2h3m4s") == timedelta(days=1, hours=2, minutes=3, seconds=4)


def test_every_verb_and_variant_has_a_policy() -> None:
    lines = [
        "help",
        "nodes",
        "pods",
        "insts",
        "chutes",
        "scales",
        "why x",
        "recycle",
        "recycle --dry-run",
        "deploy -c a -s b",
        "undeploy -i 12345678",
        "undeploy --all-on b",
        "backoff",
        "backoff clear",
        "autoscaler status",
        "autoscaler pause",
        "autoscaler resume",
        "autoscaler shadow",
        "lock b",
        "unlock b",
        "audit",
        "fleet",
        "report 7d",
    ]
    keys = {spec_for(parse(line)).key for line in lines}
    assert keys == set(SPECS)
    assert {k.split()[0] for k in keys} == set(VERBS)
    assert {k for k, s in SPECS.items() if s.mutation} == {
        "recycle", "deploy", "undeploy", "undeploy --all-on", "backoff clear",
        "autoscaler pause", "autoscaler resume", "autoscaler shadow", "lock", "unlock",
    }  # fmt: skip
    assert all(s.policy != "none" for s in SPECS.values() if s.mutation)
    assert all(s.role != "viewer" for s in SPECS.values() if s.mutation)


_FLAGS = [
    "-c",
    "-s",
    "-g",
    "-d",
    "-n",
    "-i",
    "-y",
    "-h",
    "--all-on",
    "--dry-run",
    "--force",
    "--limit",
    "--since",
    "--user",
    "--timeout",
    "--no-wait",
    "--",
    "-",
    "--yes=1",
]
_token = st.one_of(
    st.sampled_from(_FLAGS + list(VERBS) + ["pause", "clear", "list", "30m", "0", "1d", "x"]),
    st.text(max_size=12),
    st.text(alphabet="-=abc01 '\"\\", max_size=8),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_token, max_size=7), st.booleans())
def test_random_argument_lists_raise_only_usage_errors(tokens: list[str], as_text: bool) -> None:
    command: str | list[str] = " ".join(tokens) if as_text else tokens
    try:
        parsed = parse(command)
    except UsageError as e:
        assert str(e)
        return
    # Whatever parsed has a registry entry (so it can be authorized).
    assert spec_for(parsed).key in SPECS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(VERBS)), st.lists(st.text(max_size=20), max_size=6))
def test_random_arguments_after_a_real_verb(verb: str, rest: list[str]) -> None:
    with contextlib.suppress(UsageError):
        parse([verb, *rest])


@pytest.mark.parametrize("text", ['insts " \n "', 'nodes "\t"', 'pods -n x "a\x00b"'])
def test_a_token_with_a_control_character_still_gets_a_one_line_error(text: str) -> None:
    """argparse quotes unrecognised tokens as typed; the error stays one line (found by the
    chaos suite's random command strings: a quoted newline broke the message in two)."""
    with pytest.raises(UsageError) as caught:
        parse(text)
    message = str(caught.value)
    assert "\n" not in message and "\x00" not in message
    assert "unrecognized arguments" in message
