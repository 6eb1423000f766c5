"""Storage observation every five minutes."""

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

storage_usage_job = define_asset_job("storage_usage_job",
                                     selection=AssetSelection.assets("storage_usage"))

storage_usage_schedule = ScheduleDefinition(
    name="storage_usage_schedule",
    job=storage_usage_job, cron_schedule="*/5 * * * *", execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Observe disks and areas, check thresholds, keep history (every 5 minutes).")
