"""Static checks of the Dockerfile, .dockerignore and requirements.lock.

There is no Docker daemon on the development machines, so the image is not built here; these
tests lint its structure instead, and check that the lock is exactly the runtime closure of the
venv the tests run in."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from gepetto_core.config import Settings

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
REGENERATE = "regenerate it as tests/unit/packaging/lockfile_tool.py describes"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse(text: str) -> list[list[Instruction]]:
    """Dockerfile instructions grouped by build stage (continuations joined, comments dropped)."""
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    stages: list[list[Instruction]] = []
    for entry in logical:
        keyword, _, args = entry.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, "an instruction before the first FROM"
        stages[-1].append(instruction)
    return stages


STAGES = parse(DOCKERFILE.read_text())
FINAL = STAGES[-1]


def instructions(stage: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in stage if i.keyword == keyword]


def exec_form(instruction: Instruction) -> list[str]:
    assert instruction.args.startswith("["), f"{instruction.keyword} must use the exec form"
    parsed: list[str] = yaml.safe_load(instruction.args)
    return parsed


# --------------------------------------------------------------------------- Dockerfile


def test_multi_stage_with_base_images_pinned_to_a_version() -> None:
    assert len(STAGES) >= 2
    for stage in STAGES:
        image = stage[0].args.split()[0]
        tag = image.partition(":")[2]
        assert tag and tag != "latest", f"{image}: pin a version"
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{image}: pin the full x.y.z version"


def test_base_python_is_the_one_the_lock_was_made_for() -> None:
    for stage in STAGES:
        tag = stage[0].args.split()[0].partition(":")[2]
        assert tag.startswith("{}.{}.".format(*sys.version_info[:2]))


def test_final_stage_runs_as_the_non_root_user_the_pod_expects() -> None:
    users = instructions(FINAL, "USER")
    assert users, "the final stage needs a USER"
    uid, _, gid = users[-1].args.partition(":")
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid (runAsNonRoot checks it)"
    assert not gid or int(gid) != 0
    pod = yaml.safe_load((ROOT / "k8s/deployment.yaml").read_text())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    # Nothing after USER switches back to root.
    after = FINAL[FINAL.index(users[-1]) + 1 :]
    assert not instructions(after, "RUN")


def test_final_stage_copies_only_the_built_virtualenv() -> None:
    copies = instructions(FINAL, "COPY")
    assert copies and all(c.args.startswith("--from=") for c in copies)


def test_runs_gepetto_serve_with_a_healthcheck_on_healthz() -> None:
    (entrypoint,) = instructions(FINAL, "ENTRYPOINT")
    (cmd,) = instructions(FINAL, "CMD")
    assert exec_form(entrypoint) + exec_form(cmd) == ["gepetto", "serve"]
    (healthcheck,) = instructions(FINAL, "HEALTHCHECK")
    port = Settings.model_fields["http_port"].default
    assert f"127.0.0.1:{port}/healthz" in healthcheck.args
    (expose,) = instructions(FINAL, "EXPOSE")
    assert expose.args == str(port)


def test_dependencies_install_from_the_lock_with_hashes_only() -> None:
    runs = [i.args for stage in STAGES for i in instructions(stage, "RUN")]
    installs = [r for r in runs if "pip install" in r and "requirements.lock" in r]
    assert installs, "install the runtime dependencies from requirements.lock"
    for command in installs:
        assert "--require-hashes" in shlex.split(command)
    # Our own wheel goes in without pulling anything unpinned.
    own = [r for r in runs if "gepetto-*.whl" in r]
    assert own and "--no-deps" in own[0] and "--no-index" in own[0]


SIMULATORS = "gepetto_sandbox"  # the demo's and tests' simulators: never in the image


def test_build_stage_copies_every_product_package_and_no_simulator() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert SIMULATORS in packages  # installed by the demo and test extras from a checkout
    copied = " ".join(i.args for i in instructions(STAGES[0], "COPY"))
    for needed in {*packages - {SIMULATORS}, "pyproject.toml", project["project"]["readme"]}:
        assert needed in copied, f"{needed} is not copied into the build stage"
    assert SIMULATORS not in copied
    allowed = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if "!" in line]
    assert not any(SIMULATORS in line for line in allowed)


SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|SEED|PRIVATE|API_KEY)", re.I)


def test_no_secrets_in_the_image_definition() -> None:
    for stage in STAGES:
        for instruction in stage:
            if instruction.keyword in ("ENV", "ARG", "LABEL"):
                names = re.findall(r"(\w+)=", instruction.args) or instruction.args.split()[:1]
                for name in names:
                    assert not SECRET_NAME.search(name), f"{instruction.keyword} {name}"
    text = DOCKERFILE.read_text()
    assert not re.search(r"xox[abp]-|xapp-|0x[0-9a-fA-F]{64}|://[^/\s:]+:[^@\s]+@", text)


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_context() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "start from an empty context and allow what the build copies"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = {
        source.rstrip("/").removeprefix("./")
        for i in instructions(STAGES[0], "COPY")
        for source in i.args.split()[:-1]
        if not source.startswith("--")
    }
    assert copied <= allowed
    assert not allowed & {".git", ".venv", ".gepetto", "tests", ".env"}
    assert "**/.env" in rules


# --------------------------------------------------------------------------- the lock


def _lock_entries() -> dict[str, tuple[str, list[str]]]:
    entries: dict[str, tuple[str, list[str]]] = {}
    text = re.sub(r"\\\n", " ", LOCK.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        requirement, *options = line.split()
        name, sep, version = requirement.partition("==")
        assert sep, f"not pinned exactly: {requirement}"
        hashes = [o.removeprefix("--hash=") for o in options if o.startswith("--hash=")]
        entries[canonicalize_name(name)] = (version, hashes)
    return entries


def _lockfile_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "lockfile_tool", Path(__file__).with_name("lockfile_tool.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_locked_package_is_pinned_with_sha256_hashes() -> None:
    entries = _lock_entries()
    assert entries
    for name, (version, hashes) in entries.items():
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), name
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name


def test_lock_satisfies_every_requirement_of_what_it_locks() -> None:
    """Registry-independent: gepetto's own requirements, and those of every locked package
    installed here at its locked version, are locked at versions that satisfy them."""
    tool = _lockfile_tool()
    locked = {name: version for name, (version, _) in _lock_entries().items()}
    checked = ["gepetto"]
    problems = [f"gepetto: {p}" for p in _unsatisfied(tool.requirements_of("gepetto"), locked)]
    for name, version in locked.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if installed == version:
            checked.append(name)
            problems += [f"{name}: {p}" for p in _unsatisfied(tool.requirements_of(name), locked)]
    assert len(checked) > len(locked) // 2, "too few locked versions installed to check"
    assert not problems, f"{problems}; {REGENERATE}"


def _unsatisfied(requirements: list[Requirement], locked: dict[str, str]) -> list[str]:
    problems = []
    for requirement in requirements:
        version = locked.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} is not locked")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}=={version} does not satisfy {requirement}")
    return problems


def test_lock_is_exactly_the_runtime_closure_of_the_tested_venv() -> None:
    """The image then runs what the tests ran. A venv installed without the lock as a
    constraint (`pip install -c requirements.lock ...`) may have newer releases: that is
    reported as a skip, not a failure, since it depends on the registry, not on this repo."""
    closure: dict[str, str] = _lockfile_tool().runtime_closure()
    locked = {name: version for name, (version, _) in _lock_entries().items()}
    drifted = sorted(
        f"{n} {locked[n]} (venv {closure[n]})"
        for n in set(closure) & set(locked)
        if closure[n] != locked[n]
    )
    if drifted:
        pytest.skip(f"the venv differs from requirements.lock: {drifted}; {REGENERATE}")
    missing = sorted(set(closure) - set(locked))
    extra = sorted(set(locked) - set(closure))
    assert not missing, f"runtime dependencies not in requirements.lock: {missing}; {REGENERATE}"
    assert not extra, f"requirements.lock has packages gepetto does not need: {extra}; {REGENERATE}"


@pytest.mark.parametrize("tool", ["pytest", "mypy", "ruff", "hypothesis", "kubernetes-validate"])
def test_test_tools_stay_out_of_the_image(tool: str) -> None:
    assert canonicalize_name(tool) not in _lock_entries()
