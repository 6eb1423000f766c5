"""The celestial WCS of a FITS header, read quietly.

astropy notes every keyword it completes (MJD-OBS from DATE-OBS, geodetic OBSGEO from
OBSGEO-X/Y/Z) with a FITSFixedWarning: harmless, but once per image read it filled the
operator's run log. Every stage reads a header's WCS through here."""

from __future__ import annotations

import warnings

from astropy.wcs import WCS, FITSFixedWarning


def celestial_wcs(header) -> WCS:
    """The header's celestial WCS (RA/Dec axes only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header).celestial
