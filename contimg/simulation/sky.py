"""The simulated sky: an optional named calibrator plus random field point sources."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from contimg.catalogs.nvss import CatalogSource
from contimg.catalogs.vlacals import find_calibrator
from contimg.simulation.variability import LightCurve

REFERENCE_FREQ_HZ = 1.4e9


@dataclass(frozen=True)
class PointSource:
    """A point source: J2000 position, flux at 1.4 GHz, spectral index."""

    name: str
    ra_deg: float
    dec_deg: float
    flux_jy: float
    spectral_index: float = -0.7
    light_curve: LightCurve | None = None  # steady when None

    def flux_factor(self, mjd: np.ndarray) -> np.ndarray:
        """The light curve's factor at those times (1 for a steady source)."""
        if self.light_curve is None:
            return np.ones(np.shape(mjd))
        return self.light_curve.factor(mjd)

    def flux_at(self, freq_hz: np.ndarray) -> np.ndarray:
        """Flux density (Jy) at the given frequencies."""
        return self.flux_jy * (np.asarray(freq_hz) / REFERENCE_FREQ_HZ) ** self.spectral_index

    def as_dict(self) -> dict[str, float | str]:
        """Plain-dict form for the truth file."""
        return asdict(self)


def calibrator_source(name: str) -> PointSource:
    """The VLA calibrator of that name as a point source with the list's spectral index
    (the same one the sky model uses, so data and model agree)."""
    cal = find_calibrator(name)
    return PointSource(cal.name, cal.ra_deg, cal.dec_deg, cal.flux_jy,
                       spectral_index=cal.spectral_index)


def field_sources(rng: np.random.Generator, ra_deg: float, dec_deg: float, count: int,
                  *, radius_deg: float = 2.5, min_jy: float = 0.05, max_jy: float = 2.0
                  ) -> list[PointSource]:
    """Random sources inside a circle, fluxes from a Euclidean-like power law (N(>S) ~ S^-1.5)."""
    sources = []
    for index in range(count):
        # Uniform on the sphere cap around (ra, dec).
        radius = np.degrees(np.arccos(1 - rng.random() * (1 - np.cos(np.radians(radius_deg)))))
        angle = rng.random() * 2 * np.pi
        src_dec = dec_deg + radius * np.cos(angle)
        src_ra = ra_deg + radius * np.sin(angle) / np.cos(np.radians(src_dec))
        flux = min_jy * (1 - rng.random() * (1 - (max_jy / min_jy) ** -1.5)) ** (-1 / 1.5)
        sources.append(PointSource(f"field{index:03d}", float(src_ra % 360), float(src_dec),
                                   float(flux), float(rng.normal(-0.7, 0.2))))
    return sources


def strip_sources(rng: np.random.Generator, ra_start_deg: float, ra_span_deg: float,
                  dec_deg: float, count: int, *, half_width_deg: float = 2.5,
                  min_jy: float = 0.05, max_jy: float = 2.0) -> list[PointSource]:
    """Random sources spread evenly over a strip of right ascension (a long drift scan's
    sky), within `half_width_deg` of the pointing declination; fluxes as `field_sources`."""
    sources = []
    for index in range(count):
        src_ra = (ra_start_deg + rng.random() * ra_span_deg) % 360.0
        src_dec = dec_deg + (2 * rng.random() - 1) * half_width_deg
        flux = min_jy * (1 - rng.random() * (1 - (max_jy / min_jy) ** -1.5)) ** (-1 / 1.5)
        sources.append(PointSource(f"field{index:03d}", float(src_ra), float(src_dec),
                                   float(flux), float(rng.normal(-0.7, 0.2))))
    return sources


def as_catalog(sources: list[PointSource]) -> list[CatalogSource]:
    """Catalogue entries (NVSS-format rows) for simulated sources; a transient is in no
    catalogue made before it appeared."""
    return [CatalogSource(s.ra_deg, s.dec_deg, s.flux_jy) for s in sources
            if s.light_curve is None or s.light_curve.kind != "transient"]
