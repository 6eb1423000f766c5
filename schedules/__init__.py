"""Dagster schedules. Each has an explicit `name=` (the README's Schedules table), because
ScheduleDefinition otherwise names it `<job>_schedule`."""
