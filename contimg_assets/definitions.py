"""The one Definitions object that the code location (workspace.yaml) loads."""


from dagster import Definitions

from contimg.layout import resolve_layout
from contimg_assets.demo_telescope import simulated_telescope_job
from contimg_assets.storage_locations import storage_locations
from resources import StateDatabasesResource, StorageLayoutResource
from schedules.daily_registration import storage_locations_job, storage_locations_schedule
from sensors.demo_telescope import simulated_telescope_sensor

# Validate the layout when the code location loads: a bad path stops here with one
# clear error naming the variable, the path and the fix.
resolve_layout().ensure()

storage = StorageLayoutResource()

defs = Definitions(
    assets=[storage_locations],
    jobs=[simulated_telescope_job, storage_locations_job],
    sensors=[simulated_telescope_sensor],
    schedules=[storage_locations_schedule],
    resources={"storage": storage, "state": StateDatabasesResource(storage=storage)},
)
