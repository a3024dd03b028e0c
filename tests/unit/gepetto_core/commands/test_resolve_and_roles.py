"""Name resolution (pure) and role checks (pure)."""

from __future__ import annotations

import pytest

from gepetto_core.commands.registry import Caller, allowed, authorize, caller_role, cli_caller
from gepetto_core.commands.resolve import (
    chute_label,
    instance_of,
    resolve_chute,
    resolve_deployment,
    resolve_server,
)
from gepetto_core.commands.verbs import SPECS, visible_specs
from gepetto_core.config import Role
from gepetto_core.errors import AmbiguousNameError, NotFoundError, PermissionDeniedError
from gepetto_core.models.inventory import Chute, Deployment, Server
from gepetto_core.models.validator import ValidatorInstance


def chute(chute_id: str, name: str) -> Chute:
    return Chute(
        chute_id=chute_id, validator="v", name=name, image="i", code="", filename="f",
        ref_str="r", version="1", gpu_count=1,
    )  # fmt: skip


def server(server_id: str, name: str) -> Server:
    return Server(server_id=server_id, validator="v", name=name, gpu_count=8, hourly_cost=1.0)


CHUTES = [
    chute("610528a4-f2db-55c8-a43f-b83f3f215d00", "chutes/Qwen/Qwen3-32B"),
    chute("71aa28a4-f2db-55c8-a43f-b83f3f215d00", "chutes/Qwen/Qwen3-8B"),
    chute("82bb28a4-f2db-55c8-a43f-b83f3f215d00", "chutes/openai/whisper-large-v3"),
]
SERVERS = [
    server("04b118aa-b1a7-41d0-a73e-374831c3023e", "chutes-miner-gpu-01"),
    server("15c118aa-b1a7-41d0-a73e-374831c3023e", "chutes-miner-gpu-010"),
    server("26d118aa-b1a7-41d0-a73e-374831c3023e", "h200-a"),
]


def test_by_id_short_id_exact_name_and_unique_prefix() -> None:
    assert resolve_chute(CHUTES, CHUTES[0].chute_id) is CHUTES[0]
    assert resolve_chute(CHUTES, CHUTES[0].chute_id.upper()) is CHUTES[0]
    assert resolve_chute(CHUTES, "610528a4") is CHUTES[0]
    assert resolve_chute(CHUTES, "chutes/qwen/qwen3-8b") is CHUTES[1]
    assert resolve_chute(CHUTES, "chutes/openai") is CHUTES[2]
    # an exact name wins over being the prefix of a longer one
    assert resolve_server(SERVERS, "chutes-miner-gpu-01") is SERVERS[0]
    assert resolve_server(SERVERS, "h200") is SERVERS[2]


def test_ambiguous_prefixes_list_the_candidates() -> None:
    with pytest.raises(AmbiguousNameError) as caught:
        resolve_chute(CHUTES, "chutes/Qwen")
    assert caught.value.close_matches == ["chutes/Qwen/Qwen3-32B", "chutes/Qwen/Qwen3-8B"]
    with pytest.raises(AmbiguousNameError):
        resolve_server(SERVERS, "chutes-miner-gpu-0")


def test_unknown_names_suggest_close_ones() -> None:
    with pytest.raises(NotFoundError) as caught:
        resolve_chute(CHUTES, "chutes/openai/whisper-large-v4")
    assert caught.value.close_matches[0] == "chutes/openai/whisper-large-v3"
    assert "did you mean" in str(caught.value)
    with pytest.raises(NotFoundError) as nothing:
        resolve_server(SERVERS, "zzz")
    assert nothing.value.close_matches == [] and str(nothing.value) == "unknown server 'zzz'"
    # ids shorter than a short id never match by prefix
    with pytest.raises(NotFoundError):
        resolve_server(SERVERS, "04b1")


def test_deployments_resolve_by_id_only() -> None:
    rows = [
        Deployment(
            deployment_id=f"abcdef0{i}-b1a7-41d0-a73e-374831c3023e",
            validator="v",
            chute_id="c",
            server_id="s",
            version="1",
        )
        for i in (1, 2)
    ]
    assert resolve_deployment(rows, "abcdef02") is rows[1]
    with pytest.raises(AmbiguousNameError):
        resolve_deployment(rows, "abcdef")
    with pytest.raises(NotFoundError):
        resolve_deployment(rows, "abc")  # too short for an id prefix, and no names


ROLES: dict[str, Role] = {"UV": "viewer", "UO": "operator", "UA": "admin", "GOPS": "operator"}


def test_roles_deny_by_default() -> None:
    stranger = Caller("UX", "slack")
    assert caller_role(stranger, ROLES) is None
    assert [s.key for s in visible_specs(stranger, ROLES)] == ["help"]
    with pytest.raises(PermissionDeniedError, match="has no role"):
        authorize(stranger, SPECS["nodes"], ROLES)


def test_viewers_read_operators_act_admins_do_everything() -> None:
    reads = [s for s in SPECS.values() if not s.mutation and s.role == "viewer"]
    mutations = [s for s in SPECS.values() if s.mutation]
    viewer, operator, admin = Caller("UV", "slack"), Caller("UO", "slack"), Caller("UA", "slack")
    assert all(allowed(viewer, s, ROLES) for s in reads)
    assert not any(allowed(viewer, s, ROLES) for s in mutations)
    assert not allowed(viewer, SPECS["audit"], ROLES)
    assert all(allowed(operator, s, ROLES) for s in mutations if s.role == "operator")
    assert not allowed(operator, SPECS["undeploy --all-on"], ROLES)
    assert all(allowed(admin, s, ROLES) for s in SPECS.values())


def test_groups_and_the_highest_role_win() -> None:
    assert caller_role(Caller("UX", "slack", groups=("GOPS",)), ROLES) == "operator"
    assert caller_role(Caller("UV", "slack", groups=("GOPS",)), ROLES) == "operator"
    assert caller_role(Caller("UA", "slack", groups=("GOPS",)), ROLES) == "admin"


def test_the_cli_user_is_a_local_admin() -> None:
    me = cli_caller("alice")
    assert me.source == "cli" and me.actor.startswith("cli:") and me.role == "admin"
    assert caller_role(me, {}) == "admin"


def test_a_deployments_instance_by_id_else_by_launch_config() -> None:
    row = Deployment(
        deployment_id="d1", validator="v", chute_id="c", server_id="s", version="1",
        instance_id="i2", config_id="cfg1",
    )  # fmt: skip
    by_config = ValidatorInstance(instance_id="i1", chute_id="c", config_id="cfg1")
    by_id = ValidatorInstance(instance_id="i2", chute_id="c")
    assert instance_of(row, [by_config, by_id]) is by_id  # the recorded id wins
    fresh = row.model_copy(update={"instance_id": None})
    assert instance_of(fresh, [by_id, by_config]) is by_config
    assert instance_of(fresh.model_copy(update={"config_id": None}), [by_id, by_config]) is None


def test_a_chute_is_named_by_its_name_else_its_id() -> None:
    assert chute_label(CHUTES[0], CHUTES[0].chute_id) == "chutes/Qwen/Qwen3-32B"
    assert chute_label(CHUTES[0].model_copy(update={"name": None}), "c-id") == "c-id"
    assert chute_label(None, "gone") == "gone"
