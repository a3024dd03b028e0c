"""The chutes-miner environment reaches the Job builder: MTLS_REGISTRY_MIN_VERSION is read under
the official name, with the official default, and an empty value disables the direct registry."""

from __future__ import annotations

import pytest

from gepetto_core import kube_objects as ko
from gepetto_core.config import load_settings
from gepetto_core.errors import ConfigError
from gepetto_core.models.inventory import Server
from gepetto_core.wiring import job_settings

VALIDATOR = "5Dt7HZ7Zpw4DppPxFM7Ke3Cm7sDAWhsZXmM5ZAmE7dSVJbcQ"
PROXY = f"{VALIDATOR.lower()}.localregistry.chutes.ai:30500"
SERVER = Server(server_id="uid-1", validator=VALIDATOR, name="n1", gpu_count=8, hourly_cost=1.0)


@pytest.mark.parametrize(
    ("environ", "vm_version", "registry"),
    [
        ({}, "1.4.0", "registry.chutes.ai"),  # official default 1.4.0
        ({}, "1.3.9", PROXY),
        ({"MTLS_REGISTRY_MIN_VERSION": "1.6.0"}, "1.5.9", PROXY),
        ({"MTLS_REGISTRY_MIN_VERSION": "1.6.0"}, "1.6.0", "registry.chutes.ai"),
        ({"MTLS_REGISTRY_MIN_VERSION": ""}, "1.4.0", PROXY),  # empty: direct registry off
        ({"MTLS_REGISTRY_MIN_VERSION": ""}, "99.0", PROXY),
    ],
)
def test_mtls_registry_min_version_is_read_as_the_official_miner_reads_it(
    environ: dict[str, str], vm_version: str, registry: str
) -> None:
    settings = job_settings(load_settings(environ), "5Miner")
    assert ko.registry_ref(SERVER, settings, vm_version) == registry


def test_an_unreadable_mtls_registry_min_version_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"MTLS_REGISTRY_MIN_VERSION": "latest"})
    assert info.value.variable == "MTLS_REGISTRY_MIN_VERSION"
