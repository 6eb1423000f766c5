"""Partitions: one key per observation group, the group's ISO timestamp (sorts by time)."""

from dagster import DynamicPartitionsDefinition

observation_groups = DynamicPartitionsDefinition(name="observation_groups")
