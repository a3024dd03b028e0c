"""The k8s/ manifests: schema-valid, consistent with each other and with Settings, and RBAC that
grants exactly the Kubernetes API calls the code makes — no more, no fewer."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_asyncio import client

from bot.settings import BotSettings, load_bot_settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "k8s"
SCANNED = [ROOT / "gepetto_core/adapters/kube.py", ROOT / "gepetto_core/adapters/kube_lease.py"]
KUBERNETES_VERSION = "1.32"  # the oldest minor we expect miners to run; schemas ship offline

Rule = tuple[str, str, str]  # (apiGroup, resource, verb)


def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return data


def objects() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name in kustomization()["resources"]:
        found.extend(d for d in yaml.safe_load_all((K8S / name).read_text()) if d)
    return found


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [o for o in objects() if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


# --------------------------------------------------------------------------- schema


def test_kustomization_lists_every_manifest_once() -> None:
    listed = kustomization()["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    assert len(set(listed)) == len(listed)


@pytest.mark.parametrize("obj", objects(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_each_object_is_valid_against_the_kubernetes_schema(obj: dict[str, Any]) -> None:
    # strict: unknown fields (typos such as `readinesProbe`) are errors too
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_a_misspelt_field_is_caught_by_the_validator() -> None:
    broken = yaml.safe_load((K8S / "deployment.yaml").read_text())
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
def test_kustomize_renders_valid_objects_in_the_chutes_namespace() -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    rendered = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    # + the generated ConfigMaps (the Grafana dashboard, #26)
    assert len(docs) == len(objects()) + len(kustomization().get("configMapGenerator", []))
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == "chutes"
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "chutes-miner"
    image = docs[[d["kind"] for d in docs].index("Deployment")]["spec"]["template"]["spec"]
    assert image["containers"][0]["image"] == "gepetto:0.1.0"


# --------------------------------------------------------------------------- the Deployment


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = one("Deployment", "gepetto")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    c: dict[str, Any] = only
    return c


def env_refs() -> dict[str, tuple[str, str] | str]:
    """Env name -> (secret, key) for secret refs, else its literal value or field path."""
    refs: dict[str, tuple[str, str] | str] = {}
    for var in container()["env"]:
        source = var.get("valueFrom", {})
        if "secretKeyRef" in source:
            refs[var["name"]] = (source["secretKeyRef"]["name"], source["secretKeyRef"]["key"])
        elif "fieldRef" in source:
            refs[var["name"]] = source["fieldRef"]["fieldPath"]
        else:
            refs[var["name"]] = var["value"]
    return refs


def test_two_replicas_under_leader_election_and_a_budget_that_keeps_one() -> None:
    deployment = one("Deployment", "gepetto")
    config = one("ConfigMap", "gepetto-config")["data"]
    assert deployment["spec"]["replicas"] == 2
    assert config["GEPETTO_LEADER_ELECTION"] == "true"
    assert env_refs()["GEPETTO_LEASE_IDENTITY"] == "metadata.name"
    pdb = one("PodDisruptionBudget")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_probes_point_at_the_ops_server() -> None:
    c = container()
    port = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert str(port["http"]) == one("ConfigMap")["data"]["GEPETTO_HTTP_PORT"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["args"] == ["serve"]


def test_security_context_is_locked_down() -> None:
    pod, c = pod_spec(), container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert {"requests", "limits"} <= c["resources"].keys()
    assert "memory" in c["resources"]["limits"]


def test_secrets_come_from_the_chutes_miner_charts_secrets_and_gepetto_slack() -> None:
    refs = env_refs()
    assert refs["MINER_SS58"] == ("miner-credentials", "ss58")
    assert refs["MINER_SEED"] == ("miner-credentials", "seed")
    assert refs["POSTGRES_PASSWORD"] == ("postgres-secret", "password")
    assert refs["GEPETTO_SLACK_BOT_TOKEN"][0] == "gepetto-slack"
    assert refs["GEPETTO_SLACK_APP_TOKEN"][0] == "gepetto-slack"
    # No secret value is written into a manifest.
    for obj in objects():
        assert obj["kind"] != "Secret"
    text = "\n".join(p.read_text() for p in K8S.glob("*.yaml"))
    assert not re.search(r"xox[abp]-[A-Za-z0-9]|0x[0-9a-fA-F]{64}", text)


def _accepted_env_names() -> set[str]:
    names = set()
    for field, info in BotSettings.model_fields.items():  # the pod runs the bot
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        names.update(map(str, choices) if choices else {f"GEPETTO_{field.upper()}"})
    return names


def test_every_configured_variable_is_a_setting_and_the_whole_config_loads() -> None:
    config = one("ConfigMap")["data"]
    helpers = {"POSTGRES_PASSWORD", "REDIS_PASSWORD"}  # only used inside $(...) expansions
    unknown = (set(config) | set(env_refs())) - _accepted_env_names() - helpers
    assert not unknown, f"not read by Settings: {sorted(unknown)}"

    # With stand-in secret values, the environment the pod gets is a valid configuration.
    environ = dict(config)
    stand_ins = {
        "MINER_SS58": "5FakeHotkey",
        "MINER_SEED": "0x" + "1" * 64,
        "GEPETTO_SLACK_BOT_TOKEN": "xoxb-stand-in",
        "GEPETTO_SLACK_APP_TOKEN": "xapp-stand-in",
        "GEPETTO_LEASE_IDENTITY": "gepetto-abc",
    }
    for name, ref in env_refs().items():
        if isinstance(ref, str) and name not in stand_ins:
            environ[name] = re.sub(r"\$\((\w+)\)", "pw", ref)
    environ.update(stand_ins)
    settings = load_bot_settings(environ)
    assert settings.leader_election is True
    assert settings.http_port == 8080
    assert settings.log_format == "json"
    assert settings.postgres_dsn() == "postgresql://chutes:pw@postgres:5432/chutes"
    assert settings.require_validators().supported[0].api == "https://api.chutes.ai"


def test_metrics_service_selects_the_pods_and_the_http_port() -> None:
    service = one("Service", "gepetto-metrics")
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"


def test_bindings_tie_the_roles_to_the_pods_service_account() -> None:
    account = one("ServiceAccount")["metadata"]["name"]
    assert pod_spec()["serviceAccountName"] == account
    for binding_kind, role_kind in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        binding = one(binding_kind)
        assert binding["roleRef"]["kind"] == role_kind
        assert binding["roleRef"]["name"] == one(role_kind)["metadata"]["name"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": "chutes"}
        ]


# --------------------------------------------------------------------------- RBAC vs code

API_GROUPS = {
    client.CoreV1Api: "",
    client.BatchV1Api: "batch",
    client.AppsV1Api: "apps",
    client.CoordinationV1Api: "coordination.k8s.io",
}
VERBS = {
    "list": "list",
    "read": "get",
    "create": "create",
    "replace": "update",
    "patch": "patch",
    "delete": "delete",
    "delete_collection": "deletecollection",
}
KINDS = {  # the snake_case kind in a method name -> the resource's plural
    "node": "nodes",
    "pod": "pods",
    "service": "services",
    "config_map": "configmaps",
    "job": "jobs",
    "deployment": "deployments",
    "lease": "leases",
    "namespace": "namespaces",
    "event": "events",
}
_METHOD = re.compile(
    r"^(?P<verb>delete_collection|list|read|create|replace|patch|delete)_"
    r"(?P<ns>namespaced_)?(?P<rest>[a-z_]+?)(?P<all>_for_all_namespaces)?$"
)


def _api_methods() -> dict[str, str]:
    """Every resource method of the API classes gepetto uses -> its API group."""
    methods: dict[str, str] = {}
    for api_class, group in API_GROUPS.items():
        for name in dir(api_class):
            if _METHOD.match(name) and not name.endswith("_with_http_info"):
                methods[name] = group
    return methods


def rule_for(method: str, group: str) -> tuple[bool, Rule]:
    """(cluster-wide?, (group, resource, verb)) for one kubernetes-asyncio method name."""
    m = _METHOD.match(method)
    assert m is not None, method
    rest = m["rest"]
    resource = None
    for kind in sorted(KINDS, key=len, reverse=True):
        if rest == kind:
            resource = KINDS[kind]
        elif rest.startswith(kind + "_"):  # a subresource: pod_log -> pods/log
            resource = f"{KINDS[kind]}/{rest[len(kind) + 1 :]}"
        if resource:
            break
    assert resource is not None, f"add the kind of {method} to KINDS"
    cluster_wide = m["ns"] is None
    return cluster_wide, (group, resource, VERBS[m["verb"]])


def calls_in(path: Path) -> Iterator[tuple[str, bool]]:
    """Kubernetes API methods referenced in a module, and whether each is used as a watch
    (passed to `Watch.stream`), which needs the `watch` verb besides `list`."""
    methods = _api_methods()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in methods:
            yield node.attr, False
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "stream"
            and node.args
            and isinstance(node.args[0], ast.Attribute)
            and node.args[0].attr in methods
        ):
            yield node.args[0].attr, True


def used_rules() -> tuple[set[Rule], set[Rule]]:
    """(namespaced rules, cluster-wide rules) the scanned code needs."""
    methods = _api_methods()
    namespaced: set[Rule] = set()
    cluster: set[Rule] = set()
    for path in SCANNED:
        for method, watched in calls_in(path):
            cluster_wide, rule = rule_for(method, methods[method])
            target = cluster if cluster_wide else namespaced
            target.add(rule)
            if watched:
                target.add((rule[0], rule[1], "watch"))
    return namespaced, cluster


def granted(kind: str) -> set[Rule]:
    rules: set[Rule] = set()
    for rule in one(kind)["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), "no wildcards"
                    rules.add((group, resource, verb))
    return rules


def test_the_scanner_finds_the_calls_it_should() -> None:
    namespaced, cluster = used_rules()
    # Spot checks, so a scanner that finds nothing cannot pass the equality tests below.
    assert ("batch", "jobs", "create") in namespaced
    assert ("", "pods", "watch") in namespaced
    assert ("coordination.k8s.io", "leases", "update") in namespaced
    assert ("", "nodes", "list") in cluster
    assert rule_for("read_namespaced_pod_log", "") == (False, ("", "pods/log", "get"))
    assert rule_for("list_pod_for_all_namespaces", "") == (True, ("", "pods", "list"))


def test_role_grants_exactly_the_namespaced_calls_of_the_code() -> None:
    needed, _ = used_rules()
    have = granted("Role")
    assert not needed - have, f"missing from k8s/role.yaml: {sorted(needed - have)}"
    assert not have - needed, f"granted but never called: {sorted(have - needed)}"


def test_cluster_role_grants_exactly_the_cluster_wide_calls_of_the_code() -> None:
    _, needed = used_rules()
    have = granted("ClusterRole")
    assert not needed - have, f"missing from k8s/clusterrole.yaml: {sorted(needed - have)}"
    assert not have - needed, f"granted but never called: {sorted(have - needed)}"


def test_named_lease_rule_matches_the_configured_lease() -> None:
    lease_name = one("ConfigMap")["data"]["GEPETTO_LEASE_NAME"]
    named = [r for r in one("Role")["rules"] if "resourceNames" in r]
    assert named and all(r["resourceNames"] == [lease_name] for r in named)
    assert all(r["resources"] == ["leases"] for r in named)
