"""A picture of one calibration table for the UI: amplitude and phase per antenna,
against channel for a bandpass, against time for gains (PNG bytes)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from casacore import tables


def solution_png(table_path: Path, *, max_antennas: int = 24) -> bytes:
    """Amplitude (top) and phase (bottom) of the first polarisation, one line per antenna
    (at most `max_antennas`, the reference antenna's flat line included); flagged
    solutions are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values, flags, antennas, times, names = _read(table_path)
    bandpass = values.shape[1] > 1  # per channel
    figure, (amp_axis, phase_axis) = plt.subplots(2, 1, figsize=(7, 4.5), dpi=90, sharex=True)
    for antenna in np.unique(antennas)[:max_antennas]:
        rows = antennas == antenna
        solution = np.where(flags[rows, :, 0], np.nan, values[rows, :, 0])
        x = np.arange(solution.shape[1]) if bandpass else (times[rows] - times.min()) / 60.0
        y = solution.mean(axis=0) if bandpass else solution[:, 0]
        amp_axis.plot(x, np.abs(y), lw=0.8, label=names[antenna])
        phase_axis.plot(x, np.degrees(np.angle(y)), lw=0.8)
    amp_axis.set_ylabel("amplitude")
    phase_axis.set_ylabel("phase (deg)")
    phase_axis.set_xlabel("channel" if bandpass else "minutes")
    amp_axis.set_title(table_path.name)
    amp_axis.legend(fontsize=5, ncol=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _read(table_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    with tables.table(str(table_path), ack=False) as table:
        column = "CPARAM" if "CPARAM" in table.colnames() else "FPARAM"
        values = table.getcol(column).astype(complex)
        flags, antennas, times = table.getcol("FLAG"), table.getcol("ANTENNA1"), table.getcol("TIME")
    with tables.table(str(table_path / "ANTENNA"), ack=False) as antenna_table:
        names = list(antenna_table.getcol("NAME"))
    return values, flags, antennas, times, names
