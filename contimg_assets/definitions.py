"""The one Definitions object that the code location (workspace.yaml) loads."""


from dagster import Definitions

from contimg.settings import load_settings
from contimg_assets.calibration import bandpass_solution, calibrated_ms, gain_solution
from contimg_assets.demo_telescope import simulated_telescope_job
from contimg_assets.imaging import image
from contimg_assets.lifecycle import product_archive, retention
from contimg_assets.live_partitions import live_partitions
from contimg_assets.measurement_set import measurement_set
from contimg_assets.mosaics import daily_mosaic, hourly_mosaic
from contimg_assets.photometry import photometry, variability
from contimg_assets.state_backup import state_backup
from contimg_assets.storage_locations import storage_locations
from contimg_assets.storage_usage import storage_usage
from contimg_assets.uvh5_group import uvh5_group
from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource
from schedules.daily_registration import storage_locations_job, storage_locations_schedule
from schedules.operations import (
    archive_schedule,
    lifecycle_job,
    live_partitions_job,
    live_partitions_schedule,
    retention_job,
    retention_schedule,
    state_backup_job,
    state_backup_schedule,
)
from schedules.storage_monitoring import storage_usage_job, storage_usage_schedule
from sensors.calibration import (
    bandpass_solution_job,
    calibrate_group_job,
    calibration_sensor,
    gain_solution_job,
    image_group_job,
)
from sensors.demo_telescope import build_simulated_telescope_sensor
from sensors.image_stream import image_stream_sensor
from sensors.incoming_files import build_incoming_files_sensor, convert_group_job
from sensors.mosaics import daily_mosaic_job, hourly_mosaic_job, mosaic_sensor
from sensors.run_failures import run_failure_alert_sensor
from sensors.variability import variability_job, variability_sensor

# Validate every setting and the layout when the code location loads: a bad value
# stops here with one clear error naming the variable, the value and the fix.
settings = load_settings()
settings.layout.ensure()

storage = StorageLayoutResource()

defs = Definitions(
    assets=[uvh5_group, measurement_set, bandpass_solution, gain_solution, calibrated_ms, image,
            hourly_mosaic, daily_mosaic, photometry, variability, storage_locations, storage_usage,
            state_backup, product_archive, retention, live_partitions],
    jobs=[convert_group_job, bandpass_solution_job, gain_solution_job, calibrate_group_job, image_group_job,
          simulated_telescope_job, storage_locations_job, storage_usage_job, state_backup_job,
          lifecycle_job, retention_job, live_partitions_job, hourly_mosaic_job, daily_mosaic_job,
          variability_job],
    sensors=[build_incoming_files_sensor(int(settings["CONTIMG_SENSOR_INTERVAL_S"])),  # type: ignore[arg-type]
             calibration_sensor, build_simulated_telescope_sensor(settings), run_failure_alert_sensor,
             image_stream_sensor, mosaic_sensor, variability_sensor],
    schedules=[storage_locations_schedule, storage_usage_schedule, state_backup_schedule,
               retention_schedule, archive_schedule, live_partitions_schedule],
    resources={"storage": storage, "state": StateDatabasesResource(storage=storage),
               "notifier": NotifierResource(storage=storage)},
)
