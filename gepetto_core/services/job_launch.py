"""A validator job's extra ports and disk: one answer for every path that starts a job.

The `job_created` event handler and the autoscaler (plain placement and preemption) both start
jobs; they must give the Job and its Service the same extra ports (`CHUTES_PORT_{PROTO}_{port}`
env, NodePort Service ports) and the same ephemeral disk. The ports come from the chute's job
definitions (`jobs[].ports[]`, all of them, deduplicated, as the official miner collects them);
the disk is the validator's figure for this job (the event's `disk_gb`, or `job_args._disk_gb`
on its `/miner/jobs/` row), else the chute's definition of the job's method, else 10 GB
(a re-published `job_created` carries no `disk_gb`; upstream raised KeyError on it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gepetto_core.errors import InvalidInputError
from gepetto_core.kube_objects import JobPort, normalize_job_ports
from gepetto_core.services.sync import ValidatorSnapshot

# The validator's own default for a job's disk (`_disk_gb`).
DEFAULT_JOB_DISK_GB = 10


@dataclass(frozen=True)
class JobLaunch:
    """What a job adds to a deployment: its extra ports and its disk size in GB."""

    ports: tuple[JobPort, ...] = ()
    disk_gb: int = DEFAULT_JOB_DISK_GB


def job_launch(
    chute_jobs: Iterable[Mapping[str, Any]] | None,
    *,
    method: str | None = None,
    disk_gb: object = None,
) -> JobLaunch:
    """The job's ports and disk from the chute's job definitions, its method and the disk the
    validator asked for (None when it did not say: a re-published `job_created` has none)."""
    definitions = list(chute_jobs or ())
    ports = normalize_job_ports(port for job in definitions for port in job.get("ports") or ())
    if not disk_gb:
        disk_gb = next(
            (job.get("disk_gb") for job in definitions if method and job.get("name") == method),
            None,
        )
    return JobLaunch(ports=ports, disk_gb=_disk(disk_gb))


def synced_job_launch(remote: ValidatorSnapshot | None, chute_id: str, job_id: str) -> JobLaunch:
    """The same answer from the validator's synced lists: the chute's definitions from
    `/miner/chutes/` and the job's row (method, `_disk_gb`) from `/miner/jobs/`."""
    chute = remote.chutes.items.get(chute_id) if remote else None
    job = remote.jobs.items.get(job_id) if remote else None
    return job_launch(
        chute.jobs if chute else None,
        method=job.method if job else None,
        disk_gb=job.requested_disk_gb if job else None,
    )


def _disk(value: object) -> int:
    if not value:
        return DEFAULT_JOB_DISK_GB
    try:
        disk = int(value) if isinstance(value, int | float) else int(str(value))
    except (ValueError, OverflowError) as e:
        raise InvalidInputError(f"job disk_gb must be a whole number of GB, not {value!r}") from e
    if disk <= 0:
        raise InvalidInputError(f"job disk_gb must be positive, not {disk}")
    return disk
