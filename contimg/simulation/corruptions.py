"""Instrumental corruptions: slowly drifting antenna gains and per-antenna bandpasses.

The parameters depend only on the seed, and gains are smooth functions of absolute
time, so consecutive groups see continuously drifting gains (as a real array does):
a solution from one group describes the next one approximately, not exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Corruptions:
    """Gain-drift parameters per (antenna, pol) and bandpass per (antenna, channel, pol)."""

    amp0: np.ndarray
    phase0: np.ndarray
    drift_amp_rad: np.ndarray
    drift_period_days: np.ndarray
    drift_phase: np.ndarray
    bandpass: np.ndarray  # (Nant, Nchan over the whole band in file order, Npol)
    amp_drift_frac: float = 0.03  # slow amplitude drift (0 when corruptions are off)

    def gains(self, mjd: np.ndarray) -> np.ndarray:
        """Complex gains at the given times, shape (Ntimes, Nant, Npol)."""
        t = np.asarray(mjd, float)[:, None, None]
        angle = 2 * np.pi * t / self.drift_period_days + self.drift_phase
        amplitude = self.amp0 * (1.0 + self.amp_drift_frac * np.sin(angle))
        phase = self.phase0 + self.drift_amp_rad * np.sin(angle)
        gains = amplitude * np.exp(1j * phase)
        # The first antenna is the phase reference: its gain is real.
        gains[:, 0, :] = np.abs(gains[:, 0, :])
        return gains


def draw_corruptions(seed: int, n_antennas: int, freqs_hz: np.ndarray, n_pols: int = 2,
                     *, enabled: bool = True) -> Corruptions:
    """Random but physically shaped corruptions for a seed; all ones when disabled."""
    shape = (n_antennas, n_pols)
    if not enabled:
        zeros = np.zeros(shape)
        # Unit gains at every time: no drift either (it once kept a 3% amplitude wobble).
        return Corruptions(np.ones(shape), zeros, zeros, np.ones(shape), zeros,
                           np.ones((n_antennas, freqs_hz.size, n_pols), np.complex128),
                           amp_drift_frac=0.0)
    rng = np.random.default_rng([seed, 7])
    x = (freqs_hz - freqs_hz.mean()) / max(float(np.ptp(freqs_hz)), 1.0)
    ripple_amp = rng.normal(0.0, 0.05, (n_antennas, 1, n_pols))
    ripple_period = rng.uniform(0.2, 0.6, (n_antennas, 1, n_pols))
    delay_s = rng.normal(0.0, 1.0e-9, (n_antennas, 1, n_pols))
    amplitude = 1.0 + ripple_amp * np.sin(2 * np.pi * x[None, :, None] / ripple_period)
    phase = 2 * np.pi * delay_s * (freqs_hz[None, :, None] - freqs_hz.mean())
    return Corruptions(
        amp0=rng.normal(1.0, 0.1, shape),
        phase0=rng.uniform(-np.pi, np.pi, shape),
        drift_amp_rad=np.radians(rng.uniform(5.0, 30.0, shape)),
        drift_period_days=rng.uniform(2.0, 6.0, shape) / 24.0,
        drift_phase=rng.uniform(0, 2 * np.pi, shape),
        bandpass=amplitude * np.exp(1j * phase),
    )
