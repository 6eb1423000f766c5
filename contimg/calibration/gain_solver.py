"""Antenna gains against MODEL_DATA in one pass over the MS (the own `gaincal`).

CASA `gaincal` re-reads the whole MS for every table (≈ 23 s each on a full group here).
The gains of a drift-scan group need much less: after the earlier tables (delay,
bandpass) are divided out, each baseline and integration reduces to two numbers per
feed, the model-normalised visibility and its weight

    X_ij = Σ_c w V'_ij(c) M*_ij(c) / Σ_c w |M_ij(c)|²,   W_ij = Σ_c w |M_ij(c)|²,

(exact for a gain constant over the channels: Σ w |V − g M|² differs from
W |X − g|² by a constant). Every solution interval then sums X·W and W over its
integrations, and the gains g_i solving min Σ W_ij |X_ij − g_i g_j*|² come from
StEFCal (Salvini & Wijnholds 2014), phase-only by keeping |g| = 1. Gains solved in
sequence (phase-only over the group, then amplitude+phase per minute) reuse the same
reduction: a gain constant over an interval divides X and leaves W unchanged when |g| = 1.

Per solution, as CASA writes it: the phase referred to the reference antenna, an SNR
|g| / σ_g with σ_g² = σ² / Σ_j W_ij |g_j|² and σ² the weighted residual per degree of
freedom of an amplitude+phase fit, flagged below `minsnr` or with fewer than
`min_baselines` baselines to other usable antennas.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
from casacore import tables

from contimg.calibration.jones import ms_frame, total_jones

ROWS_PER_CHUNK = 8192
MAX_ITERATIONS = 200
TOLERANCE = 1e-10


@dataclass(frozen=True)
class Reduced:
    """One MS reduced to model-normalised visibilities per row and parallel-hand feed."""

    times: np.ndarray  # unique integration times (MJD seconds)
    time_index: np.ndarray  # per row
    ant1: np.ndarray
    ant2: np.ndarray
    xw: np.ndarray  # (row, feed) Σ w V' M*
    w: np.ndarray  # (row, feed) Σ w |M|²
    n_antennas: int
    field_id: int
    scan: int
    freqs_hz: np.ndarray


@dataclass(frozen=True)
class GainSolution:
    """Gains per solution interval, antenna and feed, as a CASA G table holds them."""

    times: np.ndarray  # (interval,) centroid of the integrations solved
    intervals_s: np.ndarray  # (interval,)
    gains: np.ndarray  # (interval, antenna, feed) complex
    errors: np.ndarray  # (interval, antenna, feed)
    snr: np.ndarray
    flags: np.ndarray
    refant: int


def reduce_ms(ms: Path, applied: list[str]) -> Reduced:
    """Read DATA, MODEL_DATA, FLAG and WEIGHT once; divide the `applied` tables out."""
    frame = ms_frame(ms)
    products, freqs, n_antennas = frame.corr_products, frame.freqs_hz, frame.n_antennas
    parallel = np.flatnonzero(products[:, 0] == products[:, 1])
    feeds = products[parallel, 0].astype(np.int32)
    with tables.table(str(ms), ack=False) as main:
        row_times = main.getcol("TIME")
        ant1 = main.getcol("ANTENNA1").astype(np.int32)
        ant2 = main.getcol("ANTENNA2").astype(np.int32)
        times, time_index = np.unique(row_times, return_inverse=True)
        time_index = time_index.astype(np.int32)
        jones, bad = total_jones(applied, times, n_antennas, freqs, frame.n_feeds)
        n_rows = main.nrows()
        xw = np.zeros((n_rows, parallel.size), np.complex128)
        w = np.zeros((n_rows, parallel.size), np.float64)
        for start in range(0, n_rows, ROWS_PER_CHUNK):
            count = min(ROWS_PER_CHUNK, n_rows - start)
            rows = slice(start, start + count)
            _reduce_rows(main.getcol("DATA", start, count), main.getcol("MODEL_DATA", start, count),
                         main.getcol("FLAG", start, count), main.getcol("WEIGHT", start, count),
                         time_index[rows], ant1[rows], ant2[rows], jones, bad,
                         parallel.astype(np.int32), feeds, xw[rows], w[rows])
        field_id = int(main.getcell("FIELD_ID", 0))
        scan = int(main.getcell("SCAN_NUMBER", 0))
    return Reduced(times, time_index, ant1, ant2, xw, w, n_antennas, field_id, scan, freqs)


@numba.njit(parallel=True, cache=True)
def _reduce_rows(data, model, flags, weights, time_index, ant1, ant2, jones, bad, corrs, feeds,
                 xw, w):  # pragma: no cover - compiled
    n_rows, n_chan, _ = data.shape
    for row in numba.prange(n_rows):
        i, j, t = ant1[row], ant2[row], time_index[row]
        if i == j:
            continue
        for k in range(corrs.size):
            corr, feed = corrs[k], feeds[k]
            weight = weights[row, corr]
            acc = 0j
            norm = 0.0
            for c in range(n_chan):
                if flags[row, c, corr] or bad[t, i, c, feed] or bad[t, j, c, feed]:
                    continue
                m = model[row, c, corr]
                v = data[row, c, corr] / (jones[t, i, c, feed] * np.conj(jones[t, j, c, feed]))
                acc += weight * v * np.conj(m)
                norm += weight * (m.real * m.real + m.imag * m.imag)
            xw[row, k] = acc
            w[row, k] = norm


def solution_bins(times: np.ndarray, solint: str) -> np.ndarray:
    """The solution interval of each integration: `inf` (one), `int` (each), `<N>s` or
    `<N>min` (intervals from the first integration, as CASA bins them)."""
    if solint == "inf":
        return np.zeros(times.size, np.int64)
    if solint == "int":
        return np.arange(times.size)
    if solint.endswith("min"):
        seconds = 60.0 * float(solint[:-3])
    elif solint.endswith("s"):
        seconds = float(solint[:-1])
    else:
        raise ValueError(f"solution interval {solint!r}: use 'inf', 'int', seconds like '60s' "
                         "or minutes like '2min'")
    raw = np.floor((times - times[0]) / seconds + 1e-9).astype(np.int64)
    return np.unique(raw, return_inverse=True)[1]


def solve(reduced: Reduced, solint: str, *, phase_only: bool, refant: int, minsnr: float = 3.0,
          min_baselines: int = 4, prior: GainSolution | None = None) -> GainSolution:
    """Gains per interval of `solint`; `prior` (a phase-only, one-interval solution) is
    divided out first, as CASA applies an earlier table."""
    xw, w = reduced.xw, reduced.w
    if prior is not None:
        g = prior.gains[0]  # (antenna, feed), unit amplitude
        xw = xw / (g[reduced.ant1] * np.conj(g[reduced.ant2]))
    bins = solution_bins(reduced.times, solint)
    n_bins, n_feeds = int(bins.max()) + 1, xw.shape[1]
    shape = (n_bins, reduced.n_antennas, n_feeds)
    gains = np.ones(shape, np.complex128)
    errors, snr = np.zeros(shape), np.zeros(shape)
    flags = np.ones(shape, bool)
    row_bins = bins[reduced.time_index]
    centroids = np.array([reduced.times[bins == b].mean() for b in range(n_bins)])
    intervals = np.array([np.ptp(reduced.times[bins == b]) for b in range(n_bins)])
    for b in range(n_bins):
        rows = row_bins == b
        for f in range(n_feeds):
            x_mat, w_mat = _baseline_matrices(reduced.ant1[rows], reduced.ant2[rows], xw[rows, f],
                                              w[rows, f], reduced.n_antennas)
            gains[b, :, f], errors[b, :, f], snr[b, :, f], flags[b, :, f] = _solve_one(
                x_mat, w_mat, phase_only, refant, minsnr, min_baselines)
    return GainSolution(centroids, intervals, gains, errors, snr, flags, refant)


def _baseline_matrices(ant1: np.ndarray, ant2: np.ndarray, xw: np.ndarray, w: np.ndarray,
                       n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hermitian X (weighted mean per baseline) and symmetric W (antenna x antenna)."""
    xw_mat = np.zeros((n, n), np.complex128)
    w_mat = np.zeros((n, n))
    np.add.at(xw_mat, (ant1, ant2), xw)
    np.add.at(w_mat, (ant1, ant2), w)
    xw_mat = xw_mat + xw_mat.conj().T
    w_mat = w_mat + w_mat.T
    x_mat = np.divide(xw_mat, w_mat, out=np.zeros_like(xw_mat), where=w_mat > 0)
    return x_mat, w_mat


def _solve_one(x: np.ndarray, w: np.ndarray, phase_only: bool, refant: int, minsnr: float,
               min_baselines: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = x.shape[0]
    usable = _usable_antennas(w, min_baselines)
    gains, errors, snr = np.ones(n, np.complex128), np.zeros(n), np.zeros(n)
    flags = ~usable
    if usable.sum() < 2:
        return gains, errors, snr, np.ones(n, bool)
    x, w = x[np.ix_(usable, usable)], w[np.ix_(usable, usable)]
    free = _stefcal(x, w, phase_only=False)
    g = _stefcal(x, w, phase_only=True) if phase_only else free
    # The noise comes from the amplitude+phase fit even for phase-only gains: an
    # amplitude error not yet solved is not noise.
    upper = np.triu(np.ones_like(w, bool), 1)
    residual = float(np.sum((w * np.abs(x - np.outer(free, free.conj())) ** 2)[upper]))
    sigma2 = residual / max(int(np.count_nonzero(w[upper] > 0)) - 2 * g.size, 1)
    err = np.sqrt(sigma2 / np.maximum(w @ np.abs(g) ** 2, 1e-300))
    index = np.flatnonzero(usable)
    reference = _reference(index, refant, w)
    g = g * np.exp(-1j * np.angle(g[reference]))
    gains[index], errors[index] = g, err
    snr[index] = np.abs(g) / np.maximum(err, 1e-300)
    flags[index] = snr[index] < minsnr
    return gains, errors, snr, flags


def _usable_antennas(w: np.ndarray, min_baselines: int) -> np.ndarray:
    """Antennas with at least `min_baselines` weighted baselines to other usable ones."""
    usable = (w > 0).sum(axis=1) >= min_baselines
    while True:
        counts = ((w > 0) & usable[None, :]).sum(axis=1)
        still = usable & (counts >= min_baselines)
        if (still == usable).all():
            return still
        usable = still


def _reference(index: np.ndarray, refant: int, w: np.ndarray) -> int:
    """Position of the reference antenna among the usable ones (else the best-connected)."""
    where = np.flatnonzero(index == refant)
    return int(where[0]) if where.size else int(np.argmax(w.sum(axis=1)))


def _stefcal(x: np.ndarray, w: np.ndarray, *, phase_only: bool) -> np.ndarray:
    g = np.ones(x.shape[0], np.complex128)
    wx = w * x
    for iteration in range(MAX_ITERATIONS):
        new = (wx @ g) / np.maximum(w @ (np.abs(g) ** 2), 1e-300)
        if phase_only:
            new = new / np.maximum(np.abs(new), 1e-300)
        if iteration % 2:
            new = 0.5 * (new + g)
            if phase_only:
                new = new / np.maximum(np.abs(new), 1e-300)
        change = np.linalg.norm(new - g) / max(np.linalg.norm(new), 1e-300)
        g = new
        if change < TOLERANCE:
            break
    return g
