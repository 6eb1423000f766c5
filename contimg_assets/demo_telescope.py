"""The demo feeder: a simulated telescope dropping tiny groups into `incoming/`.

Only for the embedded demo (the run command sets CONTIMG_DEMO=1): each sensor tick
asks for one run that writes the next group, so a new user watches data arrive.
Every group is a drift through one sky with one instrument (the same seed for gains
and bandpasses, the noise drawn per group), and that sky is also written as the
demo's NVSS-format catalogue (`static/catalogs/nvss.tsv` unless configured), so the
calibration stages have a sky model, as they would from the real NVSS.
"""

import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from dagster import Config, OpExecutionContext, job, op

from contimg.calibration.sky_model import resolve_catalog_path
from contimg.catalogs.nvss import write_nvss_table
from contimg.simulation import instrument
from contimg.simulation.sky import as_catalog, calibrator_source
from contimg.simulation.telescope import SimulationRequest, centred_start, simulate, survey_sky
from contimg.simulation.variability import VariabilityRequest
from resources import StorageLayoutResource

DEMO_CALIBRATOR = "0834+555"
DEMO_SEED = 7
DEMO_VARIABLES_AT_GROUP = 12  # the flare, sinusoid and transient pass through groups ~10-14


def demo_variability(n_groups: int) -> VariabilityRequest:
    """Variable sources a demo shows within its first quarter hour of groups: placed on the
    strip at group 12, varying on the time scale of the ~5 groups they are seen in (a
    flare of 15 min, a sinusoid of 18 min, a transient appearing at group 12)."""
    at = min(1.0, DEMO_VARIABLES_AT_GROUP / n_groups)
    return VariabilityRequest(flare_flux_jy=0.3, flare_at=max(0.0, at - 0.4 / n_groups),
                              flare_timescale_h=0.25, sinusoid_flux_jy=0.3, sinusoid_period_h=0.3,
                              transient_flux_jy=0.3, transient_at=at, place_at=at)


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
    # CONTIMG_DEMO_CALIBRATOR_GROUP (default 2: the third group) sees the transit.
    transit_index = int(settings["CONTIMG_DEMO_CALIBRATOR_GROUP"])
    first = centred_start(calibrator_source(DEMO_CALIBRATOR).ra_deg) - timedelta(
        seconds=transit_index * instrument.GROUP_DURATION_S)
    n_groups = max(int(settings["CONTIMG_DEMO_MAX_GROUPS"]), config.group_index + 1)
    whole_run = SimulationRequest(
        out_dir=layout.incoming_dir, size=config.size, start=first, seed=DEMO_SEED, n_groups=n_groups,
        calibrator=DEMO_CALIBRATOR, dec_deg=calibrator_source(DEMO_CALIBRATOR).dec_deg,
        truth_dir=layout.tmp_dir / "demo-truth", variability=demo_variability(n_groups))
    sky = survey_sky(whole_run)
    _write_catalogue(resolve_catalog_path(str(settings["CONTIMG_NVSS_CATALOG"]), layout.static_dir),
                     sky)
    start = first + timedelta(seconds=config.group_index * instrument.GROUP_DURATION_S)
    (group,) = simulate(replace(whole_run, start=start, n_groups=1, sources=tuple(sky),
                                first_index=config.group_index))
    context.log.info(f"wrote group {group.group_id}: {len(group.files)} files into "
                     f"{layout.incoming_dir}")
    return group.group_id


def _write_catalogue(path: Path, sky) -> None:
    """The demo sky as an NVSS-format table, replaced atomically (same content each time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    write_nvss_table(partial, as_catalog(sky))
    os.replace(partial, path)


@job(tags={"contimg/kind": "demo"})
def simulated_telescope_job() -> None:
    """Write the next simulated group into incoming/ (demo feeder)."""
    write_simulated_group()
