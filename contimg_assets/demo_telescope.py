"""The demo feeder: a simulated telescope dropping tiny groups into `incoming/`.

Only for the embedded demo (the run command sets CONTIMG_DEMO=1): each sensor tick
asks for one run that writes the next group, so a new user watches data arrive.
"""


from datetime import timedelta

from dagster import Config, OpExecutionContext, job, op

from contimg.simulation import instrument
from contimg.simulation.telescope import DEFAULT_START, SimulationRequest, simulate
from resources import StorageLayoutResource


class DemoGroupConfig(Config):
    """Which group of the demo sequence to write."""

    group_index: int = 0
    size: str = "tiny"
    calibrator: str | None = None


@op
def write_simulated_group(context: OpExecutionContext, config: DemoGroupConfig,
                          storage: StorageLayoutResource) -> str:
    """Write one simulated group into the incoming directory (each file renamed into place)."""
    layout = storage.layout()
    start = DEFAULT_START + timedelta(seconds=config.group_index * instrument.GROUP_DURATION_S)
    request = SimulationRequest(out_dir=layout.incoming_dir, size=config.size, start=start,
                                seed=config.group_index, calibrator=config.calibrator)
    (group,) = simulate(request)
    context.log.info("wrote group %s: %d files into %s", group.group_id, len(group.files),
                     layout.incoming_dir)
    return group.group_id


@job(tags={"contimg/kind": "demo"})
def simulated_telescope_job() -> None:
    """Write the next simulated group into incoming/ (demo feeder)."""
    write_simulated_group()
