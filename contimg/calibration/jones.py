"""Calibration tables read into per-integration, per-antenna, per-channel Jones terms.

The own apply (`contimg.calibration.apply`) needs, for every integration t of an MS,
antenna a, channel c and feed p, the product of every table's gain J[t, a, c, p] and
whether any of them is flagged. The rules follow CASA `applycal` (the reference the
tests compare with, to 1e-5):

- delay K (`FPARAM`, ns): exp(2πi τ (ν − ν_ref)), ν_ref the K table's own (band-centre)
  channel frequency;
  nearest solution in time.
- bandpass B (`CPARAM` per channel): nearest solution in time; a flagged channel flags
  the data of that channel.
- gains G (`CPARAM`, one value over the band): linear in time, amplitude and phase
  interpolated apart (the phase across the shorter arc), the end solutions held beyond
  the first and last; flagged solutions are skipped; an antenna with no unflagged
  solution flags its data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from casacore import tables

TIME_MATCH_S = 0.5  # solutions closer than this to an integration are that integration's


@dataclass(frozen=True)
class MsFrame:
    """What applying or solving needs from an MS's subtables."""

    n_antennas: int
    freqs_hz: np.ndarray  # the single window's channel frequencies
    corr_products: np.ndarray  # (corr, 2): the feeds of antenna 1 and antenna 2

    @property
    def n_feeds(self) -> int:
        """Feeds per antenna (2 for X and Y)."""
        return int(self.corr_products.max()) + 1


def ms_frame(ms: Path) -> MsFrame:
    """Antenna count, channel frequencies and correlation products of a one-window MS."""
    with tables.table(str(ms / "ANTENNA"), ack=False) as antennas:
        n_antennas = antennas.nrows()
    with tables.table(str(ms / "SPECTRAL_WINDOW"), ack=False) as spw:
        if spw.nrows() != 1:
            raise ValueError(f"{ms}: {spw.nrows()} spectral windows; the own solver and apply "
                             "handle the platform's one-window MS (convert the group with "
                             "contimg, or calibrate this MS with CASA gaincal/applycal).")
        freqs = spw.getcol("CHAN_FREQ")[0]
    with tables.table(str(ms / "POLARIZATION"), ack=False) as pol:
        products = pol.getcol("CORR_PRODUCT")[0]
    return MsFrame(n_antennas, freqs, products)


@dataclass(frozen=True)
class CalTable:
    """One calibration table's solutions, as read."""

    path: Path
    kind: str  # K, B or G (CASA's VisCal type)
    times: np.ndarray  # (row,) seconds (MJD)
    antennas: np.ndarray  # (row,)
    values: np.ndarray  # (row, chan, feed): complex gains, or delays in ns for K
    flags: np.ndarray  # (row, chan, feed)
    ref_freq_hz: float


def read_table(path: Path) -> CalTable:
    """A CASA calibration table (K, B, G types) as arrays."""
    with tables.table(str(path), ack=False) as table:
        kind = str(table.getkeyword("VisCal")).split()[0][0]
        value_column = "FPARAM" if kind == "K" else "CPARAM"
        values = table.getcol(value_column)
        flags = table.getcol("FLAG")
        times = table.getcol("TIME")
        antennas = table.getcol("ANTENNA1")
    with tables.table(str(Path(path) / "SPECTRAL_WINDOW"), ack=False) as spw:
        # CASA refers a delay to the frequency its solve averaged to (the table's channel),
        # not to the window's REF_FREQUENCY (measured against applycal).
        ref_freq = float(np.mean(spw.getcol("CHAN_FREQ")[0]))
    if kind not in "KBG":
        raise ValueError(f"{path}: calibration type {kind!r} is not one the own apply knows "
                         "(K, B, G); apply it with CASA applycal.")
    return CalTable(Path(path), kind, times, antennas, values, flags, ref_freq)


def total_jones(paths: list[str] | tuple[str, ...], times: np.ndarray, n_antennas: int,
                freqs_hz: np.ndarray, n_feeds: int) -> tuple[np.ndarray, np.ndarray]:
    """(J, flagged): J[t, a, c, p] complex64, the product of every table's term at each of
    `times`; flagged[t, a, c, p] where any table has no usable solution."""
    jones = np.ones((times.size, n_antennas, freqs_hz.size, n_feeds), np.complex128)
    flagged = np.zeros(jones.shape, bool)
    for path in paths:
        table = read_table(Path(path))
        term, bad = _table_terms(table, times, n_antennas, freqs_hz, n_feeds)
        jones *= term
        flagged |= bad
    return jones.astype(np.complex64), flagged


def _table_terms(table: CalTable, times: np.ndarray, n_antennas: int, freqs_hz: np.ndarray,
                 n_feeds: int) -> tuple[np.ndarray, np.ndarray]:
    shape = (times.size, n_antennas, freqs_hz.size, n_feeds)
    term = np.ones(shape, np.complex128)
    bad = np.ones(shape, bool)  # an antenna the table does not list is flagged
    for antenna in np.unique(table.antennas):
        if antenna >= n_antennas:
            continue
        rows = np.flatnonzero(table.antennas == antenna)
        for feed in range(n_feeds):
            source = min(feed, table.values.shape[-1] - 1)
            values = table.values[rows, :, source]
            flags = table.flags[rows, :, source]
            if table.kind == "G":
                term[:, antenna, :, feed] = _gain_in_time(table.times[rows], values[:, 0],
                                                          flags[:, 0], times)[:, None]
                bad[:, antenna, :, feed] = flags[:, 0].all()
                continue
            nearest = _nearest_rows(table.times[rows], times)
            chosen, chosen_flags = values[nearest], flags[nearest]  # (t, chan)
            if table.kind == "K":
                delay_s = chosen[:, 0] * 1e-9
                term[:, antenna, :, feed] = np.exp(
                    2j * np.pi * delay_s[:, None] * (freqs_hz[None, :] - table.ref_freq_hz))
                bad[:, antenna, :, feed] = chosen_flags[:, :1]
            else:
                term[:, antenna, :, feed] = chosen
                bad[:, antenna, :, feed] = chosen_flags
    return term, bad


def _nearest_rows(solution_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index into `solution_times` of the nearest solution to each time."""
    return np.abs(solution_times[None, :] - times[:, None]).argmin(axis=1)


def _gain_in_time(solution_times: np.ndarray, values: np.ndarray, flags: np.ndarray,
                  times: np.ndarray) -> np.ndarray:
    """One antenna and feed's gain at `times`: linear in amplitude and phase between
    unflagged solutions, held at the ends."""
    good = ~flags
    if not good.any():
        return np.ones(times.size, np.complex128)
    t, v = solution_times[good], values[good].astype(np.complex128)
    order = np.argsort(t)
    t, v = t[order], v[order]
    if t.size == 1:
        return np.full(times.size, v[0])
    right = np.clip(np.searchsorted(t, times), 1, t.size - 1)
    left = right - 1
    frac = np.clip((times - t[left]) / (t[right] - t[left]), 0.0, 1.0)
    amp = (1 - frac) * np.abs(v[left]) + frac * np.abs(v[right])
    phase = np.angle(v[left]) + frac * np.angle(v[right] / v[left])
    return amp * np.exp(1j * phase)
