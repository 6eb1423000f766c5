"""Reading DSA-110 UVH5 files with pyuvdata, coping with the instrument's quirks.

The files store `uvw_array` as float32 and their headers can fail pyuvdata's
strict checks, so each file is read without checks and its uvw cast to float64
before files are combined. This is the reference (slow) path; the converter has
its own bounded-memory reader.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pyuvdata import UVData

from contimg.naming import parse_subband_filename

READ_KWARGS = {"file_type": "uvh5", "run_check": False, "strict_uvw_antpos_check": False,
               "check_extra": False, "run_check_acceptability": False}


def subband_sort_key(path: Path | str) -> tuple[int, str]:
    """Order files by subband number (timestamps can differ within a group)."""
    parsed = parse_subband_filename(Path(path).name)
    return (parsed[1] if parsed else 999, str(path))


def read_subband(path: Path | str) -> UVData:
    """One subband file as a UVData with float64 uvw and its true phase centre."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # header-quirk warnings are expected here
        uvd = UVData.from_file(str(path), **READ_KWARGS)
    uvd.uvw_array = uvd.uvw_array.astype(np.float64)
    declare_meridian_centre(uvd)
    return uvd


def declare_meridian_centre(uvd: UVData) -> bool:
    """Tell pyuvdata what the correlator's files are: fringe-stopped on the meridian at
    `extra_keywords/phase_center_dec`, where its reader sees `phase_type "drift"` and
    assumes unprojected (zenith, w = 0) data — on which its own `phase()` is wrong.

    Declares a driftscan centre at (azimuth, elevation) of that meridian point, as the
    writer meant; the visibilities and uvw are untouched. Returns True when it did.
    """
    dec = uvd.extra_keywords.get("phase_center_dec")
    entry = next(iter(uvd.phase_center_catalog.values()))
    if dec is None or len(uvd.phase_center_catalog) != 1 or entry["cat_type"] != "unprojected":
        return False
    lat = uvd.telescope.location.lat.rad
    elevation = np.pi / 2 - abs(lat - float(dec))
    azimuth = np.pi if float(dec) < lat else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new_id = uvd._add_phase_center(cat_name=f"meridian_dec{np.degrees(float(dec)):+.2f}",
                                       cat_type="driftscan", cat_lon=azimuth, cat_lat=elevation,
                                       cat_frame="altaz")
        uvd.phase_center_id_array[:] = new_id
        uvd._clear_unused_phase_centers()
        uvd._set_app_coords_helper()
    return True


def read_group(paths: Sequence[Path | str], *, combine: str = "fast_concat") -> UVData:
    """All subbands of a group combined along frequency (pyuvdata's way: all in memory).

    `combine="fast_concat"` joins along the frequency axis in one step; `"add"` adds
    the files one by one, which is what `UVData.read` does with a list of files.
    """
    ordered = sorted((str(p) for p in paths), key=subband_sort_key)
    if combine not in ("fast_concat", "add"):
        raise ValueError(f"combine must be 'fast_concat' or 'add', not {combine!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if combine == "add":
            combined = read_subband(ordered[0])
            for path in ordered[1:]:
                combined += read_subband(path)
            return combined
        first, *rest = (read_subband(p) for p in ordered)
        if rest:
            first.fast_concat(rest, axis="freq", inplace=True, run_check=False)
    return first
