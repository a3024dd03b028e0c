"""The pure parts of the real-Kubernetes tier and of the sandbox's strict field validation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gepetto_sandbox.cluster.fields import check_strict, unknown_fields
from gepetto_sandbox.cluster.resources import BY_PATH
from gepetto_sandbox.cluster.store import StatusError
from gepetto_sandbox.control_plane import binaries

CONFIGMAPS = BY_PATH[("", "v1", "configmaps")]
JOBS = BY_PATH[("batch", "v1", "jobs")]


def test_unknown_fields_are_named_with_their_path() -> None:
    body = {"metadata": {"name": "x", "colour": "red"}, "data": {}, "spec": {}}
    assert unknown_fields(CONFIGMAPS, body) == ["spec", "metadata.colour"]
    assert unknown_fields(JOBS, {"metadata": {"name": "x"}, "spec": {}, "status": {}}) == []


def test_strict_check_raises_the_api_servers_400() -> None:
    with pytest.raises(StatusError) as caught:
        check_strict(JOBS, {"metadata": {"name": "x"}, "data": {}})
    assert caught.value.code == 400
    assert 'strict decoding error: unknown field "data"' in caught.value.message
    check_strict(CONFIGMAPS, {"metadata": {"name": "x"}, "data": {}, "immutable": True})


def test_the_cache_key_names_the_versions_and_follows_the_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = binaries.cache_key()
    assert key.startswith(f"k8s-{binaries.KUBERNETES_VERSION}-etcd-{binaries.ETCD_VERSION}-")
    copy = tmp_path / "src"
    shutil.copytree(binaries.SOURCE_DIR, copy)
    monkeypatch.setattr(binaries, "SOURCE_DIR", copy)
    assert binaries.cache_key() == key
    (copy / "etcd" / "main.go").write_text("package main\n")
    assert binaries.cache_key() != key


def test_the_version_stamp_is_what_kubectl_can_parse() -> None:
    stamp = binaries.version_ldflags()
    assert f"k8s.io/component-base/version.gitVersion={binaries.KUBERNETES_VERSION}" in stamp
    major, minor = binaries.KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    assert f"version.gitMajor={major}" in stamp and f"version.gitMinor={minor}" in stamp


def test_nothing_is_cached_in_an_empty_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert binaries.cached() is None
    assert binaries.bin_dir().is_relative_to(tmp_path / "gepetto" / "control-plane")
