"""A validator job's extra ports and disk (pure, `services.job_launch`): the one answer the
`job_created` handler and the autoscaler both use."""

from __future__ import annotations

from typing import Any

import pytest

from gepetto_core.errors import InvalidInputError
from gepetto_core.kube_objects import JobPort
from gepetto_core.models.validator import ValidatorChute, ValidatorJob
from gepetto_core.services.job_launch import (
    DEFAULT_JOB_DISK_GB,
    JobLaunch,
    job_launch,
    synced_job_launch,
)
from gepetto_core.services.sync import ListState, ValidatorSnapshot, key_items

DEFINITIONS: list[dict[str, Any]] = [
    {"name": "train", "disk_gb": 100, "ports": [{"port": 2202, "proto": "tcp"}]},
    {
        "name": "serve",
        "disk_gb": 20,
        "ports": [{"port": 2202, "proto": "http"}, {"port": 9100, "proto": "udp"}],
    },
    {"name": "bare"},
]
PORTS = (JobPort(2202, "TCP"), JobPort(9100, "UDP"))


def test_ports_are_every_definitions_ports_deduplicated() -> None:
    assert job_launch(DEFINITIONS).ports == PORTS
    assert job_launch(None) == JobLaunch((), DEFAULT_JOB_DISK_GB)
    assert job_launch([{"name": "x", "ports": None}]).ports == ()


@pytest.mark.parametrize(
    ("method", "disk_gb", "expected"),
    [
        ("train", 37, 37),  # the validator's figure for this job wins
        ("train", "37", 37),
        ("train", None, 100),  # a re-published job_created has none: the method's definition
        ("serve", "", 20),
        ("train", 0, 100),
        ("bare", None, DEFAULT_JOB_DISK_GB),  # a definition without a disk
        ("unknown", None, DEFAULT_JOB_DISK_GB),
        (None, None, DEFAULT_JOB_DISK_GB),
    ],
)
def test_disk_is_the_jobs_then_its_definitions_then_the_default(
    method: str | None, disk_gb: object, expected: int
) -> None:
    assert job_launch(DEFINITIONS, method=method, disk_gb=disk_gb).disk_gb == expected


@pytest.mark.parametrize("bad", ["lots", -5, [1]])
def test_a_disk_that_is_not_a_positive_number_is_refused(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="disk_gb"):
        job_launch(DEFINITIONS, disk_gb=bad)


def test_a_port_without_a_number_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="job port"):
        job_launch([{"ports": [{"proto": "tcp"}]}])


def _synced(job_args: dict[str, Any], method: str = "serve") -> ValidatorSnapshot:
    chute = ValidatorChute.model_validate({"chute_id": "c1", "version": "v1", "jobs": DEFINITIONS})
    job = ValidatorJob(job_id="j1", chute_id="c1", method=method, job_args=job_args)
    return ValidatorSnapshot(
        validator="5validator",
        chutes=ListState(items=key_items([chute], "chute_id"), fetched_at=1.0),
        jobs=ListState(items=key_items([job], "job_id"), fetched_at=1.0),
    )


def test_the_synced_rows_give_the_same_answer_as_the_event() -> None:
    synced = _synced({"_disk_gb": 37})
    assert synced_job_launch(synced, "c1", "j1") == job_launch(
        DEFINITIONS, method="serve", disk_gb=37
    )
    assert synced_job_launch(synced, "c1", "j1") == JobLaunch(PORTS, 37)
    # a row without `_disk_gb`: the method's definition, as for a re-published event
    assert synced_job_launch(_synced({}), "c1", "j1") == JobLaunch(PORTS, 20)


def test_what_the_sync_does_not_know_falls_back_to_defaults() -> None:
    assert synced_job_launch(None, "c1", "j1") == JobLaunch()
    synced = _synced({"_disk_gb": 37})
    assert synced_job_launch(synced, "other-chute", "j1") == JobLaunch((), 37)
    assert synced_job_launch(synced, "c1", "other-job") == JobLaunch(PORTS, DEFAULT_JOB_DISK_GB)
