"""What the imager had to work with, from one pass over FLAG and WEIGHT: the visibility
weight per integration and channel (the primary beam is averaged with it), the unflagged
sample count (the radiometer equation), and the flagged fraction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from casacore import tables

ROWS_PER_CHUNK = 16384


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
        for start in range(0, main.nrows(), ROWS_PER_CHUNK):
            count = min(ROWS_PER_CHUNK, main.nrows() - start)
            cross = main.getcol("ANTENNA1", start, count) != main.getcol("ANTENNA2", start, count)
            good = ~main.getcol("FLAG", start, count)[cross]  # (row, chan, corr)
            row_weight = main.getcol("WEIGHT", start, count)[cross]  # (row, corr)
            n_corr = good.shape[-1]
            unflagged += int(good.sum())
            total += good.size
            per_channel = (good * row_weight[:, None, :]).sum(axis=2)  # (row, chan)
            chunk_times = time_index[start:start + count][cross]
            for t in np.unique(chunk_times):  # a few integrations per chunk (time-ordered rows)
                weight[t] += per_channel[chunk_times == t].sum(axis=0)
    return Coverage(times, freqs, width, interval, weight, unflagged, total, n_corr)
