"""Simulated radio-frequency interference: persistent narrow-band channels and broadband bursts.

Two kinds, the two a flagger must find at DSA-110:

- persistent narrow-band: a few channels carry a strong carrier during the whole group
  (satellites, aircraft navigation, mobile-phone bands), amplitude wandering by +-30 %
  from one integration to the next;
- broadband bursts: one integration across a wide contiguous stretch of the band
  (lightning, arcing power lines, a vehicle ignition).

The interferer is far away and unresolved, so on every baseline it is the same complex
amplitude A(t, f) times a geometric phase exp(2 pi i f (tau_i - tau_j)) from a random
delay per antenna; autocorrelations gain the power |A| (real). Amplitudes are set in
units of the thermal noise sigma (per real/imaginary part) of one visibility, so "strong"
means the same at every preset. Everything follows from (seed, group index).

The truth is a boolean mask per (integration, channel) with channels in ascending
frequency (the MS order); a sample is contaminated on every baseline (autocorrelations
included) and in both polarisations exactly when the mask is true. `RfiPlan.save` writes
it to `<truth>/<group>_rfi.npz` (keys: mask, amplitude_jy, freqs_hz, mjd,
noise_sigma_jy, persistent_channels, burst_integrations).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

REFERENCE_SEFD_JY = 5800.0  # sets the amplitude scale when noise is switched off (sefd 0)
PERSISTENT_FRACTION = 0.015  # share of channels with a persistent carrier (at least 2)
PERSISTENT_SNR = (10.0, 30.0)  # amplitude range in units of the noise sigma
N_BURSTS = 2  # broadband bursts per group (one integration each)
BURST_SNR = (8.0, 20.0)
BURST_MIN_BAND_FRACTION = 0.3  # a burst covers at least this share of the band
ANTENNA_DELAY_S = 1.0e-6  # spread of the interferer's geometric delay per antenna


@dataclass(frozen=True)
class RfiPlan:
    """The RFI of one group over the whole band, channels in file order (as `all_freqs`)."""

    amplitude_jy: np.ndarray  # (Ntimes, Nchan) real, 0 where clean
    freqs_hz: np.ndarray  # (Nchan,) file order (sb00 first, descending inside each subband)
    antenna_delay_s: np.ndarray  # (Nant,) geometric delay of the interferer per antenna
    noise_sigma_jy: float
    persistent_channels: np.ndarray  # indices into freqs_hz
    burst_integrations: np.ndarray

    def visibilities(self, time_index: np.ndarray, a1: np.ndarray, a2: np.ndarray,
                     channels: slice) -> np.ndarray:
        """RFI to add to one subband, shape (Nblt, Nchan_subband, 1) (same in both pols).

        `a1`, `a2` index `antenna_delay_s` (positions in the simulated station list).
        """
        amplitude = self.amplitude_jy[time_index, channels]
        freqs = self.freqs_hz[channels]
        delay = self.antenna_delay_s[a1] - self.antenna_delay_s[a2]
        phase = np.exp(2j * np.pi * delay[:, None] * freqs[None, :])
        rfi = amplitude * phase
        autos = a1 == a2
        rfi[autos] = amplitude[autos]  # power, real and positive on an autocorrelation
        return rfi[:, :, None].astype(np.complex64)

    def truth_mask(self) -> tuple[np.ndarray, np.ndarray]:
        """(mask (Ntimes, Nchan), freqs) with channels in ascending frequency (MS order)."""
        order = np.argsort(self.freqs_hz)
        return self.amplitude_jy[:, order] > 0, self.freqs_hz[order]

    def save(self, path: Path, mjd: np.ndarray) -> Path:
        """Write the flagged truth (see the module docstring for the keys)."""
        mask, freqs = self.truth_mask()
        order = np.argsort(self.freqs_hz)
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)  # file-order channel -> ascending channel
        np.savez(path, mask=mask, amplitude_jy=self.amplitude_jy[:, order], freqs_hz=freqs,
                 mjd=np.asarray(mjd), noise_sigma_jy=self.noise_sigma_jy,
                 persistent_channels=np.sort(rank[self.persistent_channels]),
                 burst_integrations=self.burst_integrations)
        return path


def noise_sigma_jy(sefd_jy: float, channel_width_hz: float, integration_s: float) -> float:
    """Thermal noise per real/imaginary part of one visibility (the radiometer equation)."""
    sefd = sefd_jy if sefd_jy > 0 else REFERENCE_SEFD_JY
    return float(sefd / np.sqrt(2.0 * abs(channel_width_hz) * integration_s))


def draw_rfi(seed: int, group_index: int, n_times: int, freqs_hz: np.ndarray, n_antennas: int,
             sigma_jy: float) -> RfiPlan:
    """The RFI of one group, deterministic from (seed, group index)."""
    rng = np.random.default_rng([seed, 11, group_index])
    n_chan = freqs_hz.size
    amplitude = np.zeros((n_times, n_chan))
    persistent = _persistent_channels(rng, freqs_hz)
    snr = rng.uniform(*PERSISTENT_SNR, persistent.size)
    wander = rng.uniform(0.7, 1.3, (n_times, persistent.size))
    amplitude[:, persistent] += snr[None, :] * wander * sigma_jy
    bursts = rng.choice(n_times, size=min(N_BURSTS, n_times), replace=False)
    for when in bursts:
        low, high = _burst_span(rng, freqs_hz)
        in_burst = (freqs_hz >= low) & (freqs_hz <= high)
        level = rng.uniform(*BURST_SNR) * sigma_jy
        amplitude[when, in_burst] += level * rng.uniform(0.7, 1.3, int(in_burst.sum()))
    delays = rng.uniform(-ANTENNA_DELAY_S, ANTENNA_DELAY_S, n_antennas)
    return RfiPlan(amplitude, np.asarray(freqs_hz, float), delays, sigma_jy, persistent,
                   np.sort(bursts))


def _persistent_channels(rng: np.random.Generator, freqs_hz: np.ndarray) -> np.ndarray:
    """Distinct channels away from the band edges (edges are the bandpass's business)."""
    n_chan = freqs_hz.size
    count = max(2, round(PERSISTENT_FRACTION * n_chan))
    inner = np.argsort(freqs_hz)[2:-2] if n_chan > 8 else np.arange(n_chan)
    return np.sort(rng.choice(inner, size=min(count, inner.size), replace=False))


def _burst_span(rng: np.random.Generator, freqs_hz: np.ndarray) -> tuple[float, float]:
    """A contiguous frequency range covering at least BURST_MIN_BAND_FRACTION of the band."""
    low_band, high_band = float(freqs_hz.min()), float(freqs_hz.max())
    width = (high_band - low_band) * rng.uniform(BURST_MIN_BAND_FRACTION, 1.0)
    low = low_band + rng.uniform(0.0, (high_band - low_band) - width)
    return low, low + width
