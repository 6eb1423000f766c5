"""Partitions: one key per observation group, the group's ISO timestamp (sorts by time)."""

from dagster import DagsterRunStatus, DynamicPartitionsDefinition

observation_groups = DynamicPartitionsDefinition(name="observation_groups")

# The tag the incoming sensor puts on a group's conversion runs: its live runs are found
# by it, and run-failure alerts name the group from it.
GROUP_TAG = "contimg/group"

# Tags of the per-group jobs (conversion, apply, imaging): when their run worker dies, the
# platform's sensors request the group again (its lock tells them the holder is gone), so a
# Dagster run retry on top would do the group twice. Every other job is retried by Dagster
# (run_retries in dagster.yaml) when its worker dies.
REDONE_BY_SENSORS = {"dagster/max_retries": "0"}


# A run in any of these still holds its group: the sensors request nothing for it meanwhile
# (a canceling run may still be writing).
LIVE_RUN_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                     DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
