"""The command layer in-process, as Slack calls it: roles from settings, deny by default,
plans that change nothing, the two-person rule, and an audit row for every attempted mutation."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gepetto_core.commands import Caller, execute
from gepetto_core.errors import PermissionDeniedError
from gepetto_core.views import Message, PlanView, Table

from .conftest import CliWorld

ROLES = {"UVIEW": "viewer", "UOPS": "operator", "UADMIN": "admin", "SOPS": "operator"}


@pytest.fixture
def slack(cli: CliWorld) -> CliWorld:
    """The module's runtime with a role table, as the Slack app's settings would carry."""
    cli.rt.settings = cli.rt.settings.model_copy(update={"roles": ROLES})
    return cli


def caller(actor: str, *groups: str) -> Caller:
    return Caller(actor=actor, source="slack", groups=groups, channel="C1")


async def test_viewers_read_but_may_not_mutate(slack: CliWorld) -> None:
    rt = slack.rt
    table = await execute("nodes", caller("UVIEW"), rt)
    assert isinstance(table, Table) and len(table.rows) == len(slack.world.fleet)
    before = await slack.counts()
    with pytest.raises(PermissionDeniedError, match="needs the operator role; UVIEW has viewer"):
        await execute("lock h100-0", caller("UVIEW"), rt, confirmed=True)
    assert not any(s.locked for s in await rt.inventory.list_servers())
    [entry] = await rt.state.list_audit(limit=1)
    assert entry.actor == "UVIEW" and entry.source == "slack" and entry.verb == "lock"
    assert entry.allowed is False and (entry.result or "").startswith("denied")
    assert entry.arguments == {"server": "h100-0"}
    assert (await slack.counts())["audit"] == before["audit"] + 1


async def test_unknown_users_get_nothing_but_help(slack: CliWorld) -> None:
    with pytest.raises(PermissionDeniedError, match="has no role"):
        await execute("nodes", caller("USTRANGER"), slack.rt)
    helped = await execute("help", caller("USTRANGER"), slack.rt)
    assert isinstance(helped, Message)
    assert [d.split()[0] for d in helped.details] == ["help"]
    viewer_help = await execute("help", caller("UVIEW"), slack.rt)
    assert isinstance(viewer_help, Message)
    verbs = {d.split()[0] for d in viewer_help.details}
    assert "scales" in verbs and "deploy" not in verbs and "audit" not in verbs


async def test_a_group_grants_its_role(slack: CliWorld) -> None:
    plan = await execute("lock h100-0", caller("UNOBODY", "SOPS"), slack.rt)
    assert isinstance(plan, PlanView) and plan.facts["policy"] == "confirm"


async def test_a_plan_changes_nothing_and_apply_does(slack: CliWorld) -> None:
    rt = slack.rt
    before = await slack.counts()
    plan = await execute("lock h100-0", caller("UOPS"), rt)
    assert isinstance(plan, PlanView) and plan.title == "Lock h100-0"
    assert await slack.counts() == before
    done = await execute("lock h100-0", caller("UOPS"), rt, confirmed=True)
    assert isinstance(done, Message) and done.level == "success"
    assert [s.name for s in await rt.inventory.list_servers() if s.locked] == ["h100-0"]
    [entry] = await rt.state.list_audit(limit=1)
    assert entry.allowed and entry.result == "success: h100-0 is locked"
    await execute("unlock h100-0", caller("UOPS"), rt, confirmed=True)


async def test_undeploy_all_needs_an_admin_and_a_second_person(slack: CliWorld) -> None:
    rt = slack.rt
    with pytest.raises(PermissionDeniedError, match="needs the admin role"):
        await execute("undeploy --all-on h100-0", caller("UOPS"), rt)
    plan = await execute("undeploy --all-on h100-0", caller("UADMIN"), rt)
    assert isinstance(plan, PlanView) and plan.facts["policy"] == "approval"
    with pytest.raises(PermissionDeniedError, match="approval by a second person"):
        await execute("undeploy --all-on h100-0", caller("UADMIN"), rt, confirmed=True)
    with pytest.raises(PermissionDeniedError, match="someone other than the requester"):
        await execute(
            "undeploy --all-on h100-0", caller("UADMIN"), rt, confirmed=True, approved_by="UADMIN"
        )
    done = await execute(
        "undeploy --all-on h100-0", caller("UADMIN"), rt, confirmed=True, approved_by="UOPS"
    )
    assert isinstance(done, Message) and done.text == "nothing to undeploy"
    [entry] = await rt.state.list_audit(limit=1)
    assert entry.allowed and entry.approvals == ["UOPS"]


async def test_the_cli_caller_is_admin_and_acts_alone(slack: CliWorld) -> None:
    cli_admin = Caller(actor="cli:test", source="cli", role="admin")
    done = await execute("undeploy --all-on h100-0", cli_admin, slack.rt, confirmed=True)
    assert isinstance(done, Message)
    slack_admin_claim = replace(cli_admin, source="slack", role=None)
    with pytest.raises(PermissionDeniedError):
        await execute("undeploy --all-on h100-0", slack_admin_claim, slack.rt)
