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
