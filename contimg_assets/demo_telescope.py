"""The demo feeder: a simulated telescope dropping groups into `incoming/`.

Only for the embedded demo (the run command sets CONTIMG_DEMO=1): each sensor tick
asks for one run that writes the next group of the demo observation
(`contimg.simulation.demo`), so a new user watches data arrive. The observation's sky is
also written as the demo's NVSS-format catalogue (`static/catalogs/nvss.tsv` unless
configured), so the calibration stages have a sky model, as they would from the real NVSS.
"""

from dagster import Config, OpExecutionContext, job, op

from contimg.calibration.sky_model import resolve_catalog_path
from contimg.simulation.demo import DemoObservation
from resources import StorageLayoutResource


class DemoGroupConfig(Config):
    """Which group of the demo sequence to write."""

    group_index: int = 0
    size: str = "tiny"


@op
def write_simulated_group(context: OpExecutionContext, config: DemoGroupConfig,
                          storage: StorageLayoutResource) -> str:
    """Write one simulated group into the incoming directory (each file renamed into place)."""
    settings = storage.settings()
    layout = settings.layout.ensure()
    observation = DemoObservation.plan(
        layout.incoming_dir, size=config.size, truth_dir=layout.tmp_dir / "demo-truth",
        n_groups=max(int(settings["CONTIMG_DEMO_MAX_GROUPS"]), config.group_index + 1),  # type: ignore[arg-type]
        # CONTIMG_DEMO_CALIBRATOR_GROUP (default 2: the third group) sees the transit.
        transit_index=int(settings["CONTIMG_DEMO_CALIBRATOR_GROUP"]))  # type: ignore[arg-type]
    observation.write_catalogue(resolve_catalog_path(str(settings["CONTIMG_NVSS_CATALOG"]),
                                                     layout.static_dir))
    group = observation.write_group(config.group_index)
    context.log.info(f"wrote group {group.group_id}: {len(group.files)} files into "
                     f"{layout.incoming_dir}")
    return group.group_id


@job(tags={"contimg/kind": "demo"})
def simulated_telescope_job() -> None:
    """Write the next simulated group into incoming/ (demo feeder)."""
    write_simulated_group()
