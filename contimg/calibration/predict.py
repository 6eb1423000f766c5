"""MODEL_DATA of a contimg MS from sky-model components (what CASA `ft` would write, plus the beam).

For each row (baseline, integration) and channel:

    V(u, v, w, ν) = Σ_k S_k(ν) · A_k(t, ν) · exp(+2πi ν/c · (u l_k + v m_k + w (n_k - 1)))

with (u, v, w) the row's MS UVW in metres, (l, m, n) the direction cosines of component k
relative to the FIELD PHASE_DIR (exact, no small-angle terms), S_k(ν) = S₁.₄ (ν/1.4 GHz)^α
and A_k(t, ν) the Airy power beam of a 4.65 m dish at the component's offset from the
pointing of that integration (`contimg.calibration.sky_model.DriftPointing`: the sky drifts
through the fixed meridian beam). The sign is the one CASA `ft` writes into MODEL_DATA for
this MS (tests/test_sky_model.py compares with ft); every correlation (XX, YY) gets V, as
for an unpolarised source. The beam can be switched off (`beam=False`) to compare with ft.

Speed: a numba kernel, parallel over rows, runs the channel phasors as a recurrence
(one complex multiply per channel, re-seeded with an exact exponential every
`RESEED_CHANNELS` channels and at every change of channel spacing, so rounding never
accumulates past ~1e-14). Rows go in chunks of whole tiles, so memory stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
from casacore import tables

from contimg.calibration.sky_model import Component, DriftPointing, pointing_from_ms
from contimg.instrument import SPEED_OF_LIGHT_M_S

MODEL_COLUMN = "MODEL_DATA"
ROWS_PER_CHUNK = 8192  # 8 tiles of 1024 rows: ~100 MB of complex64 at 768 channels x 2 pols
RESEED_CHANNELS = 64


@dataclass
class PredictReport:
    """What was written and how long each part took."""

    ms_path: Path
    n_components: int
    n_rows: int
    n_channels: int
    beam: bool
    created_column: bool
    timings_s: dict[str, float] = field(default_factory=dict)


def predict_model_data(ms_path: Path, components: Sequence[Component], *, beam: bool = True,
                       rows_per_chunk: int = ROWS_PER_CHUNK,
                       progress: Callable[[str], None] | None = None) -> PredictReport:
    """Write the components' visibilities into MODEL_DATA of `ms_path` (created if absent)."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    pointing = pointing_from_ms(ms_path)
    freqs = pointing.freqs_hz
    lmn = direction_cosines(components, *np.radians(pointing.phase_centre_deg))
    amplitude = component_amplitudes(components, pointing, beam=beam)  # (K, T, F)
    segments = channel_segments(freqs)
    timings["setup"] = round(time.perf_counter() - started, 3)
    with tables.table(str(ms_path), readonly=False, ack=False) as main:
        created = ensure_model_column(main)
        n_rows = main.nrows()
        n_pols = main.getcell("DATA", 0).shape[1] if n_rows else 0
        compute = write = 0.0
        for start in range(0, n_rows, rows_per_chunk):
            count = min(rows_per_chunk, n_rows - start)
            tick = time.perf_counter()
            uvw = main.getcol("UVW", start, count)
            time_index = np.searchsorted(pointing.times_mjd_s, main.getcol("TIME", start, count))
            model = np.empty((count, freqs.size, n_pols), np.complex64)
            _predict_rows(uvw, time_index.astype(np.int64), lmn, amplitude, freqs, segments, model)
            tock = time.perf_counter()
            main.putcol(MODEL_COLUMN, model, start, count)
            compute += tock - tick
            write += time.perf_counter() - tock
            if progress:
                progress(f"rows {start + count}/{n_rows}")
    timings.update(compute=round(compute, 3), write=round(write, 3),
                   total=round(time.perf_counter() - started, 3))
    return PredictReport(Path(ms_path), len(components), n_rows, int(freqs.size), beam, created, timings)


def direction_cosines(components: Sequence[Component], ra0: float, dec0: float) -> np.ndarray:
    """(K, 3): l, m and n - 1 of each component relative to the phase centre (radians in).

    n - 1 is computed as -(l² + m²) / (1 + n), which keeps its precision for sources
    near the centre (1 - n would lose half the digits)."""
    ra = np.radians([c.ra_deg for c in components])
    dec = np.radians([c.dec_deg for c in components])
    delta = ra - ra0
    l_dir = np.cos(dec) * np.sin(delta)
    m_dir = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(delta)
    n_dir = np.sin(dec) * np.sin(dec0) + np.cos(dec) * np.cos(dec0) * np.cos(delta)
    n_minus_1 = -(l_dir ** 2 + m_dir ** 2) / (1.0 + n_dir)
    return np.stack([l_dir, m_dir, n_minus_1], axis=1).reshape(len(components), 3)


def component_amplitudes(components: Sequence[Component], pointing: DriftPointing, *,
                         beam: bool) -> np.ndarray:
    """(K, T, F) apparent flux of each component per integration and channel."""
    freqs = pointing.freqs_hz
    n_times = pointing.times_mjd_s.size
    spectra = np.array([c.flux_at(freqs) for c in components]).reshape(len(components), freqs.size)
    if not beam or not components:
        shape = (len(components), n_times, freqs.size)
        return np.ascontiguousarray(np.broadcast_to(spectra[:, None, :], shape))
    power = pointing.beam_power(np.array([c.ra_deg for c in components]),
                                np.array([c.dec_deg for c in components]), freqs)
    return np.ascontiguousarray(spectra[:, None, :] * power)


def channel_segments(freqs_hz: np.ndarray, reseed: int = RESEED_CHANNELS) -> np.ndarray:
    """(S, 2) start and stop channel of runs with one channel spacing, at most `reseed` long."""
    bounds = [0]
    for chan in range(1, freqs_hz.size):
        run_start = bounds[-1]
        uniform = chan - run_start < 2 or np.isclose(freqs_hz[chan] - freqs_hz[chan - 1],
                                                     freqs_hz[run_start + 1] - freqs_hz[run_start],
                                                     rtol=1e-9, atol=0.0)
        if chan - run_start >= reseed or not uniform:
            bounds.append(chan)
    bounds.append(freqs_hz.size)
    return np.array([bounds[:-1], bounds[1:]], dtype=np.int64).T.copy()


def ensure_model_column(main) -> bool:
    """Add MODEL_DATA, stored like DATA (tiled, fixed shape), when absent; True if added."""
    if MODEL_COLUMN in main.colnames():
        return False
    data_desc = main.getcoldesc("DATA")
    dminfo = main.getdminfo("DATA")
    shape = list(data_desc.get("shape", main.getcell("DATA", 0).shape))
    coldesc = tables.makearrcoldesc(MODEL_COLUMN, 0j, shape=shape, valuetype="complex",
                                    datamanagertype=dminfo["TYPE"], datamanagergroup="TiledModel")
    spec = dict(dminfo.get("SPEC", {}))
    tile = spec.get("DEFAULTTILESHAPE", spec.get("TileShape"))
    new_dminfo = {"TYPE": dminfo["TYPE"], "NAME": "TiledModel", "SEQNR": 0,
                  "SPEC": {"DEFAULTTILESHAPE": np.asarray(tile)} if tile is not None else {}}
    main.addcols(tables.maketabdesc(coldesc), new_dminfo)
    return True


@numba.njit(parallel=True, fastmath=False, cache=True)
def _predict_rows(uvw, time_index, lmn, amplitude, freqs, segments, out):  # pragma: no cover - jit
    """out[row, chan, :] = Σ_k amplitude[k, t(row), chan] · exp(+2πi ν/c (u l + v m + w (n-1)))."""
    n_rows = uvw.shape[0]
    n_comp = lmn.shape[0]
    n_chan = freqs.shape[0]
    n_pols = out.shape[2]
    two_pi_over_c = 2.0 * np.pi / SPEED_OF_LIGHT_M_S
    for row in numba.prange(n_rows):
        acc = np.zeros(n_chan, np.complex128)
        t = time_index[row]
        for k in range(n_comp):
            delay = two_pi_over_c * (uvw[row, 0] * lmn[k, 0] + uvw[row, 1] * lmn[k, 1]
                                     + uvw[row, 2] * lmn[k, 2])  # radians per Hz
            for s in range(segments.shape[0]):
                first, stop = segments[s, 0], segments[s, 1]
                phase = delay * freqs[first]
                phasor = complex(np.cos(phase), np.sin(phase))
                if stop - first > 1:
                    step_phase = delay * (freqs[first + 1] - freqs[first])
                    step = complex(np.cos(step_phase), np.sin(step_phase))
                else:
                    step = 1.0 + 0.0j
                for chan in range(first, stop):
                    acc[chan] += amplitude[k, t, chan] * phasor
                    phasor *= step
        for chan in range(n_chan):
            value = np.complex64(acc[chan])
            for pol in range(n_pols):
                out[row, chan, pol] = value
