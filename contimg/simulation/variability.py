"""Sources whose flux changes with time: a flare, a sinusoid and a transient.

A `LightCurve` multiplies a source's quiescent flux (`PointSource.flux_jy`) by a factor
of time. The simulator evaluates it at every integration, so a group sees the flux as it
was when each integration was taken; the truth file records the curve and the group's
mean factor. `variable_sky` places one source of each kind near the run's middle field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("flare", "sinusoid", "transient")


@dataclass(frozen=True)
class LightCurve:
    """flux(t) = flux_jy × factor(t).

    flare: 1 + amplitude · exp(-(t - t0)/τ) after t0, rising as exp((t - t0)/(τ/4)) before;
    sinusoid: 1 + amplitude · sin(2π (t - t0)/τ);
    transient: 0 before t0, 1 from t0 on (a source that appears).
    """

    kind: str
    t0_mjd: float
    amplitude: float = 1.0
    timescale_h: float = 24.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"light curve kind must be one of {KINDS}, got {self.kind!r}")
        if self.timescale_h <= 0:
            raise ValueError(f"light curve time scale must be > 0 hours, got {self.timescale_h}")
        if self.kind == "sinusoid" and not 0 <= self.amplitude < 1:
            raise ValueError(f"a sinusoid's amplitude must be within [0, 1), got {self.amplitude}")

    def factor(self, mjd: np.ndarray | float) -> np.ndarray:
        """The flux factor at those times (MJD)."""
        dt_h = (np.asarray(mjd, float) - self.t0_mjd) * 24.0
        if self.kind == "transient":
            return (dt_h >= 0).astype(float)
        if self.kind == "sinusoid":
            return 1.0 + self.amplitude * np.sin(2 * np.pi * dt_h / self.timescale_h)
        rise = np.exp(np.minimum(dt_h, 0.0) / (self.timescale_h / 4))
        decay = np.exp(-np.maximum(dt_h, 0.0) / self.timescale_h)
        return 1.0 + self.amplitude * np.where(dt_h < 0, rise, decay)


@dataclass(frozen=True)
class VariabilityRequest:
    """Which variable sources `simulate` adds, and how they vary.

    Times are fractions of the simulated span (0: the first group's start, 1: the last
    group's end), so a request fits runs of any length."""

    flare_flux_jy: float = 0.2
    flare_amplitude: float = 2.0  # peak = (1 + amplitude) × quiescent
    flare_timescale_h: float = 24.0
    flare_at: float = 0.3
    sinusoid_flux_jy: float = 0.2
    sinusoid_amplitude: float = 0.5
    sinusoid_period_h: float = 72.0
    transient_flux_jy: float = 0.2
    transient_at: float = 0.5  # mid-run
    place_at: float = 0.5  # where along the run's strip of sky the three sources sit

    def __post_init__(self) -> None:
        for name in ("flare_at", "transient_at", "place_at"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a fraction of the simulated span, within 0..1")
        for name in ("flare_flux_jy", "sinusoid_flux_jy", "transient_flux_jy"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")

    def curves(self, start_mjd: float, end_mjd: float) -> dict[str, LightCurve]:
        """The three light curves over that span, by kind."""
        at = lambda fraction: start_mjd + fraction * (end_mjd - start_mjd)  # noqa: E731
        return {
            "flare": LightCurve("flare", at(self.flare_at), self.flare_amplitude, self.flare_timescale_h),
            "sinusoid": LightCurve("sinusoid", at(0.0), self.sinusoid_amplitude, self.sinusoid_period_h),
            "transient": LightCurve("transient", at(self.transient_at), 1.0, 1.0),
        }

    def quiescent_flux_jy(self, kind: str) -> float:
        """The flux the curve multiplies, by kind."""
        return float(getattr(self, f"{kind}_flux_jy"))


# Where each kind sits relative to the run's middle field: (east offset, north offset) in
# degrees on the sky; close enough to the centre to be in every image that covers it.
PLACES_DEG = {"flare": (-0.5, 0.3), "sinusoid": (0.0, -0.35), "transient": (0.5, 0.15)}


def variable_sky(sources: list, request: VariabilityRequest, centre_deg: tuple[float, float],
                 start_mjd: float, end_mjd: float) -> list:
    """`sources` plus a flare, a sinusoid and a transient (PointSources, flat spectra) near
    `centre_deg` (RA, Dec of the run's middle field)."""
    from contimg.simulation.sky import PointSource  # sky imports this module

    ra, dec = centre_deg
    added = []
    for kind, curve in request.curves(start_mjd, end_mjd).items():
        east, north = PLACES_DEG[kind]
        added.append(PointSource(f"{kind}000", float((ra + east / np.cos(np.radians(dec))) % 360.0),
                                 dec + north, request.quiescent_flux_jy(kind), 0.0, light_curve=curve))
    return list(sources) + added
