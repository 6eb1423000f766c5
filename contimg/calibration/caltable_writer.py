"""Write a CASA gain (G Jones) table from solutions, readable by `applycal`, `plotms` and
the own apply: the layout CASA 6.7's `gaincal` writes (one StandardStMan main table,
rows per interval x antenna with ANTENNA2 the reference antenna, the MS's ANTENNA,
FIELD and OBSERVATION subtables, a one-channel SPECTRAL_WINDOW at the band's centre)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from casacore import tables

from contimg.calibration.gain_solver import GainSolution

COPIED_SUBTABLES = ("ANTENNA", "FIELD", "OBSERVATION", "HISTORY")


def write_gain_table(path: Path, ms: Path, solution: GainSolution, *, field_id: int = 0,
                     scan: int = 1) -> None:
    """Create `path` (replacing any earlier one) holding `solution`."""
    shutil.rmtree(path, ignore_errors=True)
    n_bins, n_antennas, n_feeds = solution.gains.shape
    n_rows = n_bins * n_antennas
    with tables.table(str(path), _description(), nrow=n_rows, ack=False) as table:
        table.putinfo({"type": "Calibration", "subType": "G Jones", "readme": ""})
        table.putcol("TIME", np.repeat(solution.times, n_antennas))
        table.putcol("INTERVAL", np.repeat(solution.intervals_s, n_antennas))
        table.putcol("ANTENNA1", np.tile(np.arange(n_antennas, dtype=np.int32), n_bins))
        table.putcol("ANTENNA2", np.full(n_rows, solution.refant, np.int32))
        table.putcol("FIELD_ID", np.full(n_rows, field_id, np.int32))
        table.putcol("SPECTRAL_WINDOW_ID", np.zeros(n_rows, np.int32))
        table.putcol("SCAN_NUMBER", np.full(n_rows, scan, np.int32))
        table.putcol("OBSERVATION_ID", np.zeros(n_rows, np.int32))
        per_row = (n_rows, 1, n_feeds)
        table.putcol("CPARAM", solution.gains.reshape(per_row).astype(np.complex64))
        table.putcol("PARAMERR", solution.errors.reshape(per_row).astype(np.float32))
        table.putcol("FLAG", solution.flags.reshape(per_row))
        table.putcol("SNR", solution.snr.reshape(per_row).astype(np.float32))
        for name in COPIED_SUBTABLES:
            tables.tablecopy(str(ms / name), str(path / name), deep=True)
        _one_channel_window(ms, path)
        keywords = {"ParType": "Complex", "MSName": ms.name, "VisCal": "G Jones",
                    "PolBasis": "unknown", "CASA_Version": "contimg"}
        keywords |= {name: f"Table: {path / name}" for name in (*COPIED_SUBTABLES, "SPECTRAL_WINDOW")}
        table.putkeywords(keywords)


def _description() -> dict:
    scalars = [tables.makescacoldesc(name, 0) for name in
               ("FIELD_ID", "SPECTRAL_WINDOW_ID", "ANTENNA1", "ANTENNA2", "SCAN_NUMBER",
                "OBSERVATION_ID")]
    seconds = {"QuantumUnits": ["s"]}
    time = tables.makescacoldesc("TIME", 0.0, keywords=seconds | {
        "MEASINFO": {"type": "epoch", "Ref": "UTC"}})
    interval = tables.makescacoldesc("INTERVAL", 0.0, keywords=seconds)
    arrays = [tables.makearrcoldesc("CPARAM", 0j, valuetype="complex"),
              tables.makearrcoldesc("PARAMERR", 0.0, valuetype="float"),
              tables.makearrcoldesc("FLAG", False),
              tables.makearrcoldesc("SNR", 0.0, valuetype="float"),
              tables.makearrcoldesc("WEIGHT", 0.0, valuetype="float")]
    return tables.maketabdesc([time, *scalars[:1], *scalars[1:], interval, *arrays])


def _one_channel_window(ms: Path, path: Path) -> None:
    """The MS's window reduced to one channel at the band's centre, as gaincal writes it."""
    tables.tablecopy(str(ms / "SPECTRAL_WINDOW"), str(path / "SPECTRAL_WINDOW"), deep=True)
    with tables.table(str(path / "SPECTRAL_WINDOW"), readonly=False, ack=False) as spw:
        freqs = spw.getcol("CHAN_FREQ")[0]
        widths = spw.getcol("CHAN_WIDTH")[0]
        total = float(np.abs(widths).sum())
        spw.putcell("NUM_CHAN", 0, 1)
        spw.putcell("CHAN_FREQ", 0, np.array([freqs.mean()]))
        for column in ("CHAN_WIDTH", "EFFECTIVE_BW", "RESOLUTION"):
            spw.putcell(column, 0, np.array([total]))
        spw.putcell("TOTAL_BANDWIDTH", 0, total)
