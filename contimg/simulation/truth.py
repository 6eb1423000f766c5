"""Reading a simulated group's truth and undoing its corruptions (for validation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pyuvdata import UVData


def load_truth(truth_json: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The truth JSON (sky, pointing, stations) and its arrays (gains, bandpass, freqs)."""
    truth = json.loads(Path(truth_json).read_text())
    arrays = dict(np.load(Path(truth_json).with_name(Path(truth_json).name.replace(
        "_truth.json", "_truth.npz"))))
    return truth, arrays


def apply_true_gains(uvd: UVData, arrays: dict[str, np.ndarray]) -> None:
    """Divide the data in place by the true g_i b_i (g_j b_j)* of every baseline."""
    index = {int(a): i for i, a in enumerate(arrays["antenna_numbers"])}
    channel = {round(float(f)): i for i, f in enumerate(arrays["freqs_hz"])}
    chans = np.array([channel[round(float(f))] for f in uvd.freq_array])
    _, time_index = np.unique(uvd.time_array, return_inverse=True)
    a1 = np.array([index[a] for a in uvd.ant_1_array])
    a2 = np.array([index[a] for a in uvd.ant_2_array])
    gains, bandpass = arrays["gains"], arrays["bandpass"][:, chans, :]
    factor = (gains[time_index, a1][:, None, :] * bandpass[a1]
              * np.conj(gains[time_index, a2][:, None, :] * bandpass[a2]))
    uvd.data_array = (uvd.data_array / factor).astype(np.complex64)


def apply_true_gains_to_ms(ms_path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Divide DATA of a contimg MS in place by the true gains (MS sign convention).

    The MS holds the complex conjugate of the UVH5 visibilities, so each row is divided
    by conj(g_i b_i (g_j b_j)*), with channels matched by frequency.
    """
    from casacore import tables

    index = {int(a): i for i, a in enumerate(arrays["antenna_numbers"])}
    channel = {round(float(f)): i for i, f in enumerate(arrays["freqs_hz"])}
    with tables.table(str(ms_path / "SPECTRAL_WINDOW"), ack=False) as spw:
        freqs = spw.getcol("CHAN_FREQ")[0]
    chans = np.array([channel[round(float(f))] for f in freqs])
    with tables.table(str(ms_path), readonly=False, ack=False) as main:
        time_s, a1, a2 = main.getcol("TIME"), main.getcol("ANTENNA1"), main.getcol("ANTENNA2")
        _, time_index = np.unique(time_s, return_inverse=True)
        i1 = np.array([index[a] for a in a1])
        i2 = np.array([index[a] for a in a2])
        gains, bandpass = arrays["gains"], arrays["bandpass"][:, chans, :]
        factor = (gains[time_index, i1][:, None, :] * bandpass[i1]
                  * np.conj(gains[time_index, i2][:, None, :] * bandpass[i2]))
        main.putcol("DATA", (main.getcol("DATA") / np.conj(factor)).astype(np.complex64))
