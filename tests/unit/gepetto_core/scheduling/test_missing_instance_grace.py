"""Regression (chaos suite): one instances listing that said NO_ITEMS by mistake removed every
deployment older than the grace period when the fleet was below the mass-removal guard's
minimum. The grace now runs from when the instance was first seen missing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from gepetto_core.scheduling.reconcile_actions import RemoveDeployment
from gepetto_core.scheduling.reconcile_plan import missing_instances, plan_reconcile

from .test_plan_reconcile import NOW, dep, inputs, job


def test_first_sighting_of_a_missing_instance_removes_nothing() -> None:
    fleet = [dep(1), dep(2)]  # an hour old, below the guard's minimum of four
    seen = inputs(fleet, [job(1), job(2)], [])  # the validator lists no instances at all
    assert missing_instances(seen) == {d.deployment_id for d in fleet}
    plan = plan_reconcile(replace(seen, missing_since={}), NOW)
    assert plan.of_type(RemoveDeployment) == []


def test_missing_for_the_grace_period_is_removed() -> None:
    fleet = [dep(1)]
    seen = inputs(fleet, None, [])
    since = {fleet[0].deployment_id: NOW - timedelta(minutes=6)}
    plan = plan_reconcile(replace(seen, missing_since=since), NOW)
    assert [a.deployment_id for a in plan.of_type(RemoveDeployment)] == [  # type: ignore[attr-defined]
        fleet[0].deployment_id
    ]
    young = {fleet[0].deployment_id: NOW - timedelta(minutes=4)}
    assert plan_reconcile(replace(seen, missing_since=young), NOW).of_type(RemoveDeployment) == []


def test_a_listed_instance_is_not_missing() -> None:
    assert missing_instances(inputs([dep(1)], None, None)) == set()
