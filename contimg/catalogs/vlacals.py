"""The VLA calibrator list (`vlacals.csv`): positions and L-band (20 cm) fluxes."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from astropy.coordinates import Angle

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
DEFAULT_VLACALS = STATIC_DIR / "vlacals.csv"


@dataclass(frozen=True)
class Calibrator:
    """A VLA calibrator with its J2000 position and 20 cm flux."""

    name: str
    alt_names: tuple[str, ...]
    ra_deg: float
    dec_deg: float
    flux_jy: float


@lru_cache(maxsize=4)
def load_calibrators(path: Path = DEFAULT_VLACALS) -> tuple[Calibrator, ...]:
    """Every calibrator with a 20 cm flux, read once per process."""
    found: list[Calibrator] = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["BAND"] != "20cm" or row["FLUX_JY"] in ("", "NaN"):
                continue
            alts = tuple(n for n in (row["B1950_NAME"], row["ALT_NAME"]) if n and n != "NaN")
            found.append(Calibrator(
                name=row["J2000_NAME"],
                alt_names=alts,
                ra_deg=float(Angle(row["RA_J2000"]).degree),
                dec_deg=float(Angle(row["DEC_J2000"]).degree),
                flux_jy=float(row["FLUX_JY"]),
            ))
    return tuple(found)


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
