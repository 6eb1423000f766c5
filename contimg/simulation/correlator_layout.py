"""Write a subband file exactly as the DSA-110 correlator's writer does.

The telescope's writer (dsa110-meridian-fs, `initialize_uvh5_file` and
`update_uvh5_file`) uses h5py directly and the old UVH5 layout: no `lst_array`, no
`phase_center_catalog`, no `version`; `phase_type` "drift" with the pointing
declination in `extra_keywords/phase_center_dec`; resizable (chunked) datasets that
grow one integration at a time; a file named `<name>_incomplete.hdf5` until it is
complete. The visibilities are the same as in the pyuvdata layout (fringe-stopped
on the meridian at that declination); only the container differs. Facts only
come from the published writer; no code of it is used here.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
from pyuvdata import UVData

from contimg import instrument as inst

INCOMPLETE_SUFFIX = "_incomplete.hdf5"
POLARIZATIONS = {2: np.array([-5, -6]), 4: np.array([-5, -7, -8, -6])}


def write_correlator_file(uvd: UVData, path: Path, dec_rad: float) -> Path:
    """Write one subband of `uvd` at `path` in the correlator's layout; return `path`.

    Written as `<stem>_incomplete.hdf5` and renamed when complete, as the writer does.
    """
    partial = path.with_name(path.stem + INCOMPLETE_SUFFIX)
    with h5py.File(partial, "w") as handle:
        _initialise(handle, uvd, dec_rad)
        n_bls = uvd.Nbls
        for start in range(0, uvd.Nblts, n_bls):
            _append_integration(handle, uvd, slice(start, start + n_bls))
    os.replace(partial, path)
    return path


def _initialise(handle: h5py.File, uvd: UVData, dec_rad: float) -> None:
    """The header and empty growable datasets (the writer's `initialize_uvh5_file`)."""
    header = handle.create_group("Header")
    n_ants = int(uvd.telescope.Nants)
    n_freq, n_pol = uvd.Nfreqs, uvd.Npols
    header["latitude"] = inst.SITE_LAT_DEG
    header["longitude"] = inst.SITE_LON_DEG
    header["altitude"] = inst.SITE_HEIGHT_M
    header["telescope_name"] = np.bytes_(inst.TELESCOPE_NAME)
    header["instrument"] = np.bytes_(inst.INSTRUMENT_NAME)
    header["object_name"] = np.bytes_("search")
    header["history"] = np.bytes_("written by contimg's simulator in the correlator's layout")
    header["phase_type"] = np.bytes_("drift")
    header["phase_center_app_dec"] = dec_rad
    header["Nants_data"] = len(np.union1d(uvd.ant_1_array, uvd.ant_2_array))
    header["Nants_telescope"] = n_ants
    header["antenna_diameters"] = np.ones(n_ants) * inst.DISH_DIAMETER_M
    for name in ("ant_1_array", "ant_2_array"):
        header.create_dataset(name, (0,), maxshape=(None,), dtype=np.int64, chunks=True)
    order = np.argsort(uvd.telescope.antenna_numbers)
    names = np.array([uvd.telescope.antenna_names[i] for i in order], dtype="S4")
    header.create_dataset("antenna_names", (n_ants,), dtype="S4", data=names)
    header["antenna_numbers"] = np.asarray(uvd.telescope.antenna_numbers)[order]
    header["Nbls"] = uvd.Nbls
    header["Nblts"] = 0
    header["Nfreqs"] = n_freq
    header["Npols"] = n_pol
    header["Ntimes"] = 0
    header["Nspws"] = 1
    header.create_dataset("uvw_array", (0, 3), maxshape=(None, 3), dtype=np.float32, chunks=True)
    for name in ("time_array", "integration_time"):
        header.create_dataset(name, (0,), maxshape=(None,), dtype=np.float64, chunks=True)
    header["freq_array"] = np.asarray(uvd.freq_array, float).reshape(1, n_freq)
    header["channel_width"] = float(np.abs(np.median(uvd.channel_width)))
    header["spw_array"] = np.array([1])
    header["polarization_array"] = POLARIZATIONS[n_pol]
    header["antenna_positions"] = np.asarray(uvd.telescope.antenna_positions)[order]
    extra = header.create_group("extra_keywords")
    extra["phase_center_dec"] = dec_rad
    extra["ha_phase_center"] = 0.0
    extra["phase_center_epoch"] = "HADEC"
    extra["applied_delays_ns"] = np.bytes_(" ".join(["0"] * (2 * n_ants)))
    data = handle.create_group("Data")
    shape, grow = (0, 1, n_freq, n_pol), (None, 1, n_freq, n_pol)
    data.create_dataset("visdata", shape, maxshape=grow, dtype=np.complex64, chunks=True)
    data.create_dataset("flags", shape, maxshape=grow, dtype=bool, chunks=True)
    data.create_dataset("nsamples", shape, maxshape=grow, dtype=np.float32)


def _append_integration(handle: h5py.File, uvd: UVData, rows: slice) -> None:
    """Grow every per-row dataset by one integration (the writer's `update_uvh5_file`)."""
    header, data = handle["Header"], handle["Data"]
    old = header["time_array"].shape[0]
    new = old + (rows.stop - rows.start)
    columns = {
        "time_array": uvd.time_array[rows],
        "integration_time": uvd.integration_time[rows],
        "uvw_array": uvd.uvw_array[rows].astype(np.float32),
        "ant_1_array": uvd.ant_1_array[rows].astype(np.int64),
        "ant_2_array": uvd.ant_2_array[rows].astype(np.int64),
    }
    for name, values in columns.items():
        header[name].resize(new, axis=0)
        header[name][old:new] = values
    header["Ntimes"][()] = new // uvd.Nbls
    header["Nblts"][()] = new
    n_freq, n_pol = uvd.Nfreqs, uvd.Npols
    arrays = {
        "visdata": np.asarray(uvd.data_array[rows], np.complex64),
        "flags": np.asarray(uvd.flag_array[rows], bool),
        "nsamples": np.asarray(uvd.nsample_array[rows], np.float32),
    }
    for name, values in arrays.items():
        data[name].resize(new, axis=0)
        data[name][old:new] = values.reshape(-1, 1, n_freq, n_pol)
