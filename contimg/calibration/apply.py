"""Apply calibration tables to an MS: CORRECTED_DATA = DATA / (J_i J_j^H), all or nothing.

The own apply replaces CASA `applycal` on the platform's path (the tests compare the two
to 1e-5; `contimg.calibration.casa_reference.casa_applycal` stays as the reference):

- the tables become one Jones term per integration, antenna, channel and feed
  (`contimg.calibration.jones`, CASA's interpolation rules);
- a numba kernel divides each chunk of rows; a sample whose solution is flagged is
  flagged (CASA's `applymode="calflag"`), weights are left alone (`calwt=False`);
- the result goes into scratch columns swapped in only when complete
  (`contimg.calibration.column_commit`): a killed apply leaves the MS as it was, a
  finished one leaves it completely calibrated — never half.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
from casacore import tables

from contimg.calibration.column_commit import replaced_columns, scratch_name
from contimg.calibration.jones import ms_frame, total_jones
from contimg.state.cal_registry_db import ApplySet

CORRECTED_COLUMN = "CORRECTED_DATA"
ROWS_PER_CHUNK = 8192


@dataclass
class ApplyReport:
    """What one apply wrote."""

    rows: int = 0
    newly_flagged: int = 0
    flag_column_rewritten: bool = False
    timings_s: dict[str, float] = field(default_factory=dict)


def apply_tables(ms: Path, tables_to_apply: ApplySet) -> ApplyReport:
    """Write CORRECTED_DATA of `ms` from DATA and the set's tables (in their apply order).

    Idempotent: it always starts from DATA, so an apply cut short is simply done again."""
    return apply_paths(ms, list(tables_to_apply.paths))


def apply_paths(ms: Path, paths: list[str]) -> ApplyReport:
    """`apply_tables` for a plain list of table paths (apply order)."""
    report = ApplyReport()
    lap = time.perf_counter()
    layout = _ms_layout(ms)
    jones, flagged = total_jones(paths, layout.times, layout.n_antennas, layout.freqs_hz,
                                 layout.n_feeds)
    # Multiplying by the inverse is ~3x faster than dividing every sample.
    inverse = np.divide(1, jones, out=np.zeros_like(jones), where=jones != 0)
    flagged |= jones == 0
    present = np.union1d(layout.ant1, layout.ant2)
    report.flag_column_rewritten = bool(flagged[:, present].any())
    report.timings_s["jones"] = time.perf_counter() - lap
    targets = {CORRECTED_COLUMN: "DATA"}
    if report.flag_column_rewritten:
        targets["FLAG"] = "FLAG"
    lap = time.perf_counter()
    with replaced_columns(ms, targets) as main:
        buffers = _ChunkBuffers(main, layout.n_rows)
        for start in range(0, layout.n_rows, ROWS_PER_CHUNK):
            count = min(ROWS_PER_CHUNK, layout.n_rows - start)
            rows = slice(start, start + count)
            data, flags, corrected = buffers.read(main, start, count)
            tick = time.perf_counter()
            _correct_rows(data, flags, corrected, layout.time_index[rows], layout.ant1[rows],
                          layout.ant2[rows], inverse, flagged, layout.feed_p, layout.feed_q)
            report.timings_s["compute"] = report.timings_s.get("compute", 0.0) + time.perf_counter() - tick
            tick = time.perf_counter()
            main.putcol(scratch_name(CORRECTED_COLUMN), corrected, start, count)
            if report.flag_column_rewritten:
                report.newly_flagged += int(flags.sum()) - buffers.flagged_before
                main.putcol(scratch_name("FLAG"), flags, start, count)
            report.timings_s["put"] = report.timings_s.get("put", 0.0) + time.perf_counter() - tick
        report.timings_s["get"] = buffers.seconds
        tick = time.perf_counter()
    report.timings_s["commit"] = time.perf_counter() - tick
    report.rows = layout.n_rows
    report.timings_s["write"] = time.perf_counter() - lap
    return report


@dataclass(frozen=True)
class _MsLayout:
    n_rows: int
    times: np.ndarray  # unique integration times
    time_index: np.ndarray  # per row, into `times`
    ant1: np.ndarray
    ant2: np.ndarray
    n_antennas: int
    freqs_hz: np.ndarray
    n_feeds: int
    feed_p: np.ndarray  # per correlation, the feed of antenna 1 (0 = X)
    feed_q: np.ndarray  # per correlation, the feed of antenna 2


def _ms_layout(ms: Path) -> _MsLayout:
    with tables.table(str(ms), ack=False) as main:
        row_times = main.getcol("TIME")
        ant1, ant2 = main.getcol("ANTENNA1"), main.getcol("ANTENNA2")
    frame = ms_frame(ms)
    products = frame.corr_products
    times, time_index = np.unique(row_times, return_inverse=True)
    return _MsLayout(row_times.size, times, time_index.astype(np.int32), ant1.astype(np.int32),
                     ant2.astype(np.int32), frame.n_antennas, frame.freqs_hz, frame.n_feeds,
                     products[:, 0].astype(np.int32), products[:, 1].astype(np.int32))


class _ChunkBuffers:
    """DATA and FLAG read into buffers reused for every chunk (no allocation per chunk)."""

    def __init__(self, main: tables.table, n_rows: int) -> None:
        count = min(ROWS_PER_CHUNK, n_rows)
        cell = main.getcell("DATA", 0).shape
        self.data = np.empty((count, *cell), np.complex64)
        self.flags = np.empty((count, *cell), bool)
        self.corrected = np.empty((count, *cell), np.complex64)
        self.flagged_before = 0
        self.seconds = 0.0

    def read(self, main: tables.table, start: int, count: int):
        """(data, flags, output buffer) views for rows start..start+count."""
        tick = time.perf_counter()
        data, flags = self.data[:count], self.flags[:count]
        main.getcolnp("DATA", data, start, count)
        main.getcolnp("FLAG", flags, start, count)
        self.flagged_before = int(flags.sum())
        self.seconds += time.perf_counter() - tick
        return data, flags, self.corrected[:count]


@numba.njit(parallel=True, cache=True)
def _correct_rows(data, flags, out, time_index, ant1, ant2, inverse, flagged, feed_p,
                  feed_q):  # pragma: no cover - compiled
    n_rows, n_chan, n_corr = data.shape
    for row in numba.prange(n_rows):
        t, i, j = time_index[row], ant1[row], ant2[row]
        for c in range(n_chan):
            for k in range(n_corr):
                p, q = feed_p[k], feed_q[k]
                if flagged[t, i, c, p] or flagged[t, j, c, q]:
                    flags[row, c, k] = True
                    out[row, c, k] = data[row, c, k]
                else:
                    out[row, c, k] = data[row, c, k] * inverse[t, i, c, p] * np.conj(inverse[t, j, c, q])
