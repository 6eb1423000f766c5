"""The demo telescope's observation: one sky drifting through the beam, group after group.

Plain Python, shared by the demo feeder (`contimg_assets/demo_telescope.py`, one group per
sensor tick) and `contimg bench day` (a day of groups fed at an accelerated cadence).
Every group is a drift through one sky with one instrument (the same seed for gains and
bandpasses, the noise drawn per group); that sky is also written as the demo's NVSS-format
catalogue, so the calibration stages have a sky model, as they would from the real NVSS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from contimg.catalogs.nvss import write_nvss_table
from contimg.simulation import instrument
from contimg.simulation.sky import PointSource, as_catalog, calibrator_source
from contimg.simulation.telescope import (
    SimulatedGroup,
    SimulationRequest,
    centred_start,
    simulate,
    survey_sky,
)
from contimg.simulation.variability import VariabilityRequest

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


@dataclass(frozen=True)
class DemoObservation:
    """The whole demo run (n_groups, the transit at group `transit_index`) and its sky."""

    run: SimulationRequest
    sky: tuple[PointSource, ...]

    @classmethod
    def plan(cls, out_dir: Path, *, n_groups: int, transit_index: int, size: str,
             truth_dir: Path) -> DemoObservation:
        """The observation whose group `transit_index` (from 0) sees the calibrator transit."""
        first = centred_start(calibrator_source(DEMO_CALIBRATOR).ra_deg) - timedelta(
            seconds=transit_index * instrument.GROUP_DURATION_S)
        run = SimulationRequest(
            out_dir=out_dir, size=size, start=first, seed=DEMO_SEED, n_groups=n_groups,
            calibrator=DEMO_CALIBRATOR, dec_deg=calibrator_source(DEMO_CALIBRATOR).dec_deg,
            truth_dir=truth_dir, variability=demo_variability(n_groups))
        return cls(run, tuple(survey_sky(run)))

    def write_group(self, index: int, out_dir: Path | None = None) -> SimulatedGroup:
        """Simulate group `index` into `out_dir` (default: the run's), each file renamed
        into place."""
        start = self.run.start + timedelta(seconds=index * instrument.GROUP_DURATION_S)
        (group,) = simulate(replace(self.run, start=start, n_groups=1, sources=self.sky,
                                    first_index=index, out_dir=out_dir or self.run.out_dir))
        return group

    def write_catalogue(self, path: Path) -> None:
        """The demo sky as an NVSS-format table, replaced atomically (same content each time)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        write_nvss_table(partial, as_catalog(self.sky))
        os.replace(partial, path)
