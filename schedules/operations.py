"""Daily database backup, daily retention and weekly archival."""

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

state_backup_job = define_asset_job("state_backup_job", selection=AssetSelection.assets("state_backup"))

state_backup_schedule = ScheduleDefinition(
    job=state_backup_job, cron_schedule="15 2 * * *", execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Back up the state databases, ship them to the remote (02:15 UTC daily).")
