"""The fast converter: a group of UVH5 subband files -> one Measurement Set.

Subbands are read one at a time with h5py (never all 16 in memory), re-phased to
the group's midpoint centre, and written as whole channel tiles with casacore.
Conventions match pyuvdata's `write_ms`: DATA is the complex conjugate of the UVH5
visibilities and UVW is negated (the MS sign convention), WEIGHT is the median
nsample over channels and SIGMA = WEIGHT^-1/2.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from contimg.conversion.dataset_reading import read_whole
from contimg.conversion.group_validation import GroupPlan, SubbandHeader, validate_group
from contimg.conversion.ms_skeleton import AIPS_TO_CASA_CORR, MsDescription, create_ms
from contimg.conversion.rephasing import Rephasing, plan_rephasing
from contimg.instrument import DISH_DIAMETER_M, MJD_OFFSET_JD, SECONDS_PER_DAY

DEFAULT_DISH_M = DISH_DIAMETER_M  # when a file does not say


@dataclass
class ConversionReport:
    """What a conversion produced and how long each part took."""

    ms_path: Path
    n_rows: int
    n_channels: int
    n_subbands: int
    phase_centre_deg: tuple[float, float]
    start_mjd: float
    end_mjd: float
    pointing_dec_deg: float | None
    timings_s: dict[str, float] = field(default_factory=dict)


def convert_group(files: Sequence[Path], ms_path: Path, *, expected_subbands: int | None = 16,
                  allow_missing: bool = False,
                  progress: Callable[[str], None] | None = None,
                  plan: GroupPlan | None = None) -> ConversionReport:
    """Convert one group's files into a new MS at `ms_path` (which must not exist).

    With `allow_missing`, absent subbands become flagged channels (zero data). A caller
    that already validated the group passes its `plan` so the headers are read once.
    """
    clock = _Clock()
    plan = plan or validate_group([Path(f) for f in files], expected_subbands=expected_subbands,
                                  allow_missing=allow_missing)
    clock.lap("validate")
    rephase = plan_rephasing(plan.files[0])
    clock.lap("rephase_plan")
    meta = rephase.metadata
    if ms_path.exists():
        raise FileExistsError(f"{ms_path} already exists; refusing to overwrite it")
    main = create_ms(ms_path, _describe(plan, rephase, ms_path))
    try:
        swap = conjugation_swaps(meta.ant_1, meta.ant_2)
        _write_row_columns(main, rephase, swap)
        clock.lap("metadata_columns")
        offset = plan.n_channels
        weights = np.zeros((meta.n_rows, len(plan.polarizations), len(plan.subbands)), np.float32)
        row_flagged = np.ones(meta.n_rows, bool)
        # Read the next subband on a second thread while this one is rotated and written:
        # at most two subbands are in memory at once.
        shape = (meta.n_rows, 0, len(plan.polarizations))
        pol_order = casa_pol_order(plan.polarizations)
        with ThreadPoolExecutor(max_workers=1) as reader:
            pending = reader.submit(_read_subband, plan.subbands[0], shape)
            for index, sub in enumerate(plan.subbands):
                arrays = pending.result()
                if index + 1 < len(plan.subbands):
                    pending = reader.submit(_read_subband, plan.subbands[index + 1], shape)
                offset -= sub.freqs_hz.size
                weights[:, :, index], flagged = _write_subband(
                    main, arrays, sub.freqs_hz, offset, rephase, pol_order,
                    plan.polarizations[pol_order], swap)
                row_flagged &= flagged
                del arrays
                if progress:
                    name = sub.path.name if sub.path else "missing (flagged)"
                    progress(f"subband {index + 1}/{len(plan.subbands)}: {name}")
        clock.lap("subbands")
        _write_weights(main, weights, row_flagged)
        clock.lap("weights")
    finally:
        main.close()
    times = np.unique(meta.time_jd)
    half = float(np.median(meta.integration_s)) / 2 / SECONDS_PER_DAY
    return ConversionReport(
        ms_path=ms_path, n_rows=meta.n_rows, n_channels=plan.n_channels,
        n_subbands=len(plan.subbands),
        phase_centre_deg=(float(np.degrees(rephase.ra_rad)), float(np.degrees(rephase.dec_rad))),
        start_mjd=float(times[0] - MJD_OFFSET_JD - half),
        end_mjd=float(times[-1] - MJD_OFFSET_JD + half),
        pointing_dec_deg=(float(np.degrees(plan.phase_center_dec))
                          if plan.phase_center_dec is not None else None),
        timings_s=clock.laps,
    )


def _describe(plan: GroupPlan, rephase: Rephasing, ms_path: Path) -> MsDescription:
    meta = rephase.metadata
    location = np.array([meta.location.x.value, meta.location.y.value, meta.location.z.value])
    freqs = np.concatenate([s.freqs_hz for s in plan.subbands])
    widths = np.concatenate([s.channel_width_hz for s in plan.subbands])
    order = np.argsort(freqs)
    times_s = (np.unique(meta.time_jd) - MJD_OFFSET_JD) * SECONDS_PER_DAY
    half = float(np.median(meta.integration_s)) / 2
    order_ants = np.argsort(meta.antenna_numbers)  # ANTENNA table rows, by antenna number
    diameters = np.nan_to_num(meta.antenna_diameters_m[order_ants], nan=DEFAULT_DISH_M)
    return MsDescription(
        telescope_name=meta.telescope_name,
        antenna_names=[meta.antenna_names[i] for i in order_ants],
        antenna_itrf_m=meta.antenna_positions_m[order_ants] + location, dish_diameter_m=diameters,
        freqs_hz=freqs[order], channel_width_hz=widths[order],
        polarizations=plan.polarizations[casa_pol_order(plan.polarizations)],
        field_name=ms_path.stem,
        ra_rad=rephase.ra_rad, dec_rad=rephase.dec_rad,
        time_range_mjd_s=(float(times_s[0] - half), float(times_s[-1] + half)),
        channels_per_tile=int(plan.subbands[0].freqs_hz.size),
    )


def conjugation_swaps(ant_1: np.ndarray, ant_2: np.ndarray) -> np.ndarray | None:
    """Rows to flip to ant1 < ant2 when the file mixes both orders (CASA tasks dislike
    mixed conjugation; pyuvdata's writer does the same), else None."""
    if np.any(ant_1 < ant_2) and np.any(ant_1 > ant_2):
        return ant_1 > ant_2
    return None


def _write_row_columns(main, rephase: Rephasing, swap: np.ndarray | None) -> None:
    meta = rephase.metadata
    n_rows = meta.n_rows
    main.addrows(n_rows)
    time_s = (meta.time_jd - MJD_OFFSET_JD) * SECONDS_PER_DAY
    main.putcol("TIME", time_s)
    main.putcol("TIME_CENTROID", time_s)
    main.putcol("INTERVAL", meta.integration_s)
    main.putcol("EXPOSURE", meta.integration_s)
    # ANTENNA1/2 index rows of the ANTENNA table, which lists antennas by number
    # (for DSA-110, numbers 0..116 are their own rows).
    numbers = np.sort(meta.antenna_numbers)
    ant_1, ant_2, uvw = meta.ant_1, meta.ant_2, -rephase.uvw_m  # MS: negative of pyuvdata's
    if swap is not None:
        ant_1, ant_2 = np.where(swap, meta.ant_2, meta.ant_1), np.where(swap, meta.ant_1, meta.ant_2)
        uvw = np.where(swap[:, None], -uvw, uvw)
    main.putcol("ANTENNA1", np.searchsorted(numbers, ant_1).astype(np.int32))
    main.putcol("ANTENNA2", np.searchsorted(numbers, ant_2).astype(np.int32))
    main.putcol("UVW", uvw)
    main.putcol("SCAN_NUMBER", np.ones(n_rows, np.int32))
    main.putcol("STATE_ID", np.full(n_rows, -1, np.int32))
    for column in ("FIELD_ID", "DATA_DESC_ID", "ARRAY_ID", "OBSERVATION_ID", "PROCESSOR_ID",
                   "FEED1", "FEED2"):
        main.putcol(column, np.zeros(n_rows, np.int32))


def _read_subband(sub: SubbandHeader, shape: tuple[int, int, int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visibilities, flags and nsamples of one file (one subband in memory); a missing
    subband reads as zeros, fully flagged, with zero weight."""
    if sub.path is None:
        full = (shape[0], sub.freqs_hz.size, shape[2])
        return (np.zeros(full, np.complex64), np.ones(full, bool), np.zeros(full, np.float32))
    with h5py.File(sub.path, "r") as handle:
        return tuple(_squeeze(read_whole(handle[name]))  # type: ignore[return-value]
                     for name in ("Data/visdata", "Data/flags", "Data/nsamples"))


def _write_subband(main, arrays: tuple[np.ndarray, np.ndarray, np.ndarray],
                   freqs_hz: np.ndarray, first_channel: int, rephase: Rephasing,
                   pol_order: np.ndarray, polarizations: np.ndarray,
                   swap: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Write one subband's channels in ascending frequency; return its weights and row flags."""
    data, flags, nsamples = arrays
    descending = freqs_hz.size > 1 and freqs_hz[0] > freqs_hz[-1]
    if not np.array_equal(pol_order, np.arange(pol_order.size)):
        data, flags, nsamples = data[:, :, pol_order], flags[:, :, pol_order], nsamples[:, :, pol_order]
    # Ascending channel order, complex conjugate (the MS sign convention), then the
    # rotation to the new phase centre. Reversal copies whole (channel) records as
    # opaque bytes, which is much faster than a strided complex copy.
    out = _reverse_channels(data) if descending else data  # ours to modify in place
    del data
    np.conjugate(out, out=out)
    ascending_freqs = freqs_hz[::-1] if descending else freqs_hz
    if np.any(rephase.delta_w_m):
        out *= _channel_phasors(rephase, ascending_freqs)[:, :, None]
    n_chan = freqs_hz.size
    blc, trc = [first_channel, 0], [first_channel + n_chan - 1, out.shape[2] - 1]
    flags_out = _reverse_channels(flags) if descending else np.ascontiguousarray(flags)
    if swap is not None:
        # The reversed baseline sees the conjugate, with XY and YX (RL, LR) exchanged.
        exchange = reversed_pol_order(polarizations)
        out[swap] = np.conjugate(out[swap][:, :, exchange])
        flags_out[swap] = flags_out[swap][:, :, exchange]
    main.putcolslice("DATA", out, blc, trc)
    main.putcolslice("FLAG", flags_out, blc, trc)
    return _row_weights(nsamples), flags.reshape(flags.shape[0], -1).all(axis=1)


def reversed_pol_order(polarizations: np.ndarray) -> np.ndarray:
    """For each polarisation (AIPS codes), the index of the one a reversed baseline carries
    (XY <-> YX, RL <-> LR; the others map to themselves)."""
    partner = {-3: -4, -4: -3, -7: -8, -8: -7}
    codes = [int(p) for p in polarizations]
    return np.array([codes.index(partner.get(c, c)) if partner.get(c, c) in codes else i
                     for i, c in enumerate(codes)])


def casa_pol_order(polarizations: np.ndarray) -> np.ndarray:
    """Indices that put the file's polarisations in CASA's order (e.g. XX, XY, YX, YY)."""
    return np.argsort([AIPS_TO_CASA_CORR[int(p)] for p in polarizations], kind="stable")


def _reverse_channels(array: np.ndarray) -> np.ndarray:
    """A contiguous copy with the channel axis (axis 1) reversed."""
    n_rows, n_chan = array.shape[:2]
    record = np.dtype((np.void, array.dtype.itemsize * array.shape[2]))
    out = np.empty_like(array)
    out.view(record).reshape(n_rows, n_chan)[:] = \
        np.ascontiguousarray(array).view(record).reshape(n_rows, n_chan)[:, ::-1]
    return out


def _channel_phasors(rephase: Rephasing, freqs_hz: np.ndarray) -> np.ndarray:
    """conj(exp(-2πi ν Δw / c)) per (row, channel), complex64.

    For evenly spaced channels a running product replaces an exp per channel; the
    product runs over contiguous rows of a (channel, row) array, then is transposed.
    """
    spacing = np.diff(freqs_hz)
    if spacing.size and np.allclose(spacing, spacing[0], rtol=1e-9):
        phasors = np.empty((freqs_hz.size, rephase.delta_w_m.size), np.complex128)
        phasors[0] = np.conj(rephase.phasor(freqs_hz[0]))
        step = np.conj(rephase.phasor(spacing[0]))
        for chan in range(1, freqs_hz.size):
            np.multiply(phasors[chan - 1], step, out=phasors[chan])
    else:
        phasors = np.stack([np.conj(rephase.phasor(f)) for f in freqs_hz])
    return phasors.T.astype(np.complex64)


def _row_weights(nsamples: np.ndarray) -> np.ndarray:
    """Median nsample over channels per (row, pol).

    Correlator files almost always carry one nsample value everywhere: two contiguous
    reductions detect that and skip the (slow, strided) median.
    """
    low, high = nsamples.min(), nsamples.max()
    if low == high:
        return np.full((nsamples.shape[0], nsamples.shape[2]), low, np.float32)
    return channel_median(nsamples)


def channel_median(values: np.ndarray) -> np.ndarray:
    """np.median over axis 1 of (row, channel, pol), ~4x faster: partial sorts of
    contiguous channel runs instead of a full sort along a strided axis."""
    runs = np.ascontiguousarray(values.transpose(0, 2, 1), dtype=np.float32)
    n = runs.shape[2]
    middle = n // 2
    if n % 2:
        runs.partition(middle, axis=2)
        return runs[:, :, middle]
    runs.partition([middle - 1, middle], axis=2)
    return ((runs[:, :, middle - 1] + runs[:, :, middle]) / 2).astype(np.float32)


def _write_weights(main, per_subband: np.ndarray, row_flagged: np.ndarray) -> None:
    # pyuvdata uses the median nsample over all channels; the median of equal-size
    # subband medians matches it whenever nsamples are uniform per row (the usual case).
    weight = np.median(per_subband, axis=2)
    main.putcol("WEIGHT", weight)
    with np.errstate(divide="ignore"):
        main.putcol("SIGMA", np.where(weight > 0, weight ** -0.5, 0.0).astype(np.float32))
    main.putcol("FLAG_ROW", row_flagged)


def _squeeze(array: np.ndarray) -> np.ndarray:
    # Old-style UVH5 files carry a length-1 spectral-window axis: (Nblt, 1, Nfreq, Npol).
    return array[:, 0] if array.ndim == 4 else array


class _Clock:
    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 3)
        self.last = now
