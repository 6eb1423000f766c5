"""Daily database backup, daily retention, daily live-partition pruning and weekly archival."""

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

state_backup_job = define_asset_job("state_backup_job", selection=AssetSelection.assets("state_backup"))

state_backup_schedule = ScheduleDefinition(
    name="state_backup_schedule",
    job=state_backup_job, cron_schedule="15 2 * * *", execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Back up the state databases, ship them to the remote (02:15 UTC daily).")

lifecycle_job = define_asset_job("lifecycle_job",
                                 selection=AssetSelection.assets("product_archive", "retention"))
retention_job = define_asset_job("retention_job", selection=AssetSelection.assets("retention"))

retention_schedule = ScheduleDefinition(
    name="retention_schedule",
    job=retention_job, cron_schedule="45 3 * * *", execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Apply the retention policy (03:45 UTC daily; dry run unless enabled).")

archive_schedule = ScheduleDefinition(
    name="archive_schedule",
    job=lifecycle_job, cron_schedule="0 4 * * 0", execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Archive images and mosaics to the remote, then retention (Sundays 04:00 UTC).")

live_partitions_job = define_asset_job("live_partitions_job",
                                       selection=AssetSelection.assets("live_partitions"))

live_partitions_schedule = ScheduleDefinition(
    name="live_partitions_schedule",
    job=live_partitions_job, cron_schedule="30 4 * * *", execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Keep the newest CONTIMG_LIVE_PARTITION_DAYS of observation-group partitions "
                "live in Dagster (04:30 UTC daily; `contimg find GROUP` finds any group).")
