"""Partitions: one key per observation group, the group's ISO timestamp (sorts by time)."""

from dagster import DynamicPartitionsDefinition

observation_groups = DynamicPartitionsDefinition(name="observation_groups")

# The tag the incoming sensor puts on a group's conversion runs: its live runs are found
# by it, and run-failure alerts name the group from it.
GROUP_TAG = "contimg/group"
