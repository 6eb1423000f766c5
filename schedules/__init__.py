"""Dagster schedules: daily registration now; backups, retention and archival later."""
