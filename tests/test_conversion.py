"""The fast converter agrees with pyuvdata's own write_ms, and CASA and WSClean accept it."""

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from casacore import tables

from contimg.conversion.ms_writer import convert_group
from contimg.simulation.telescope import SimulationRequest, simulate
from contimg.uvh5_reading import read_group


@pytest.fixture(scope="module", params=["correlator", "pyuvdata"])
def converted(request, tmp_path_factory) -> tuple[Path, Path]:
    """Our MS and pyuvdata's MS of the same group, phased to the same centre, for files
    in the correlator's layout (pyuvdata told the true phase centre first) and in
    pyuvdata's own layout."""
    out = tmp_path_factory.mktemp(f"conversion-{request.param}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (group,) = simulate(SimulationRequest(out_dir=out / "files", size="tiny", seed=11,
                                              calibrator="0834+555", layout=request.param))
    ours = out / "ours.ms"
    report = convert_group(group.files, ours)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd = read_group(group.files)
        ra, dec = np.radians(report.phase_centre_deg)
        uvd.phase(ra=ra, dec=dec, cat_name="centre")
        reference = out / "pyuvdata.ms"
        uvd.write_ms(str(reference), clobber=True, run_check=False)
    return ours, reference


def _column(ms: Path, name: str, sub: str = "") -> np.ndarray:
    with tables.table(str(ms / sub) if sub else str(ms), ack=False) as table:
        return table.getcol(name)


def test_main_columns_match_pyuvdata(converted):
    ours, reference = converted
    ref_freqs = _column(reference, "CHAN_FREQ", "SPECTRAL_WINDOW")[0]
    our_freqs = _column(ours, "CHAN_FREQ", "SPECTRAL_WINDOW")[0]
    order = np.argsort(ref_freqs)  # ours ascends; pyuvdata keeps the files' descending order
    np.testing.assert_allclose(our_freqs, ref_freqs[order], rtol=0, atol=1e-3)
    for name in ("TIME", "ANTENNA1", "ANTENNA2", "INTERVAL", "EXPOSURE"):
        np.testing.assert_allclose(_column(ours, name), _column(reference, name), atol=1e-6,
                                   err_msg=name)
    np.testing.assert_allclose(_column(ours, "UVW"), _column(reference, "UVW"), atol=1e-6)
    ref_data = _column(reference, "DATA")[:, order, :]
    our_data = _column(ours, "DATA")
    scale = np.abs(ref_data).max()
    np.testing.assert_allclose(our_data, ref_data, rtol=0, atol=2e-6 * scale)
    np.testing.assert_array_equal(_column(ours, "FLAG"), _column(reference, "FLAG")[:, order, :])
    np.testing.assert_allclose(_column(ours, "WEIGHT"), _column(reference, "WEIGHT"))
    np.testing.assert_allclose(_column(ours, "SIGMA"), _column(reference, "SIGMA"))


def test_field_and_window_match_pyuvdata(converted):
    ours, reference = converted
    np.testing.assert_allclose(_column(ours, "PHASE_DIR", "FIELD"),
                               _column(reference, "PHASE_DIR", "FIELD"), atol=1e-9)
    assert _column(ours, "NUM_CHAN", "SPECTRAL_WINDOW").tolist() == [32]
    np.testing.assert_array_equal(_column(ours, "CORR_TYPE", "POLARIZATION"),
                                  _column(reference, "CORR_TYPE", "POLARIZATION"))
    np.testing.assert_allclose(_column(ours, "POSITION", "ANTENNA"),
                               _column(reference, "POSITION", "ANTENNA"), atol=1e-3)


def test_casa_listobs_and_gaincal_accept_the_ms(converted, tmp_path):
    from casatasks import gaincal, listobs

    ours, _ = converted
    summary = listobs(vis=str(ours), listfile=str(tmp_path / "listobs.txt"))
    assert summary["nfields"] == 1
    assert (tmp_path / "listobs.txt").read_text().count("OVRO_MMA") >= 1
    table = tmp_path / "test.gcal"
    gaincal(vis=str(ours), caltable=str(table), solint="inf", refant="0", minsnr=0,
            calmode="p", gaintype="G")
    assert table.is_dir()
    with tables.table(str(table), ack=False) as cal:
        assert cal.nrows() > 0


def test_wsclean_images_the_ms(converted, tmp_path):
    ours, _ = converted
    work = tmp_path / "copy.ms"
    shutil.copytree(ours, work)
    result = subprocess.run(["wsclean", "-quiet", "-size", "256", "256", "-scale", "20asec",
                             "-niter", "100", "-name", str(tmp_path / "img"), str(work)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "img-image.fits").exists()


def _foreign_files(tmp_path: Path, mixed_conjugation: bool = False) -> list[Path]:
    """Two UVH5 'subbands' from another instrument: 5 antennas numbered 3..42, four
    polarisations in AIPS order, ascending channels, data already phased (sidereal)."""
    from astropy.coordinates import EarthLocation
    from pyuvdata import Telescope, UVData

    rng = np.random.default_rng(4)
    numbers = np.array([3, 7, 11, 20, 42])
    telescope = Telescope.new(
        name="TOY", location=EarthLocation.from_geodetic(-107.6, 34.08, 2124),
        instrument="TOY", antenna_names=[f"T{n}" for n in numbers], antenna_numbers=numbers,
        antenna_positions=rng.normal(0, 300, (5, 3)), antenna_diameters=np.full(5, 25.0))
    files = []
    for index, start in enumerate((1.40e9, 1.40e9 + 8 * 1e6)):
        uvd = UVData.new(freq_array=start + np.arange(8) * 1e6,
                         polarization_array=["xx", "yy", "xy", "yx"],
                         times=2460000.5 + np.arange(3) * 10 / 86400, telescope=telescope,
                         integration_time=10.0, channel_width=1e6, empty=True,
                         update_telescope_from_known=False, do_blt_outer=True,
                         phase_center_catalog={0: {"cat_name": "target", "cat_type": "sidereal",
                                                   "cat_lon": 1.2, "cat_lat": 0.5,
                                                   "cat_frame": "icrs", "cat_epoch": 2000.0}})
        shape = uvd.data_array.shape
        data = rng.normal(size=shape) + 1j * rng.normal(size=shape)
        autos = uvd.ant_1_array == uvd.ant_2_array
        data[autos] = np.abs(data[autos])  # autocorrelations are real
        uvd.data_array = data.astype(np.complex64)
        uvd.nsample_array[:] = 1.0
        if mixed_conjugation:  # every other baseline-time stored as (ant2, ant1)
            cross = np.flatnonzero(uvd.ant_1_array != uvd.ant_2_array)[::2]
            uvd.conjugate_bls(convention=cross)
        path = tmp_path / f"toy_part{index}.uvh5"
        uvd.write_uvh5(str(path))
        files.append(path)
    return files


@pytest.mark.parametrize("mixed", [False, True], ids=["ant1<=ant2", "mixed-conjugation"])
def test_other_instruments_convert_like_pyuvdata(tmp_path, mixed):
    files = _foreign_files(tmp_path, mixed_conjugation=mixed)
    ours = tmp_path / "ours.ms"
    report = convert_group(files, ours, expected_subbands=None)
    assert report.n_channels == 16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from contimg.uvh5_reading import read_subband

        uvd = read_subband(files[0])
        uvd.fast_concat([read_subband(files[1])], axis="freq", inplace=True, run_check=False)
        reference = tmp_path / "pyuvdata.ms"
        uvd.write_ms(str(reference), clobber=True, run_check=False)
    np.testing.assert_allclose(_column(ours, "CHAN_FREQ", "SPECTRAL_WINDOW"),
                               _column(reference, "CHAN_FREQ", "SPECTRAL_WINDOW"))
    np.testing.assert_array_equal(_column(ours, "CORR_TYPE", "POLARIZATION"),
                                  _column(reference, "CORR_TYPE", "POLARIZATION"))
    np.testing.assert_allclose(_column(ours, "DATA"), _column(reference, "DATA"), atol=1e-6)
    np.testing.assert_allclose(_column(ours, "UVW"), _column(reference, "UVW"), atol=1e-6)
    names = {"ours": _column(ours, "NAME", "ANTENNA"), "ref": _column(reference, "NAME", "ANTENNA")}
    for column in ("ANTENNA1", "ANTENNA2"):
        assert [names["ours"][i] for i in _column(ours, column)] == \
            [names["ref"][i] for i in _column(reference, column)]


def test_phase_centre_is_the_meridian_at_the_pointing_declination(tiny_groups):
    from astropy.time import Time

    from contimg.conversion.rephasing import plan_rephasing
    from contimg.simulation.instrument import SITE_LON_DEG

    plan = plan_rephasing(tiny_groups[0].files[0])
    times = np.unique(plan.metadata.time_jd)
    lst_mid = Time(times.mean(), format="jd").sidereal_time("apparent",
                                                            longitude=SITE_LON_DEG).degree
    ra, dec = np.degrees([plan.ra_rad, plan.dec_rad])
    pointing = np.degrees(plan.metadata.pointing_dec_rad)
    # ICRS differs from the apparent frame by precession since J2000 (~0.3 deg here).
    assert abs(dec - pointing) < 0.5 and abs((ra - lst_mid + 180) % 360 - 180) < 0.5
    assert np.abs(plan.delta_w_m).max() > 0  # the rows really were re-phased


@pytest.mark.parametrize("n_chan", [47, 48])
def test_channel_median_equals_numpy(n_chan):
    from contimg.conversion.ms_writer import channel_median

    values = np.random.default_rng(n_chan).integers(0, 5, (300, n_chan, 2)).astype(np.float32)
    np.testing.assert_array_equal(channel_median(values), np.median(values, axis=1))


def _field_centre_deg(ms: Path) -> tuple[float, float]:
    with tables.table(str(ms / "FIELD"), ack=False) as field:
        ra, dec = np.degrees(field.getcol("PHASE_DIR")[0, 0])
    return float(ra % 360), float(dec)


def _expected_amplitude(times_s: np.ndarray, freqs_hz: np.ndarray, ra_deg: float, dec_deg: float,
                        pointing_dec_deg: float, flux_jy: float) -> np.ndarray:
    """Flux through an Airy beam pointed at the meridian, with astropy's astrometry only
    (nothing of contimg's or pyuvdata's): source and pointing both in the apparent
    (TETE) frame at each time. Shape (times, channels)."""
    from astropy import units as u
    from astropy.coordinates import TETE, EarthLocation, SkyCoord
    from astropy.time import Time
    from scipy.special import j1

    from contimg import instrument as inst

    site = EarthLocation.from_geodetic(inst.SITE_LON_DEG, inst.SITE_LAT_DEG, inst.SITE_HEIGHT_M)
    moments = Time(times_s / 86400.0, format="mjd")
    frame = TETE(obstime=moments, location=site)
    source = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs").transform_to(frame)
    pointing = SkyCoord(moments.sidereal_time("apparent", longitude=site.lon),
                        np.full(moments.size, pointing_dec_deg) * u.deg, frame=frame)
    theta = source.separation(pointing).rad[:, None]
    x = np.pi * inst.DISH_DIAMETER_M * np.sin(theta) * freqs_hz[None, :] / inst.SPEED_OF_LIGHT_M_S
    with np.errstate(invalid="ignore", divide="ignore"):
        airy = np.where(np.abs(x) < 1e-8, 1.0, 2 * j1(x) / x) ** 2
    return flux_jy * airy


@pytest.mark.parametrize("layout", ["correlator", "pyuvdata"])
def test_a_source_at_the_phase_centre_gives_real_visibilities_of_its_beam_flux(layout, tmp_path):
    """Convention-free: no corruptions, no noise, one 10 Jy flat-spectrum source exactly at
    the MS's phase centre. Whatever the sign conventions, its visibilities must be real
    and equal its flux through the primary beam at each integration and channel."""
    from contimg.simulation.sky import PointSource

    common = {"size": "small", "corrupt": False, "sefd_jy": 0.0, "layout": layout}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (empty,) = simulate(SimulationRequest(out_dir=tmp_path / "empty", sources=(), **common))
        convert_group(empty.files, tmp_path / "empty.ms")  # where is the phase centre?
        ra, dec = _field_centre_deg(tmp_path / "empty.ms")
        centre = PointSource("centre", ra, dec, 10.0, spectral_index=0.0)
        (group,) = simulate(SimulationRequest(out_dir=tmp_path / "src", sources=(centre,), **common))
    ms = tmp_path / "src.ms"
    convert_group(group.files, ms)
    assert _field_centre_deg(ms) == (ra, dec)
    data, ant1, ant2, times = (_column(ms, c) for c in ("DATA", "ANTENNA1", "ANTENNA2", "TIME"))
    freqs = _column(ms, "CHAN_FREQ", "SPECTRAL_WINDOW")[0]
    cross = ant1 != ant2
    phase_deg = np.degrees(np.abs(np.angle(data[cross])))
    assert phase_deg.max() < 0.1, phase_deg.max()
    unique, index = np.unique(times, return_inverse=True)
    expected = _expected_amplitude(unique, freqs, ra, dec, 55.0, 10.0)[index][:, :, None]
    ratio = np.abs(data[cross]) / np.broadcast_to(expected, data.shape)[cross]
    assert np.abs(ratio - 1).max() < 1e-3, np.abs(ratio - 1).max()
    assert ratio.size > 0 and expected.min() < 0.97 * 10.0  # the beam really attenuates


@pytest.mark.parametrize("dtype", [np.complex64, np.float32, bool])
@pytest.mark.parametrize("storage", ["chunked", "gzip", "contiguous"])
def test_fast_whole_dataset_read_equals_h5py(tmp_path, dtype, storage):
    """The correlator's chunked datasets read from the file's chunk index (edge chunks
    cut, never-written chunks zero); compressed or contiguous ones by h5py."""
    import h5py

    from contimg.conversion.dataset_reading import read_whole

    rng = np.random.default_rng(0)
    values = (rng.normal(size=(301, 1, 48, 2)) + 1j * rng.normal(size=(301, 1, 48, 2))).astype(
        np.complex64) if dtype is np.complex64 else (rng.normal(size=(301, 1, 48, 2)) > 0).astype(dtype)
    path = tmp_path / "d.hdf5"
    with h5py.File(path, "w") as handle:
        options = {"chunked": {"chunks": (128, 1, 12, 1), "maxshape": (None, 1, 48, 2)},
                   "gzip": {"chunks": (128, 1, 12, 1), "compression": "gzip"},
                   "contiguous": {}}[storage]
        dataset = handle.create_dataset("d", (0, 1, 48, 2) if storage == "chunked" else values.shape,
                                        dtype=dtype, **options)
        if storage == "chunked":  # grown one block at a time, the last rows never written
            dataset.resize(301, axis=0)
            for start in range(0, 200, 50):
                dataset[start:start + 50] = values[start:start + 50]
            values[200:] = 0
        else:
            dataset[...] = values
    with h5py.File(path, "r") as handle:
        got = read_whole(handle["d"])
        np.testing.assert_array_equal(got, handle["d"][()])
        np.testing.assert_array_equal(got, values)
        assert got.dtype == handle["d"].dtype
