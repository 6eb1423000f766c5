"""The VLA calibrator list (`vlacals.csv`): positions, L-band (20 cm) fluxes and spectral indices.

The list has one row per calibrator and band (90 cm ... 0.7 cm). The spectral index at
L band is the slope of log S against log ν through the 20 cm flux and the nearest
listed band on each side (e.g. 90 cm and 6 cm); with no other band it is the usual
-0.7 of optically thin synchrotron.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.coordinates import Angle

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
DEFAULT_VLACALS = STATIC_DIR / "vlacals.csv"
DEFAULT_SPECTRAL_INDEX = -0.7
L_BAND_HZ = 1.4e9  # the 20 cm fluxes are quoted here (NVSS's frequency too)
# Nominal frequencies of the list's bands (VLA calibrator manual).
BAND_FREQ_HZ = {"90cm": 0.3275e9, "20cm": L_BAND_HZ, "6cm": 4.86e9, "4cm": 7.5e9, "3.7cm": 8.46e9,
                "3.6cm": 8.46e9, "2cm": 14.94e9, "1.3cm": 22.46e9, "0.7cm": 43.34e9}


@dataclass(frozen=True)
class Calibrator:
    """A VLA calibrator with its J2000 position and 20 cm flux."""

    name: str
    alt_names: tuple[str, ...]
    ra_deg: float
    dec_deg: float
    flux_jy: float  # at 20 cm (1.4 GHz)
    spectral_index: float = DEFAULT_SPECTRAL_INDEX  # S ∝ ν^α around 1.4 GHz
    band_fluxes: tuple[tuple[float, float], ...] = ()  # (frequency Hz, flux Jy) of every band

    def flux_at(self, freq_hz: np.ndarray | float) -> np.ndarray:
        """Flux density (Jy) at the given frequencies from the L-band flux and index."""
        return self.flux_jy * (np.asarray(freq_hz) / L_BAND_HZ) ** self.spectral_index


@lru_cache(maxsize=4)
def load_calibrators(path: Path = DEFAULT_VLACALS) -> tuple[Calibrator, ...]:
    """Every calibrator with a 20 cm flux (and its spectral index), read once per process."""
    bands: dict[str, dict[float, float]] = defaultdict(dict)
    first_rows: dict[str, dict[str, str]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            freq = BAND_FREQ_HZ.get(row["BAND"])
            if freq is None or row["FLUX_JY"] in ("", "NaN"):
                continue
            bands[row["J2000_NAME"]].setdefault(freq, float(row["FLUX_JY"]))
            first_rows.setdefault(row["J2000_NAME"], row)
    found: list[Calibrator] = []
    for name, row in first_rows.items():
        fluxes = bands[name]
        if L_BAND_HZ not in fluxes:
            continue
        alts = tuple(n for n in (row["B1950_NAME"], row["ALT_NAME"]) if n and n != "NaN")
        found.append(Calibrator(
            name=name,
            alt_names=alts,
            ra_deg=float(Angle(row["RA_J2000"]).degree),
            dec_deg=float(Angle(row["DEC_J2000"]).degree),
            flux_jy=fluxes[L_BAND_HZ],
            spectral_index=l_band_spectral_index(fluxes),
            band_fluxes=tuple(sorted(fluxes.items())),
        ))
    return tuple(found)


def l_band_spectral_index(fluxes: dict[float, float]) -> float:
    """Least-squares slope of log S vs log ν through 20 cm and its nearest neighbour on each
    side (a local index: many calibrators' spectra curve between 90 cm and 0.7 cm);
    DEFAULT_SPECTRAL_INDEX when 20 cm is the only band."""
    lower = [f for f in fluxes if f < L_BAND_HZ and fluxes[f] > 0]
    upper = [f for f in fluxes if f > L_BAND_HZ and fluxes[f] > 0]
    chosen = [L_BAND_HZ] + ([max(lower)] if lower else []) + ([min(upper)] if upper else [])
    if len(chosen) < 2 or fluxes[L_BAND_HZ] <= 0:
        return DEFAULT_SPECTRAL_INDEX
    log_freq = np.log([f / L_BAND_HZ for f in chosen])
    log_flux = np.log([fluxes[f] for f in chosen])
    return float(np.polyfit(log_freq, log_flux, 1)[0])


def find_calibrator(name: str, path: Path = DEFAULT_VLACALS) -> Calibrator:
    """Look a calibrator up by J2000, B1950 or alternative name (e.g. 3C286)."""
    wanted = name.strip().upper()
    for cal in load_calibrators(path):
        if wanted == cal.name.upper() or wanted in (a.upper() for a in cal.alt_names):
            return cal
    raise KeyError(
        f"calibrator {name!r} is not in {path} with a 20cm flux. "
        "Fix: use a J2000 name such as 0834+555 or 1331+305, or an alias such as 3C286."
    )
