"""Daily refresh of the storage_locations registry."""


from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

storage_locations_job = define_asset_job(
    "storage_locations_job", selection=AssetSelection.assets("storage_locations")
)

storage_locations_schedule = ScheduleDefinition(
    name="storage_locations_schedule",
    job=storage_locations_job,
    cron_schedule="5 0 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Re-register the base directories of every product kind (00:05 UTC daily).",
)
