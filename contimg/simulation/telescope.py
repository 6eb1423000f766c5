"""`contimg simulate`: write UVH5 groups in DSA-110's exact conventions, with the truth.

Each group is 16 files `YYYY-MM-DDTHH:MM:SS_sbNN.hdf5` (sb00 highest in frequency,
channels descending, XX/YY, 24 integrations of 12.884902 s, float32 uvw, the
pointing declination in `extra_keywords/phase_center_dec`). Files are written
under a hidden temporary name and renamed, so a watcher never sees half a file.
The truth (sky, gains, bandpasses) goes to `truth/` beside them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
from astropy.time import Time

from contimg import naming
from contimg.astro_offline import configure_offline_astropy
from contimg.catalogs.nvss import write_nvss_table
from contimg.instrument import MJD_OFFSET_JD, SIDEREAL_RATIO
from contimg.simulation import instrument as inst
from contimg.simulation.beam import airy_power
from contimg.simulation.correlator_layout import write_correlator_file
from contimg.simulation.corruptions import draw_corruptions
from contimg.simulation.observation import template_uvdata
from contimg.simulation.rfi import draw_rfi, noise_sigma_jy
from contimg.simulation.sky import (
    PointSource,
    as_catalog,
    calibrator_source,
    field_sources,
    strip_sources,
)
from contimg.simulation.variability import VariabilityRequest, variable_sky
from contimg.simulation.visibilities import model_visibilities, source_geometry
from contimg.timeutil import datetime_to_mjd

DEFAULT_START = datetime(2025, 10, 13, 13, 28, 3, tzinfo=UTC)
DEFAULT_DEC_DEG = 55.0
SIDEREAL_DAY_S = 86164.0905
LAYOUTS = ("correlator", "pyuvdata")  # the telescope writer's, or pyuvdata's write_uvh5


@dataclass(frozen=True)
class SimulationRequest:
    """Everything that decides a simulated run; equal requests give identical files."""

    out_dir: Path
    size: str = "tiny"
    n_groups: int = 1
    start: datetime | None = None
    dec_deg: float | None = None
    calibrator: str | None = None
    seed: int = 0
    sefd_jy: float = 5800.0
    corrupt: bool = True
    jitter_s: int = 2
    n_antennas: int | None = None
    stations: tuple[int, ...] | None = None
    truth_dir: Path | None = None  # default: `truth/` beside the files
    layout: str = "correlator"  # the telescope writer's h5py layout, or "pyuvdata"
    sources: tuple[PointSource, ...] | None = None  # this sky instead of a random one
    rfi: bool = False  # add RFI (contimg.simulation.rfi) and save its truth `<group>_rfi.npz`
    first_index: int = 0  # index of the first group in a longer run (noise, jitter, RFI draws)
    days: int = 1  # the same n_groups (same sidereal times) on this many sidereal days
    variability: VariabilityRequest | None = None  # add a flare, a sinusoid and a transient

    @property
    def truth_path(self) -> Path:
        """Where the truth goes (kept out of an incoming directory by the demo feeder)."""
        return Path(self.truth_dir) if self.truth_dir else Path(self.out_dir) / "truth"


@dataclass
class SimulatedGroup:
    """One written group: its id, the 16 files and the truth files."""

    group_id: str
    files: list[Path]
    truth_json: Path
    truth_npz: Path
    sources: list[dict] = field(default_factory=list)


def survey_sky(request: SimulationRequest) -> list[PointSource]:
    """The sky `simulate` would use for this request: the strip its `n_groups` drift
    through (the calibrator first). A feeder writing one group at a time passes it back
    as `sources`, so every group sees one consistent sky."""
    calibrator = calibrator_source(request.calibrator) if request.calibrator else None
    return _sky(request, inst.PRESETS[request.size].n_field_sources, _first_start(request, calibrator),
                _pointing_dec(request, calibrator), calibrator)


def simulate(request: SimulationRequest) -> list[SimulatedGroup]:
    """Write `n_groups` consecutive groups and their truth; return what was written."""
    configure_offline_astropy()
    if request.size not in inst.PRESETS:
        raise ValueError(f"unknown size {request.size!r}; choose one of {sorted(inst.PRESETS)}")
    if request.layout not in LAYOUTS:
        raise ValueError(f"unknown layout {request.layout!r}; choose one of {LAYOUTS}")
    if request.n_groups < 1:
        raise ValueError(f"--groups must be at least 1, got {request.n_groups}")
    if request.days < 1:
        raise ValueError(f"--days must be at least 1, got {request.days}")
    preset = inst.PRESETS[request.size]
    calibrator = calibrator_source(request.calibrator) if request.calibrator else None
    dec_deg = _pointing_dec(request, calibrator)
    start = _first_start(request, calibrator)
    stations = list(request.stations or inst.choose_stations(request.n_antennas or preset.n_antennas))
    all_freqs = np.concatenate([inst.subband_frequencies(sb, preset.channels_per_subband)
                                for sb in range(inst.N_SUBBANDS)])
    corruptions = draw_corruptions(request.seed, len(stations), all_freqs, enabled=request.corrupt)
    sky = _sky(request, preset.n_field_sources, start, dec_deg, calibrator)
    out_dir = Path(request.out_dir)
    request.truth_path.mkdir(parents=True, exist_ok=True)
    groups = []
    for day in range(request.days):
        for index in range(request.n_groups):
            group_start = start + timedelta(seconds=day * SIDEREAL_DAY_S + index * inst.GROUP_DURATION_S)
            groups.append(_write_group(request, request.first_index + day * request.n_groups + index,
                                       group_start, dec_deg, stations, sky, corruptions, all_freqs,
                                       out_dir))
    return groups


def transit_time(ra_deg: float, near: datetime) -> datetime:
    """The meridian transit of right ascension `ra_deg` closest after `near` (UTC)."""
    lst_hours = Time(near).sidereal_time("apparent", longitude=inst.SITE_LON_DEG).hour
    wait_sidereal_h = ((ra_deg / 15.0) - lst_hours) % 24.0
    return near + timedelta(hours=wait_sidereal_h / SIDEREAL_RATIO)


def _pointing_dec(request: SimulationRequest, calibrator: PointSource | None) -> float:
    if request.dec_deg is not None:
        if not -90.0 <= request.dec_deg <= 90.0:
            raise ValueError(f"--dec must be within -90..90 degrees, got {request.dec_deg}")
        return float(request.dec_deg)
    return calibrator.dec_deg if calibrator else DEFAULT_DEC_DEG


def _first_start(request: SimulationRequest, calibrator: PointSource | None) -> datetime:
    if request.start is not None:
        start = request.start if request.start.tzinfo else request.start.replace(tzinfo=UTC)
        return start
    if calibrator is None:
        return DEFAULT_START
    return centred_start(calibrator.ra_deg)


def centred_start(ra_deg: float) -> datetime:
    """Start of a group centred on the transit of `ra_deg` on the default date."""
    day = DEFAULT_START.replace(hour=0, minute=0, second=0)
    middle = transit_time(ra_deg, day)
    return (middle - timedelta(seconds=inst.GROUP_DURATION_S / 2)).replace(microsecond=0)


def _sky(request: SimulationRequest, n_field: int, start: datetime, dec_deg: float,
         calibrator: PointSource | None) -> list[PointSource]:
    """A fixed sky for the whole run: a strip covering every group's field of view (or
    exactly the sources the request names)."""
    if request.sources is not None:
        return list(request.sources)
    lst0 = Time(start).sidereal_time("apparent", longitude=inst.SITE_LON_DEG).degree
    span_deg = request.n_groups * inst.GROUP_DURATION_S / SIDEREAL_DAY_S * 360.0
    sky = _steady_sky(request, n_field, lst0, span_deg, dec_deg, calibrator)
    if request.variability is None:
        return sky
    start_mjd = datetime_to_mjd(start)
    end_mjd = start_mjd + ((request.days - 1) * SIDEREAL_DAY_S
                           + request.n_groups * inst.GROUP_DURATION_S) / 86400.0
    centre_ra = (lst0 + span_deg * request.variability.place_at) % 360.0
    return variable_sky(sky, request.variability, (centre_ra, dec_deg), start_mjd, end_mjd)


def _steady_sky(request: SimulationRequest, n_field: int, lst0: float, span_deg: float,
                dec_deg: float, calibrator: PointSource | None) -> list[PointSource]:
    rng = np.random.default_rng([request.seed, 1])
    if request.n_groups > 2:
        # A long run drifts along a strip: the same density of sources in every group's
        # field (a circle around the middle would leave the ends nearly empty).
        margin = 2.5 / np.cos(np.radians(dec_deg))
        count = max(1, round(n_field * (span_deg + 2 * margin) / (2 * margin)))
        strip = strip_sources(rng, lst0 - margin, span_deg + 2 * margin, dec_deg, count)
        return ([calibrator] if calibrator else []) + strip
    centre_ra = (lst0 + span_deg / 2) % 360.0
    count = max(1, round(n_field * (1 + span_deg * np.cos(np.radians(dec_deg)) / 5.0)))
    radius = 2.5 + span_deg / 2
    sources = [s for s in field_sources(rng, centre_ra, dec_deg, count, radius_deg=radius)
               if abs(s.dec_deg - dec_deg) <= 2.5]
    return ([calibrator] if calibrator else []) + sources


def _write_group(request: SimulationRequest, index: int, start: datetime, dec_deg: float,
                 stations: list[int], sky: list[PointSource], corruptions, all_freqs: np.ndarray,
                 out_dir: Path) -> SimulatedGroup:
    preset = inst.PRESETS[request.size]
    nchan = preset.channels_per_subband
    uvd = template_uvdata(start, dec_deg, stations, inst.subband_frequencies(0, nchan),
                          inst.channel_width_hz(nchan))
    uvd.nsample_array = np.ones(uvd.data_array.shape, np.float32)
    unique_times, time_index = np.unique(uvd.time_array, return_inverse=True)
    mjd = unique_times - MJD_OFFSET_JD
    gains = corruptions.gains(mjd)
    ant_index = {s - 1: i for i, s in enumerate(stations)}
    a1 = np.array([ant_index[a] for a in uvd.ant_1_array])
    a2 = np.array([ant_index[a] for a in uvd.ant_2_array])
    geometry = source_geometry(uvd, sky)
    rng = np.random.default_rng([request.seed, 2, index])
    jitter = rng.integers(0, request.jitter_s + 1, inst.N_SUBBANDS) if request.jitter_s else \
        np.zeros(inst.N_SUBBANDS, int)
    jitter -= jitter.min()  # the earliest subband carries the group's own timestamp
    rfi = draw_rfi(request.seed, index, unique_times.size, all_freqs, len(stations), noise_sigma_jy(
        request.sefd_jy, uvd.channel_width[0], uvd.integration_time[0])) if request.rfi else None
    files = []
    for sb in range(inst.N_SUBBANDS):
        chans = slice(sb * nchan, (sb + 1) * nchan)
        freqs = all_freqs[chans]
        data = _subband_data(uvd, geometry, time_index, freqs, a1, a2, gains,
                             corruptions.bandpass[:, chans, :], request.sefd_jy, rng)
        if rfi is not None:
            data += rfi.visibilities(time_index, a1, a2, chans)
        uvd.freq_array = freqs
        uvd.data_array = data
        uvd.history = f"Simulated by contimg (seed {request.seed}, group {index}, subband {sb})."
        moment = start + timedelta(seconds=int(jitter[sb]))
        target = out_dir / naming.subband_filename(moment, sb)
        files.append(write_correlator_file(uvd, target, float(np.radians(dec_deg)))
                     if request.layout == "correlator" else _write_pyuvdata_subband(uvd, target))
    truth_json, truth_npz = _write_truth(request, start, dec_deg, stations, geometry, uvd,
                                         gains, corruptions.bandpass, all_freqs, mjd, out_dir)
    if rfi is not None:
        rfi.save(request.truth_path / f"{naming.group_id(start)}_rfi.npz", mjd)
    return SimulatedGroup(naming.iso_timestamp(start), files, truth_json, truth_npz,
                          json.loads(truth_json.read_text())["sources"])


def _subband_data(uvd, geometry, time_index, freqs, a1, a2, gains, bandpass, sefd_jy, rng):
    """Corrupted visibilities (Nblt, Nchan, 2): G_i G_j* (model + noise); autos are real."""
    model = model_visibilities(geometry, time_index, freqs)
    n_blt, n_chan = model.shape
    data = np.repeat(model[:, :, None], 2, axis=2)
    autos = a1 == a2
    width = abs(uvd.channel_width[0])
    sigma = sefd_jy / np.sqrt(2.0 * width * uvd.integration_time[0]) if sefd_jy > 0 else 0.0
    if sigma:
        noise = rng.standard_normal((n_blt, n_chan, 2, 2), dtype=np.float32) * np.float32(sigma)
        data += noise[..., 0] + 1j * noise[..., 1]
    # Autocorrelations: system noise power plus sky, real up to a tiny imaginary residue.
    data[autos] = (sefd_jy + np.abs(model[autos]))[:, :, None] * (1 + 1e-7j)
    factor_1 = gains[time_index, a1][:, None, :] * bandpass[a1]
    factor_2 = gains[time_index, a2][:, None, :] * bandpass[a2]
    return (data * factor_1 * np.conj(factor_2)).astype(np.complex64)


def _write_pyuvdata_subband(uvd, path: Path) -> Path:
    """The pyuvdata layout (current UVH5 with a driftscan phase-centre catalogue)."""
    partial = path.with_name(f".{path.name}.partial")
    # Contiguous, uncompressed datasets, as the correlator writes them (pyuvdata always
    # stores nsamples as float32: ~150 MB per full-size subband).
    uvd.write_uvh5(str(partial), clobber=True, run_check=False, flags_compression=None,
                   nsample_compression=None, chunks=None)
    # DSA-110 files store uvw as float32 (a quirk readers must cope with).
    with h5py.File(partial, "r+") as handle:
        uvw = handle["Header/uvw_array"][()]
        del handle["Header/uvw_array"]
        handle["Header"].create_dataset("uvw_array", data=uvw.astype(np.float32))
    os.replace(partial, path)
    return path


def _write_truth(request, start, dec_deg, stations, geometry, uvd, gains, bandpass, all_freqs,
                 mjd, out_dir: Path) -> tuple[Path, Path]:
    stem = naming.group_id(start)
    sources = []
    for geo in geometry:
        beam = airy_power(geo.pointing_offset_rad[:, None], all_freqs[None, :], inst.DISH_DIAMETER_M)
        apparent = float(np.mean(beam * geo.flux_factor[:, None] * geo.source.flux_at(all_freqs)[None, :]))
        sources.append({**geo.source.as_dict(), "mean_apparent_flux_jy": apparent,
                        "mean_flux_factor": float(np.mean(geo.flux_factor))})
    truth = {
        "group_id": naming.iso_timestamp(start),
        "start_utc": start.isoformat(),
        "start_mjd": datetime_to_mjd(start),
        "pointing_dec_deg": dec_deg,
        "stations": stations,
        "antenna_numbers": [s - 1 for s in stations],
        "size": request.size,
        "seed": request.seed,
        "sefd_jy": request.sefd_jy,
        "corrupted": request.corrupt,
        "sources": sources,
    }
    truth_json = request.truth_path / f"{stem}_truth.json"
    truth_npz = request.truth_path / f"{stem}_truth.npz"
    truth_json.write_text(json.dumps(truth, indent=2))
    np.savez(truth_npz, gains=gains, bandpass=bandpass, freqs_hz=all_freqs, mjd=mjd,
             antenna_numbers=np.array([s - 1 for s in stations]))
    write_nvss_table(request.truth_path / f"{stem}_nvss.tsv",
                     as_catalog([geo.source for geo in geometry]))
    return truth_json, truth_npz
