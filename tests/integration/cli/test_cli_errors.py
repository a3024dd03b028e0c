"""Bad input and broken surroundings: each is one line on stderr, a non-zero exit code, nothing
on stdout, and no change anywhere (database, cluster, audit log)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from .conftest import CliRun, CliWorld


def one_line_error(run: CliRun, code: int, *fragments: str) -> str:
    assert run.code == code, (run.code, run.out, run.err)
    assert run.out == ""
    assert len(run.err_lines) == 1, run.err
    line = run.err_lines[0]
    assert line.startswith("gepetto: ") and "Traceback" not in run.err
    for fragment in fragments:
        assert fragment in line, line
    return line


async def ambiguous_chute_prefix(cli: CliWorld) -> str:
    """A name prefix shared by at least two chutes in the catalog."""
    names = [c.name or "" for c in await cli.rt.inventory.list_chutes()]
    prefixes = Counter(n[: n.rindex("-")] for n in names if "-" in n)
    prefix, count = prefixes.most_common(1)[0]
    assert count >= 2
    return prefix


async def test_bad_input_changes_nothing(cli: CliWorld) -> None:
    chute = cli.launchable_chute()
    node = cli.node_for(chute)
    before = await cli.counts()
    typo = chute["name"][:-1] + "X"
    shared = await ambiguous_chute_prefix(cli)
    cases: list[tuple[list[str], int, tuple[str, ...]]] = [
        (
            ["deploy", "-c", typo, "-s", node, "-y"],
            1,
            ("unknown chute", f"did you mean: {chute['name']}"),
        ),
        (["deploy", "-c", shared, "-s", node, "-y"], 1, ("is ambiguous; it matches:",)),
        (
            ["deploy", "-c", chute["chute_id"], "-s", node + "x", "-y"],
            1,
            ("unknown server", f"did you mean: {node}"),
        ),
        # "h" starts h100-0 and h200-3: two servers, so nothing is picked
        (["deploy", "-c", chute["chute_id"], "-s", "h", "-y"], 1, ("ambiguous",)),
        (["why", "no-such-chute-anywhere"], 1, ("unknown chute",)),
        (["scales", "-s", "nosuchnode"], 1, ("unknown server",)),
        (["chutes", "-g", "h1000"], 1, ("unknown GPU type", "h100")),
        (["lock", "nosuchnode", "-y"], 1, ("unknown server",)),
        (["insts", "-d", "nosuchnode"], 1, ("unknown server",)),
        (["undeploy", "-i", "not-a-uuid", "-y"], 2, ("malformed deployment id",)),
        (
            ["undeploy", "-i", "1234567g-0000-0000-0000-000000000000", "-y"],
            2,
            ("malformed deployment id",),
        ),
        (
            ["undeploy", "-i", "12345678-1234-1234-1234-123456789abc", "-y"],
            1,
            ("unknown deployment",),
        ),
    ]
    # Independent processes: run two at a time (the run is dominated by interpreter start-up).
    runs = await run_all(cli, [args for args, _, _ in cases])
    for (_, code, fragments), run in zip(cases, runs, strict=True):
        one_line_error(run, code, *fragments)
    assert await cli.counts() == before


async def run_all(
    cli: CliWorld, commands: list[list[str]], env: dict[str, str] | None = None
) -> list[CliRun]:
    gate = asyncio.Semaphore(2)

    async def one(args: list[str]) -> CliRun:
        async with gate:
            return await cli.run(*args, env=env)

    return list(await asyncio.gather(*(one(args) for args in commands)))


async def test_usage_errors_exit_2_before_connecting(cli: CliWorld) -> None:
    before = await cli.counts()
    # Settings that could not connect to anything: parsing comes first and does no I/O.
    unset = {"POSTGRESQL": "", "MINER_SEED": "", "VALIDATORS": "", "KUBECONFIG": "/nonexistent"}
    cases = [
        (["deploy", "-c", "x"], "the following arguments are required: -s/--server"),
        (["deploy", "-s", "x", "-y"], "-c/--chute"),
        (["undeploy", "-y"], "one of the arguments -i/--id --all-on is required"),
        (["scales", "--frobnicate"], "unrecognized arguments"),
        (["scale"], "did you mean: scales"),
        (["autoscaler", "pause", "soon"], "not a duration"),
        (["autoscaler", "resume", "30m"], "only goes with `pause`"),
        (["audit", "--limit", "0"], "limit must be"),
        (["chutes", "-g", "h 100"], "not a GPU type"),
    ]
    runs = await run_all(cli, [args for args, _ in cases], env=unset)
    for (_, fragment), run in zip(cases, runs, strict=True):
        one_line_error(run, 2, "usage error", fragment)
    assert await cli.counts() == before


@pytest.mark.parametrize("args", [["chutes"], ["scales"], ["why", "anything"]])
async def test_validator_down_is_one_line(cli: CliWorld, args: list[str]) -> None:
    before = await cli.counts()
    run = await cli.run(*args, env=cli.dead_validator_env())
    one_line_error(run, 1, "validator data unavailable")
    assert await cli.counts() == before


async def test_validator_down_refuses_a_recycle_removal_it_cannot_check(cli: CliWorld) -> None:
    before = await cli.counts()
    run = await cli.run("recycle", "--dry-run", env=cli.dead_validator_env())
    assert run.code == 0  # a dry run reports what it could not check
    assert "WARNING:" in run.out
    assert await cli.counts() == before


@pytest.mark.parametrize("args", [["nodes"], ["pods"], ["insts"]])
async def test_cluster_down_is_one_line(cli: CliWorld, args: list[str]) -> None:
    before = await cli.counts()
    run = await cli.run(*args, env=cli.dead_cluster_env())
    one_line_error(run, 1, "Cannot connect to host 127.0.0.1:9")
    assert await cli.counts() == before


async def test_deploy_with_the_cluster_down_rolls_back_and_is_audited(cli: CliWorld) -> None:
    chute = cli.launchable_chute()
    before = await cli.counts()
    run = await cli.run(
        "deploy", "-c", chute["chute_id"], "-s", cli.node_for(chute), "-y",
        env=cli.dead_cluster_env(),
    )  # fmt: skip
    assert run.code == 1 and "Traceback" not in run.err
    assert run.err_lines[-1].startswith("gepetto: error: ")
    assert "Cannot connect to host 127.0.0.1:9" in run.err_lines[-1]
    after = await cli.counts()
    assert after == {**before, "audit": before["audit"] + 1}
    [last] = await cli.rt.state.list_audit(limit=1)
    assert last.verb == "deploy" and last.allowed and (last.result or "").startswith("failed: ")


async def test_database_down_is_one_line(cli: CliWorld) -> None:
    run = await cli.run("nodes", env={"POSTGRESQL": "postgresql://postgres@127.0.0.1:9/none"})
    line = one_line_error(run, 1, "cannot connect to PostgreSQL")
    assert "127.0.0.1:9" not in line  # the DSN (it may hold a password) is never echoed


async def test_missing_settings_name_the_variable(cli: CliWorld) -> None:
    run = await cli.run("chutes", env={"MINER_SEED": ""})  # chutes reads the validator
    one_line_error(run, 1, "MINER_SEED")
