"""Validate a group of subband files before conversion, reading only HDF5 headers.

Every subband must share antennas, times and polarisations; frequencies must tile
the band without gaps; the pointing declination must agree; every file must open.
Each violation names the file and what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from contimg.naming import parse_subband_filename


class GroupValidationError(ValueError):
    """A group cannot be converted; the message names the file and the problem."""


@dataclass(frozen=True)
class SubbandHeader:
    """What the converter needs from one file's header (path None: a missing subband,
    written as flagged zeros so every group has the same channel layout)."""

    path: Path | None
    freqs_hz: np.ndarray  # in file order
    channel_width_hz: np.ndarray
    n_blts: int
    polarizations: np.ndarray
    phase_center_dec: float | None


@dataclass(frozen=True)
class GroupPlan:
    """A validated group: subbands ordered by descending frequency, plus shared metadata."""

    subbands: tuple[SubbandHeader, ...]
    n_blts: int
    polarizations: np.ndarray
    phase_center_dec: float | None

    @property
    def n_channels(self) -> int:
        """Total channels over all subbands."""
        return int(sum(s.freqs_hz.size for s in self.subbands))

    @property
    def files(self) -> list[Path]:
        """The files that exist, highest frequency first."""
        return [s.path for s in self.subbands if s.path is not None]

    @property
    def missing(self) -> list[SubbandHeader]:
        """Subbands filled in as flagged channels."""
        return [s for s in self.subbands if s.path is None]


# What contimg reads from every file (the correlator's layout has all of these; the
# rest of a UVH5 header, e.g. lst_array or phase_center_catalog, is optional).
REQUIRED_FIELDS = tuple(f"Header/{name}" for name in (
    "Nblts", "freq_array", "channel_width", "polarization_array", "ant_1_array", "ant_2_array",
    "time_array", "integration_time", "uvw_array", "antenna_numbers", "antenna_names",
    "antenna_positions", "telescope_name")) + ("Data/visdata", "Data/flags", "Data/nsamples")
SITE_FIELDS = (("Header/latitude", "Header/longitude", "Header/altitude"),
               ("Header/telescope_location",))


def read_header(path: Path) -> SubbandHeader:
    """Read one file's header; raise GroupValidationError naming the file if unreadable."""
    try:
        with h5py.File(path, "r") as handle:
            _check_required(path, handle)
            header = handle["Header"]
            freqs = np.asarray(header["freq_array"][()], float).ravel()
            width = np.broadcast_to(np.abs(np.asarray(header["channel_width"][()], float)).ravel(),
                                    freqs.shape).copy()
            dec = header["extra_keywords/phase_center_dec"][()] \
                if "extra_keywords/phase_center_dec" in header else None
            pols = np.asarray(header["polarization_array"][()]).ravel()
            steps = np.diff(freqs)
            if steps.size and not (np.all(steps > 0) or np.all(steps < 0)):
                raise GroupValidationError(
                    f"{path}: channel frequencies are not monotonic. Fix: contimg converts "
                    "files whose channels ascend or descend; reorder the file.")
            n_blts = int(header["Nblts"][()])
            _check_shapes(path, handle, n_blts, freqs.size, pols.size)
            _check_not_truncated(path, handle)
            return SubbandHeader(Path(path), freqs, width, n_blts, pols,
                                 float(dec) if dec is not None else None)
    except GroupValidationError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable header is this file's fault
        # h5py raises OSError/KeyError for damaged files, but a malformed value (e.g.
        # Nblts = "many") raises ValueError/TypeError: all of them name the file.
        raise GroupValidationError(
            f"{path}: cannot read the UVH5 header ({type(exc).__name__}: {exc}). The file is "
            "corrupt, truncated, malformed or still being written. Fix: wait for the writer to "
            "finish or replace the file (the group is then converted again)."
        ) from exc


def _check_required(path: Path, handle: h5py.File) -> None:
    missing = [name for name in REQUIRED_FIELDS if name not in handle]
    if not any(all(name in handle for name in option) for option in SITE_FIELDS):
        missing.append("Header/latitude+longitude+altitude (or Header/telescope_location)")
    if missing:
        raise GroupValidationError(
            f"{path}: not a UVH5 file contimg can convert: it lacks {', '.join(missing)}. Fix: "
            "the writer must write these fields (the DSA-110 correlator's writer does); "
            "replace the file.")


def _check_shapes(path: Path, handle: h5py.File, n_blts: int, n_freqs: int, n_pols: int) -> None:
    for name in ("Data/visdata", "Data/flags", "Data/nsamples"):
        shape = handle[name].shape
        squeezed = (shape[0], shape[2], shape[3]) if len(shape) == 4 else tuple(shape)
        if squeezed != (n_blts, n_freqs, n_pols):
            raise GroupValidationError(
                f"{path}: {name} has shape {shape}, but the header says "
                f"({n_blts}, {n_freqs}, {n_pols}). Fix: the file is malformed; replace it.")


def _check_not_truncated(path: Path, handle: h5py.File) -> None:
    """Every dataset's bytes must lie inside the file — contiguous datasets (pyuvdata's
    layout) and each chunk of chunked ones (the correlator's) — so a cut-off copy fails
    here, cheaply, from the file's own index."""
    size = os.path.getsize(path)
    for name in ("Data/visdata", "Data/flags", "Data/nsamples"):
        end = _storage_end(handle[name])
        if end > size:
            raise GroupValidationError(
                f"{path}: truncated: {name} needs {end} bytes but the file has {size}. "
                "Fix: copy the file again from the correlator.")


def _storage_end(dataset: h5py.Dataset) -> int:
    """The byte just past the dataset's last stored byte (0 when nothing is stored)."""
    offset = dataset.id.get_offset()
    if offset is not None:
        return offset + dataset.id.get_storage_size()
    if dataset.chunks is None:
        return 0  # compact or not yet allocated
    ends = [0]
    dataset.id.chunk_iter(lambda info: ends.append(info.byte_offset + info.size))
    return max(ends)


def validate_group(paths: Sequence[Path], *, expected_subbands: int | None = 16,
                   allow_missing: bool = False) -> GroupPlan:
    """Check the files form one convertible group; return them ordered by frequency.

    With `allow_missing`, absent subbands (known from the sbNN file names) are planned
    as flagged channels instead of failing the group.
    """
    if not paths:
        raise GroupValidationError("empty group: no files given")
    if (expected_subbands is not None and len(paths) != expected_subbands
            and not (allow_missing and len(paths) < expected_subbands)):
        raise GroupValidationError(_count_problem(paths, expected_subbands))
    headers = sorted((read_header(Path(p)) for p in paths), key=lambda h: -h.freqs_hz.max())
    reference = headers[0]
    ref_ants = _antenna_arrays(reference.path)
    for header in headers[1:]:
        _compare(header, reference, ref_ants)
    if allow_missing and expected_subbands and len(headers) < expected_subbands:
        headers = _fill_missing(headers, expected_subbands)
    _check_contiguous(headers)
    return GroupPlan(tuple(headers), reference.n_blts, reference.polarizations,
                     reference.phase_center_dec)


def _count_problem(paths: Sequence[Path], expected: int) -> str:
    """Name what is missing (or extra), by the sbNN numbering, and where it should be."""
    by_subband: dict[int, list[str]] = {}
    for path in paths:
        parsed = parse_subband_filename(Path(path).name)
        by_subband.setdefault(parsed[1] if parsed else -1, []).append(Path(path).name)
    missing = [sb for sb in range(expected) if sb not in by_subband]
    doubled = [names for sb, names in sorted(by_subband.items()) if len(names) > 1 or sb < 0]
    folder = Path(paths[0]).parent
    parts = [f"group has {len(paths)} files, expected {expected}"]
    if missing:
        stem = Path(paths[0]).name.rsplit("_sb", 1)[0]
        parts.append("missing " + ", ".join(f"sb{sb:02d}" for sb in missing)
                     + f" (no *_sb{missing[0]:02d}.hdf5 near {stem} in {folder})")
    if doubled:
        parts.append("unexpected " + ", ".join(n for names in doubled for n in names))
    return "; ".join(parts) + (". Fix: put the missing file(s) in place (the group is then "
                               "converted again) or set CONTIMG_INCOMPLETE_POLICY=convert.")


def _antenna_arrays(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        with h5py.File(path, "r") as handle:
            header = handle["Header"]
            return (np.asarray(header["ant_1_array"][()], int), np.asarray(header["ant_2_array"][()], int),
                    np.asarray(header["time_array"][()], float))
    except Exception as exc:  # noqa: BLE001 - any unreadable field is this file's fault
        raise GroupValidationError(
            f"{path}: cannot read its antennas and times ({type(exc).__name__}: {exc}). Fix: "
            "replace the file (the group is then converted again).") from exc


def _compare(header: SubbandHeader, reference: SubbandHeader,
             ref_arrays: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    name, ref = header.path, reference.path.name
    if header.n_blts != reference.n_blts:
        raise GroupValidationError(
            f"{name}: {header.n_blts} baseline-times, but {ref} has {reference.n_blts}. "
            "Fix: the subbands come from different correlator setups; regenerate or drop it.")
    if (header.freqs_hz.size != reference.freqs_hz.size
            or not np.allclose(header.channel_width_hz, reference.channel_width_hz, rtol=1e-6)):
        raise GroupValidationError(
            f"{name}: {header.freqs_hz.size} channels of "
            f"{header.channel_width_hz.mean() / 1e3:.3f} kHz, but {ref} has "
            f"{reference.freqs_hz.size} of {reference.channel_width_hz.mean() / 1e3:.3f} kHz. "
            "Fix: every subband of a group must have the same channels; drop the odd file.")
    ant1, ant2, times = _antenna_arrays(header.path)
    if not (np.array_equal(ant1, ref_arrays[0]) and np.array_equal(ant2, ref_arrays[1])):
        raise GroupValidationError(
            f"{name}: antennas differ from {ref} (different baselines or order). "
            "Fix: all subbands of a group must carry the same antennas.")
    if not np.allclose(times, ref_arrays[2], rtol=0, atol=1e-3 / 86400):
        raise GroupValidationError(
            f"{name}: integration times differ from {ref}. "
            "Fix: the file belongs to another observation; move it out of the group.")
    if not np.array_equal(header.polarizations, reference.polarizations):
        raise GroupValidationError(
            f"{name}: polarisations {header.polarizations.tolist()} differ from {ref} "
            f"({reference.polarizations.tolist()}).")
    if (header.phase_center_dec is not None and reference.phase_center_dec is not None
            and abs(header.phase_center_dec - reference.phase_center_dec) > 1e-6):
        raise GroupValidationError(
            f"{name}: pointing declination {np.degrees(header.phase_center_dec):.4f} deg differs "
            f"from {ref} ({np.degrees(reference.phase_center_dec):.4f} deg).")


def _fill_missing(headers: list[SubbandHeader], expected: int) -> list[SubbandHeader]:
    """Plan absent subbands from the sbNN numbering: equal subbands, sb00 highest."""
    indexed = {}
    for header in headers:
        parsed = parse_subband_filename(header.path.name) if header.path else None
        if parsed is None:
            raise GroupValidationError(
                f"{header.path}: cannot tell which subband this is, so missing subbands cannot "
                "be placed. Fix: use the instrument's sbNN file names.")
        indexed[parsed[1]] = header
    ref_index, ref = next(iter(sorted(indexed.items())))
    n_chan, width = ref.freqs_hz.size, float(ref.channel_width_hz.mean())
    filled = []
    for index in range(expected):
        if index in indexed:
            filled.append(indexed[index])
            continue
        # Subband k sits (k - ref) whole subbands below the reference (sb00 highest).
        freqs = ref.freqs_hz - (index - ref_index) * n_chan * width
        filled.append(SubbandHeader(None, freqs, ref.channel_width_hz,
                                    ref.n_blts, ref.polarizations, ref.phase_center_dec))
    return sorted(filled, key=lambda h: -h.freqs_hz.max())


def _check_contiguous(headers: list[SubbandHeader]) -> None:
    for upper, lower in zip(headers, headers[1:], strict=False):
        gap = upper.freqs_hz.min() - lower.freqs_hz.max()
        width = 0.5 * (upper.channel_width_hz.max() + lower.channel_width_hz.max())
        if gap <= 0:
            raise GroupValidationError(
                f"{_label(lower)}: frequencies overlap {_label(upper)} (a duplicate subband?). "
                "Fix: keep one copy of each subband in the group.")
        if abs(gap - width) > 0.01 * width:
            raise GroupValidationError(
                f"{_label(lower)}: a gap of {gap / 1e6:.3f} MHz separates it from {_label(upper)} "
                f"(expected one channel, {width / 1e6:.3f} MHz): a subband is missing or has "
                "different channels.")


def _label(header: SubbandHeader) -> str:
    return str(header.path) if header.path else "a missing subband"
