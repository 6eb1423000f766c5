"""Photometry and variability pieces on synthetic data with known answers: the forced
estimator and its correlated-noise error, the DuckDB figures against a numpy reference,
master_sources seeding, the simulator's light curves."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.signal import fftconvolve

from contimg.photometry.forced import RestoringBeam, forced_fluxes
from contimg.photometry.measurements import SCHEMA, measurements_glob, measurements_path, write_measurements
from contimg.photometry.variability import Thresholds, variability_statistics
from contimg.simulation.variability import LightCurve, VariabilityRequest
from contimg.state import StateStore, master_sources_db

BEAM = RestoringBeam(major_px=9.0, minor_px=4.5, pa_rad=np.radians(30.0))


def _correlated_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """An image's noise: its autocorrelation is the (dirty ≈ restoring) beam, so white
    noise convolved with the beam narrowed by √2, scaled to rms `sigma`."""
    narrow = RestoringBeam(BEAM.major_px / np.sqrt(2), BEAM.minor_px / np.sqrt(2), BEAM.pa_rad)
    half = BEAM.half_size
    offsets = np.arange(-half, half + 1)
    kernel = narrow.kernel(offsets[None, :], offsets[:, None])
    noise = fftconvolve(rng.standard_normal(shape), kernel, mode="same")
    return noise / noise.std() * sigma


def test_forced_flux_is_unbiased_and_its_error_matches_the_scatter():
    rng = np.random.default_rng(1)
    sigma, flux, shape = 1e-3, 20e-3, (160, 160)
    x0, y0 = 80.3, 79.6
    rows, cols = np.indices(shape)
    source = flux * BEAM.kernel(cols - x0, rows - y0)
    background, rms, pb = np.zeros(shape), np.full(shape, sigma), np.full(shape, 0.5)
    fluxes, errors = [], []
    for _ in range(300):
        image = source + _correlated_noise(rng, shape, sigma)
        out = forced_fluxes(image, background, rms, pb, BEAM, np.array([x0]), np.array([y0]))
        fluxes.append(out.flux_jy[0])
        errors.append(out.error_jy[0])
    fluxes, errors = np.array(fluxes), np.array(errors)
    # PB 0.5: the apparent 20 mJy is a 40 mJy source.
    assert np.mean(fluxes) == pytest.approx(2 * flux, rel=0.01)
    scatter = np.std(fluxes, ddof=1) / np.mean(errors)
    naive = (sigma / np.sqrt((BEAM.kernel(cols - x0, rows - y0) ** 2).sum())) / 0.5
    print(f"scatter / reported error {scatter:.3f}; naive error would be {naive / np.mean(errors):.2f}x")
    assert 0.85 < scatter < 1.15
    assert naive < 0.5 * np.mean(errors)  # the white-noise formula would claim far too much


def test_a_position_on_blanked_pixels_is_flagged_not_measured():
    shape = (64, 64)
    image = np.zeros(shape)
    image[:, :20] = np.nan
    out = forced_fluxes(image, np.zeros(shape), np.ones(shape), np.ones(shape), BEAM,
                        np.array([10.0, 30.0, 200.0]), np.array([30.0, 30.0, 30.0]))
    assert np.isnan(out.flux_jy[0]) and out.flags[0] == 1  # on the blank
    assert np.isfinite(out.flux_jy[1]) and out.flags[1] == 1  # cut-out touches it
    assert np.isnan(out.flux_jy[2]) and out.flags[2] == 1  # off the image


def _write_epochs(tmp_path, fluxes: np.ndarray, errors: np.ndarray) -> str:
    """fluxes/errors (epoch, source) as one Parquet file per epoch."""
    for epoch in range(fluxes.shape[0]):
        group = f"2025-10-{13 + epoch // 24:02d}T{epoch % 24:02d}:00:00"
        n = fluxes.shape[1]
        columns = {f.name: np.zeros(n) for f in SCHEMA}
        columns |= {"source_id": np.arange(n), "source_name": [f"s{i}" for i in range(n)],
                    "group_id": [group] * n, "mid_mjd": np.full(n, 60961.0 + epoch / 24),
                    "flux_jy": fluxes[epoch], "flux_err_jy": errors[epoch], "is_new": np.zeros(n, bool),
                    "flags": np.zeros(n, np.int8), "image_path": [""] * n}
        write_measurements(measurements_path(tmp_path, group), columns)
    return measurements_glob(tmp_path)


def test_duckdb_figures_equal_a_numpy_reference_and_pick_the_variables(tmp_path):
    rng = np.random.default_rng(4)
    n_epochs, n_sources = 20, 60
    truth = rng.uniform(0.02, 0.2, n_sources)
    errors = rng.uniform(0.8e-3, 1.2e-3, (n_epochs, n_sources))
    fluxes = truth + rng.standard_normal((n_epochs, n_sources)) * errors
    fluxes[10:, 0] += 0.1  # a step: a transient-like brightening
    fluxes[:, 1] = truth[1] * (1 + 0.5 * np.sin(np.arange(n_epochs) / 3)) + errors[:, 1] * 0.1
    fluxes[5, 2] = -0.02  # -20 sigma: an artefact, not a sky source
    table = variability_statistics(_write_epochs(tmp_path, fluxes, errors), 1e9, Thresholds())
    w = 1 / errors**2
    eta = (n_epochs / (n_epochs - 1)) * ((w * fluxes**2).mean(0) - (w * fluxes).mean(0) ** 2 / w.mean(0))
    v = fluxes.std(0, ddof=1) / fluxes.mean(0)
    hi, lo = fluxes.argmax(0), fluxes.argmin(0)
    cols = np.arange(n_sources)
    vs = (fluxes[hi, cols] - fluxes[lo, cols]) / np.hypot(errors[hi, cols], errors[lo, cols])
    m = 2 * (fluxes[hi, cols] - fluxes[lo, cols]) / (fluxes[hi, cols] + fluxes[lo, cols])
    np.testing.assert_allclose(table.eta, eta, rtol=1e-9)
    np.testing.assert_allclose(table.v, v, rtol=1e-9)
    np.testing.assert_allclose(table.vs, vs, rtol=1e-9)
    np.testing.assert_allclose(table.m, m, rtol=1e-9)
    assert table.candidate[0] and table.candidate[1]
    assert abs(table.vs[2]) > 4.3 and abs(table.m[2]) > 0.26 and not table.candidate[2]
    assert table.candidate[3:].sum() <= 1, np.flatnonzero(table.candidate)


def test_master_sources_are_seeded_once_and_a_new_source_once(tmp_path):
    with StateStore(tmp_path) as store:
        store.migrate_all()
        kwargs = dict(catalog="nvss.tsv", names=["J1", "J2"], ra_deg=np.array([10.0, 11.0]),
                      dec_deg=np.array([55.0, 56.0]), flux_jy=np.array([0.1, 0.2]),
                      dec_min=52.0, dec_max=58.0)
        assert master_sources_db.seed_strip(store, **kwargs) == 2
        assert master_sources_db.strip_seeded(store, "nvss.tsv", 53.0, 57.0)
        assert not master_sources_db.strip_seeded(store, "nvss.tsv", 50.0, 57.0)
        assert master_sources_db.seed_strip(store, **kwargs) == 0
        first = master_sources_db.add_new_source(store, name="DSA J3", ra_deg=12.0, dec_deg=55.0,
                                                 flux_jy=0.05, group_id="g", mid_mjd=60961.0)
        again = master_sources_db.add_new_source(store, name="DSA J3", ra_deg=12.0, dec_deg=55.0,
                                                 flux_jy=0.06, group_id="h", mid_mjd=60962.0)
        assert first == again
        box = master_sources_db.sources_in_box(store, 350.0, 11.5, 54.0, 56.5)  # wraps through 0
        assert box.names == ["J1", "J2", "DSA J3"][:2] and not box.is_new.any()
        assert master_sources_db.sources_in_box(store, 11.5, 12.5, 54.0, 56.0).is_new.all()


def test_light_curves_follow_their_definitions():
    flare = LightCurve("flare", 100.0, amplitude=2.0, timescale_h=24.0)
    assert flare.factor(100.0) == pytest.approx(3.0)
    assert flare.factor(101.0) == pytest.approx(1 + 2 * np.exp(-1))
    assert flare.factor(99.0) == pytest.approx(1 + 2 * np.exp(-4))  # rises 4x faster
    transient = LightCurve("transient", 100.0)
    assert list(transient.factor(np.array([99.99, 100.0, 101.0]))) == [0.0, 1.0, 1.0]
    sine = LightCurve("sinusoid", 100.0, amplitude=0.5, timescale_h=48.0)
    assert sine.factor(100.5) == pytest.approx(1.5)
    curves = VariabilityRequest(transient_at=0.5).curves(100.0, 110.0)
    assert curves["transient"].t0_mjd == pytest.approx(105.0)
    with pytest.raises(ValueError, match="kind"):
        LightCurve("wobble", 0.0)


def _register_image(store, group: str, mid_mjd: float, tmp_path) -> None:
    from contimg.state import products_db

    image_set = tmp_path / f"{group}.img"
    products_db.record_image_set(store, group_id=group, ms_path="-", mid_mjd=mid_mjd, image_set=image_set,
                                 products={"image": image_set / "i.fits", "beam": image_set / "b.fits"},
                                 imager="wsclean", quality={}, provenance_json="{}")


def test_the_variability_pass_is_due_hourly_during_a_day_and_once_it_is_over(tmp_path):
    from sensors.variability import plan_variability

    photometry_dir = tmp_path / "photometry"
    with StateStore(tmp_path / "state") as store:
        store.migrate_all()
        day_mjd = 60961.0  # 2025-10-13
        for index in range(13):  # 13 groups of 2025-10-13 between 01:00 and 02:00
            group = f"2025-10-13T01:{index * 4:02d}:00"
            _register_image(store, group, day_mjd + (1 + index * 4 / 60) / 24, tmp_path)
            path = measurements_path(photometry_dir, group)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        now = time.time()  # the images were made just now: the stream has not stopped
        under_way = plan_variability(store, photometry_dir, grace_s=600, refresh_images=12, now=now)
        assert under_way == [("2025-10-13", "variability-2025-10-13-so-far-1")]
        assert plan_variability(store, photometry_dir, grace_s=600, refresh_images=0, now=now) == []
        _register_image(store, "2025-10-14T00:20:00", day_mjd + 1 + 0.35 / 24, tmp_path)  # next day
        (day, key), = plan_variability(store, photometry_dir, grace_s=600, refresh_images=0, now=now)
        assert day == "2025-10-13" and key.startswith("variability-2025-10-13-13-")


def _synthetic_image_set(tmp_path, store, rms_ratio: float) -> str:
    """A 256² image at 20″ cells with one 50 mJy source at its centre (no catalogue entry),
    registered with a residual rms `rms_ratio` times its expectation."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from contimg.state import products_db

    wcs = WCS(naxis=2)
    wcs.wcs.ctype, wcs.wcs.crval = ["RA---SIN", "DEC--SIN"], [120.0, 55.0]
    wcs.wcs.crpix, wcs.wcs.cdelt = [129, 129], [-20 / 3600, 20 / 3600]
    header = wcs.to_header()
    header["BMAJ"], header["BMIN"], header["BPA"] = 90 / 3600, 60 / 3600, 30.0
    beam = RestoringBeam.from_header(header)
    rows, cols = np.indices((256, 256))
    noise = np.random.default_rng(2).normal(0, 1e-3, (256, 256))
    image = 0.05 * beam.kernel(cols - 128.0, rows - 128.0) + noise
    group = f"2025-10-13T13:{int(rms_ratio):02d}:00"
    image_set = tmp_path / group
    image_set.mkdir()
    fits.PrimaryHDU(image.astype(np.float32), header).writeto(image_set / "image.fits")
    fits.PrimaryHDU(np.ones((256, 256), np.float32), header).writeto(image_set / "beam.fits")
    products = {"image": image_set / "image.fits", "beam": image_set / "beam.fits"}
    quality = {"rms_jy": rms_ratio * 1e-3, "expected_rms_jy": 1e-3}
    products_db.record_image_set(store, group_id=group, ms_path="-", mid_mjd=60961.5, image_set=image_set,
                                 products=products, imager="wsclean", quality=quality, provenance_json="{}")
    return group


@pytest.mark.parametrize("rms_ratio, registered", [(1, 1), (3, 0)])
def test_a_sidelobe_limited_image_adds_no_new_sources(tmp_path, rms_ratio, registered):
    from contimg.layout import resolve_layout
    from contimg.photometry.stage import PhotometryOptions, measure_group

    layout = resolve_layout({"CONTIMG_HOME": str(tmp_path / "home"),
                             "CONTIMG_TMPFS_DIR": str(tmp_path / "shm")})
    layout.ensure()
    with StateStore(layout.state_dir) as store:
        store.migrate_all()
        group = _synthetic_image_set(tmp_path, store, rms_ratio)
        outcome = measure_group(layout, store, group, PhotometryOptions(catalog_path=None))
    assert outcome.n_detections == 1
    assert len(outcome.new_source_ids) == registered and outcome.unmatched_held == 1 - registered
    if registered:
        assert outcome.flux_jy[0] == pytest.approx(0.05, rel=0.1)


def test_an_image_blank_above_the_pb_limit_fails_naming_the_file(tmp_path):
    from astropy.io import fits

    from contimg.layout import resolve_layout
    from contimg.photometry.stage import PhotometryError, PhotometryOptions, measure_group

    layout = resolve_layout({"CONTIMG_HOME": str(tmp_path / "home"),
                             "CONTIMG_TMPFS_DIR": str(tmp_path / "shm")})
    layout.ensure()
    with StateStore(layout.state_dir) as store:
        store.migrate_all()
        group = _synthetic_image_set(tmp_path, store, 1)
        image = next(tmp_path.glob("*/image.fits"))
        with fits.open(image, mode="update") as hdul:
            hdul[0].data[:] = np.nan
        with pytest.raises(PhotometryError, match="0 finite pixels above the PB limit"):
            measure_group(layout, store, group, PhotometryOptions(catalog_path=None))


def test_an_unreadable_measurements_file_is_quarantined_and_the_pass_goes_on(tmp_path):
    from datetime import date

    from contimg.layout import resolve_layout
    from contimg.photometry.daily import judge_day
    from contimg.photometry.stage import PhotometryOptions

    layout = resolve_layout({"CONTIMG_HOME": str(tmp_path / "home"),
                             "CONTIMG_TMPFS_DIR": str(tmp_path / "shm")})
    layout.ensure()
    rng = np.random.default_rng(5)
    fluxes = 0.1 + rng.normal(0, 1e-3, (6, 10))
    _write_epochs(layout.photometry_dir, fluxes, np.full((6, 10), 1e-3))
    good = next(layout.photometry_dir.glob("measurements/date=*/*.parquet"))
    bad = good.with_name("2025-10-13_23_00_00.parquet")
    bad.write_bytes(good.read_bytes()[:40])  # a truncated file
    with StateStore(layout.state_dir) as store:
        store.migrate_all()
        outcome = judge_day(layout, store, date(2025, 10, 13), PhotometryOptions(catalog_path=None),
                            Thresholds())
        moves = store.query("products", "SELECT action, reason FROM file_moves WHERE source = ?",
                            (str(bad),))
    assert outcome.n_sources == 10 and not bad.exists()
    assert (layout.photometry_dir / "quarantine" / f"date=2025-10-13_{bad.name}").exists()
    assert moves[0]["action"] == "quarantine" and "unreadable Parquet" in moves[0]["reason"]


def test_a_degenerate_restoring_beam_flags_the_sources_instead_of_dividing_by_zero():
    # A sparse array's PSF fit can collapse (bench day: BMIN 0.0" beside BMAJ 121"): the
    # beam kernel then has no weight at a sub-pixel position, and the fit is flagged.
    from contimg.photometry.forced import RestoringBeam, forced_fluxes

    image = np.random.default_rng(1).normal(0.0, 1e-3, (64, 64))
    flat = np.ones_like(image)
    beam = RestoringBeam(major_px=400.0, minor_px=1e-4, pa_rad=0.3)
    out = forced_fluxes(image, 0 * image, 1e-3 * flat, flat, beam, np.array([31.5, 20.25]),
                        np.array([30.4, 40.7]))
    assert out.flags.tolist() == [1, 1] and np.isnan(out.flux_jy).all()
