"""NVSS source tables in the VizieR (VIII/65) tab-separated format.

The real NVSS (~1.8 million sources) cannot be fetched here, so the platform reads
the standard table format from a configurable path; the simulator writes its
field sources in the same format. Columns: NVSS name, RAJ2000 ("h m s"),
DEJ2000 ("+d m s"), S1.4 (mJy), e_S1.4, MajAxis, MinAxis (arcsec), PA (deg).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from astropy import units as u
from astropy.coordinates import Angle

COLUMNS = ("NVSS", "RAJ2000", "DEJ2000", "S1.4", "e_S1.4", "MajAxis", "MinAxis", "PA")
UNITS = ("", '"h:m:s"', '"d:m:s"', "mJy", "mJy", "arcsec", "arcsec", "deg")


@dataclass(frozen=True)
class CatalogSource:
    """One catalogue entry: J2000 position (deg) and 1.4 GHz flux (Jy)."""

    ra_deg: float
    dec_deg: float
    flux_jy: float
    major_arcsec: float = 0.0
    minor_arcsec: float = 0.0
    pa_deg: float = 0.0

    @property
    def name(self) -> str:
        """IAU-style NVSS name, e.g. J083457+553248."""
        ra = Angle(self.ra_deg, u.deg).to_string(unit=u.hour, sep="", precision=0, pad=True)
        dec = Angle(self.dec_deg, u.deg).to_string(sep="", precision=0, alwayssign=True, pad=True)
        return f"J{ra}{dec}"


def write_nvss_table(path: Path, sources: Iterable[CatalogSource]) -> Path:
    """Write sources as a VizieR-style NVSS TSV (header, units, dashes, rows)."""
    lines = ["\t".join(COLUMNS), "\t".join(UNITS), "\t".join("-" * max(len(c), 3) for c in COLUMNS)]
    for src in sources:
        ra = Angle(src.ra_deg, u.deg).to_string(unit=u.hour, sep=" ", precision=2, pad=True)
        dec = Angle(src.dec_deg, u.deg).to_string(sep=" ", precision=1, alwayssign=True, pad=True)
        flux_mjy = src.flux_jy * 1e3
        lines.append("\t".join([
            src.name, ra, dec, f"{flux_mjy:.1f}", f"{max(0.45, 0.03 * flux_mjy):.1f}",
            f"{src.major_arcsec:.1f}", f"{src.minor_arcsec:.1f}", f"{src.pa_deg:.1f}",
        ]))
    path.write_text("\n".join(lines) + "\n")
    return path


def read_nvss_table(path: Path) -> list[CatalogSource]:
    """Read a VizieR-style NVSS TSV; lines starting with # are comments."""
    rows = [ln for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if not rows or rows[0].split("\t")[:3] != list(COLUMNS[:3]):
        raise ValueError(
            f"{path}: not an NVSS table (first line must start with {COLUMNS[:3]}). "
            "Fix: export VIII/65 from VizieR as tab-separated values with sexagesimal positions."
        )
    header = rows[0].split("\t")
    index = {name: header.index(name) for name in ("RAJ2000", "DEJ2000", "S1.4")}
    sources = []
    for number, line in enumerate(rows[1:], start=2):
        fields = line.split("\t")
        if fields[0].startswith("-") or fields[index["S1.4"]] == "mJy":
            continue
        try:
            sources.append(CatalogSource(
                ra_deg=float(Angle(fields[index["RAJ2000"]], u.hourangle).degree),
                dec_deg=float(Angle(fields[index["DEJ2000"]], u.deg).degree),
                flux_jy=float(fields[index["S1.4"]]) / 1e3,
            ))
        except (ValueError, IndexError) as exc:
            raise ValueError(f"{path}, line {number}: cannot parse {line!r} ({exc})") from exc
    return sources
