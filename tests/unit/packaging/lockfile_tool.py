"""The runtime dependency closure of the installed `gepetto` distribution, and the tool that
writes `requirements.lock` from it (exact pins + hashes, for the Docker image).

    .venv/bin/python tests/unit/packaging/lockfile_tool.py > /tmp/runtime.in
    pip-compile --generate-hashes --allow-unsafe --strip-extras --no-annotate --no-header \\
        --no-emit-index-url --no-emit-find-links -o requirements.lock /tmp/runtime.in

(pip-compile in a scratch venv: `python3 -m venv /tmp/lock && /tmp/lock/bin/pip install
pip-tools`.) The input pins every package of the closure at the version installed in the venv
the tests ran in, so pip-compile only adds the hashes; tests/unit/packaging/test_dockerfile.py
checks that the lock still equals that closure.
"""

from __future__ import annotations

import importlib.metadata as md

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def requirements_of(name: str, extras: frozenset[str] = frozenset()) -> list[Requirement]:
    """The installed distribution's requirements that apply here (markers evaluated, with
    the given extras requested)."""
    wanted = []
    for raw in md.distribution(name).requires or []:
        requirement = Requirement(raw)
        if requirement.marker is None or any(
            requirement.marker.evaluate({"extra": extra}) for extra in ("", *sorted(extras))
        ):
            wanted.append(requirement)
    return wanted


def runtime_closure(root: str = "gepetto") -> dict[str, str]:
    """Canonical name -> installed version of everything `root` needs at run time (its
    [project] dependencies and theirs, with the extras they ask for; no optional extras of
    `root` itself), on this interpreter and platform."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    pending: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    while pending:
        name, extras = pending.pop()
        dist = md.distribution(name)
        key = canonicalize_name(dist.metadata["Name"])
        known = found.get(key)
        if known is not None and extras <= known[1]:
            continue
        extras = extras | (known[1] if known else frozenset())
        found[key] = (dist.version, extras)
        for requirement in requirements_of(name, extras):
            pending.append((requirement.name, frozenset(requirement.extras)))
    found.pop(canonicalize_name(root))
    return {name: version for name, (version, _) in sorted(found.items())}


if __name__ == "__main__":
    for name, version in runtime_closure().items():
        print(f"{name}=={version}")
