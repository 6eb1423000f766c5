"""The demo feeder: a simulated telescope dropping tiny groups into `incoming/`.

Only for the embedded demo (the run command sets CONTIMG_DEMO=1): each sensor tick
asks for one run that writes the next group, so a new user watches data arrive.
"""


from datetime import timedelta

from dagster import Config, OpExecutionContext, job, op

from contimg.simulation import instrument
from contimg.simulation.sky import calibrator_source
from contimg.simulation.telescope import SimulationRequest, centred_start, simulate
from resources import StorageLayoutResource

DEMO_CALIBRATOR = "0834+555"
CALIBRATOR_GROUP = 2  # the third demo group sees the calibrator transit


class DemoGroupConfig(Config):
    """Which group of the demo sequence to write."""

    group_index: int = 0
    size: str = "tiny"


@op
def write_simulated_group(context: OpExecutionContext, config: DemoGroupConfig,
                          storage: StorageLayoutResource) -> str:
    """Write one simulated group into the incoming directory (each file renamed into place)."""
    layout = storage.layout()
    first = centred_start(calibrator_source(DEMO_CALIBRATOR).ra_deg) - timedelta(
        seconds=CALIBRATOR_GROUP * instrument.GROUP_DURATION_S)
    start = first + timedelta(seconds=config.group_index * instrument.GROUP_DURATION_S)
    # The sky (calibrator included) is the same for every group; only the third one
    # has the calibrator transiting through the beam, so it is classified a calibrator.
    request = SimulationRequest(out_dir=layout.incoming_dir, size=config.size, start=start,
                                seed=config.group_index, calibrator=DEMO_CALIBRATOR,
                                dec_deg=calibrator_source(DEMO_CALIBRATOR).dec_deg,
                                truth_dir=layout.tmp_dir / "demo-truth")
    (group,) = simulate(request)
    context.log.info("wrote group %s: %d files into %s", group.group_id, len(group.files),
                     layout.incoming_dir)
    return group.group_id


@job(tags={"contimg/kind": "demo"})
def simulated_telescope_job() -> None:
    """Write the next simulated group into incoming/ (demo feeder)."""
    write_simulated_group()
