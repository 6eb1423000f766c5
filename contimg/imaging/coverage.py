"""What the imager had to work with, from one pass over UVW, FLAG and WEIGHT: the visibility
weight per integration and channel (the primary beam is averaged with it), the unflagged
sample count (the radiometer equation), a channel-subsample of the weighted uv points (how
much the imaging weights raise the noise), and the flagged fraction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from casacore import tables

from contimg.imaging.weighting import weighting_noise_factor
from contimg.instrument import SPEED_OF_LIGHT_M_S

ROWS_PER_CHUNK = 16384
MAX_UV_SAMPLES = 4_000_000  # enough for the weighting factor to ~0.1 %, ~50 MB


@dataclass(frozen=True)
class Coverage:
    """Cross-correlation weights of one MS."""

    times_mjd_s: np.ndarray  # unique integration times
    freqs_hz: np.ndarray
    channel_width_hz: float
    integration_s: float
    weight: np.ndarray  # (time, channel): Σ WEIGHT over unflagged baselines and correlations
    unflagged_samples: int  # (baseline, time, channel, correlation) samples not flagged
    total_samples: int
    n_correlations: int
    uv_samples: np.ndarray  # (n, 3) float32: u, v (wavelengths), weight; a channel subsample

    @property
    def flagged_fraction(self) -> float:
        """Flagged share of the cross-correlation samples."""
        return 1.0 - self.unflagged_samples / self.total_samples if self.total_samples else 1.0

    def expected_image_rms_jy(self, sefd_jy: float) -> float:
        """Radiometer-equation noise of a naturally weighted Stokes I image:
        SEFD / sqrt(2 Δν τ N), N the unflagged (baseline, time, channel, polarisation)
        samples (each visibility's real part has SEFD / sqrt(2 Δν τ); Stokes I averages
        the two polarisations)."""
        if self.unflagged_samples == 0:
            return float("inf")
        return float(sefd_jy / np.sqrt(2.0 * self.channel_width_hz * self.integration_s
                                       * self.unflagged_samples))

    def weighting_noise_factor(self, *, size: int, cell_arcsec: float, weighting: str,
                               robust: float) -> float:
        """The image noise under that weighting over natural weighting's (≥ 1)."""
        u, v, weight = self.uv_samples.T
        return weighting_noise_factor(u, v, weight, size=size, cell_arcsec=cell_arcsec,
                                      weighting=weighting, robust=robust)


def measure_coverage(ms: Path) -> Coverage:
    """Read TIME, ANTENNA1/2, FLAG and WEIGHT once (in chunks)."""
    ms = Path(ms)
    with tables.table(str(ms / "SPECTRAL_WINDOW"), ack=False) as spw:
        freqs = spw.getcol("CHAN_FREQ")[0]
        width = float(np.abs(spw.getcol("CHAN_WIDTH")[0]).mean())
    with tables.table(str(ms), ack=False) as main:
        row_times = main.getcol("TIME")
        times, time_index = np.unique(row_times, return_inverse=True)
        interval = float(np.median(main.getcol("INTERVAL")))
        weight = np.zeros((times.size, freqs.size))
        unflagged = total = 0
        n_corr = 0
        stride = max(1, int(np.ceil(main.nrows() * freqs.size / MAX_UV_SAMPLES)))
        per_metre = freqs[::stride] / SPEED_OF_LIGHT_M_S  # wavelengths per metre
        samples = []
        for start in range(0, main.nrows(), ROWS_PER_CHUNK):
            count = min(ROWS_PER_CHUNK, main.nrows() - start)
            cross = main.getcol("ANTENNA1", start, count) != main.getcol("ANTENNA2", start, count)
            good = ~main.getcol("FLAG", start, count)[cross]  # (row, chan, corr)
            row_weight = main.getcol("WEIGHT", start, count)[cross]  # (row, corr)
            n_corr = good.shape[-1]
            unflagged += int(good.sum())
            total += good.size
            per_channel = (good * row_weight[:, None, :]).sum(axis=2)  # (row, chan)
            samples.append(_uv_samples(main.getcol("UVW", start, count)[cross], per_metre,
                                       per_channel[:, ::stride]))
            chunk_times = time_index[start:start + count][cross]
            for t in np.unique(chunk_times):  # a few integrations per chunk (time-ordered rows)
                weight[t] += per_channel[chunk_times == t].sum(axis=0)
    uv = np.concatenate(samples) if samples else np.zeros((0, 3), np.float32)
    return Coverage(times, freqs, width, interval, weight, unflagged, total, n_corr, uv)


def _uv_samples(uvw_m: np.ndarray, per_metre: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(u, v, weight) of every (row, channel) with weight, u and v in wavelengths."""
    keep = weight > 0
    rows, channels = np.nonzero(keep)
    u = uvw_m[rows, 0] * per_metre[channels]
    v = uvw_m[rows, 1] * per_metre[channels]
    return np.stack([u, v, weight[keep]], axis=1).astype(np.float32)
