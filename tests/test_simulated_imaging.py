"""Science validation: a simulated point source, calibrated with the true gains and
imaged by the real WSClean, appears at its true position and flux."""

import shutil
import subprocess
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from contimg.conversion.ms_writer import convert_group
from contimg.simulation.telescope import SimulationRequest, simulate
from contimg.simulation.truth import apply_true_gains, apply_true_gains_to_ms, load_truth
from contimg.uvh5_reading import read_group

pytestmark = pytest.mark.slow


def _refined_peak(image: np.ndarray) -> tuple[float, float, float]:
    """Peak value and sub-pixel (x, y) from a 2-D quadratic fitted to the log of the 3x3
    pixels around the brightest one: exact for a Gaussian beam at any position angle."""
    y0, x0 = np.unravel_index(np.nanargmax(image), image.shape)
    dy, dx = np.mgrid[-1:2, -1:2]
    values = np.log(image[y0 - 1:y0 + 2, x0 - 1:x0 + 2]).ravel()
    dx, dy = dx.ravel(), dy.ravel()
    design = np.stack([dx * dx, dy * dy, dx * dy, dx, dy, np.ones_like(dx)], axis=1)
    a, b, c, d, e, f = np.linalg.lstsq(design, values, rcond=None)[0]
    # Stationary point of a x^2 + b y^2 + c xy + d x + e y + f.
    sx, sy = np.linalg.solve([[2 * a, c], [c, 2 * b]], [-d, -e])
    log_peak = a * sx * sx + b * sy * sy + c * sx * sy + d * sx + e * sy + f
    return float(np.exp(log_peak)), x0 + sx, y0 + sy


def _image_and_check(ms, tmp_path, cal, centre) -> None:
    result = subprocess.run(
        [shutil.which("wsclean") or "wsclean", "-quiet", "-size", "1024", "1024", "-scale", "3asec",
         "-niter", "3000", "-mgain", "0.8", "-auto-threshold", "3", "-weight", "briggs", "0",
         "-use-wgridder",  # the default w-stacking gridder loses ~5% off-centre here
         "-no-update-model-required", "-name", str(tmp_path / "img"), str(ms)],
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    with fits.open(tmp_path / "img-image.fits") as hdul:
        image, header = hdul[0].data[0, 0], hdul[0].header
    with fits.open(tmp_path / "img-model.fits") as hdul:
        model = hdul[0].data[0, 0]
    _, x, y = _refined_peak(image)
    found = WCS(header).celestial.pixel_to_world(x, y)
    true = SkyCoord(cal["ra_deg"] * u.deg, cal["dec_deg"] * u.deg)
    beam_minor_arcsec = header["BMIN"] * 3600
    assert true.separation(SkyCoord(*centre, unit="deg")).arcmin > 10, "source is off-centre"
    assert found.separation(true).arcsec < beam_minor_arcsec / 5
    # Flux: the CLEAN components within one restoring-beam major axis of the source.
    # (The restored peak of a source that falls between pixel centres is biased low by
    # a few per cent, as its components split over neighbouring pixels.)
    rows, cols = np.indices(model.shape)
    radius_px = header["BMAJ"] / abs(header["CDELT1"])
    flux = model[np.hypot(cols - x, rows - y) < radius_px].sum()
    assert flux == pytest.approx(cal["mean_apparent_flux_jy"], rel=0.05)


@pytest.fixture(scope="module")
def offset_group(tmp_path_factory):
    """A small group pointed 0.3 deg south of 0834+555, so the source is off-centre."""
    out = tmp_path_factory.mktemp("offset")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (group,) = simulate(SimulationRequest(out_dir=out, size="small", seed=3,
                                              calibrator="0834+555", dec_deg=55.27))
    truth, arrays = load_truth(group.truth_json)
    return group, truth["sources"][0], arrays


def test_point_source_through_contimg_converter(offset_group, tmp_path):
    """The platform's own path: our MS (group-midpoint phase centre), true gains applied."""
    group, cal, arrays = offset_group
    ms = tmp_path / "contimg.ms"
    report = convert_group(group.files, ms)
    apply_true_gains_to_ms(ms, arrays)
    _image_and_check(ms, tmp_path, cal, report.phase_centre_deg)


def test_point_source_through_pyuvdata_writer(offset_group, tmp_path):
    """The reference path: pyuvdata phases to a centre 0.2 deg east and writes the MS."""
    group, cal, arrays = offset_group
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd = read_group(group.files)
        apply_true_gains(uvd, arrays)
        centre_ra, centre_dec = cal["ra_deg"] + 0.213, 55.27
        uvd.phase(ra=np.radians(centre_ra), dec=np.radians(centre_dec), cat_name="field")
        ms = tmp_path / "group.ms"
        uvd.write_ms(str(ms), clobber=True, run_check=False)
    _image_and_check(ms, tmp_path, cal, (centre_ra, centre_dec))


def test_contimg_image_takes_a_measurement_set_the_platform_did_not_make(offset_group, tmp_path,
                                                                           layout_env, capsys):
    """pyuvdata's MS (no CORRECTED_DATA, pyuvdata's antenna names and phase centre) through
    `contimg image`: the source where the truth has it, the beam and provenance beside it."""
    from contimg.cli import main

    group, cal, arrays = offset_group
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd = read_group(group.files)
        apply_true_gains(uvd, arrays)
        uvd.phase(ra=np.radians(cal["ra_deg"] + 0.213), dec=np.radians(55.27), cat_name="field")
        ms = tmp_path / "foreign.ms"
        uvd.write_ms(str(ms), clobber=True, run_check=False)
    layout_env.mkdir(parents=True)
    assert main(["image", str(ms), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    image_set = tmp_path / "out" / "foreign.img"
    assert f"wrote {image_set}" in printed
    names = sorted(p.name for p in image_set.iterdir())
    assert names == [f"foreign.img-{k}" for k in ("beam.fits", "image-pb.fits", "image.fits",
                                                   "quicklook.png", "residual.fits")]
    with fits.open(image_set / "foreign.img-image.fits") as hdul:
        image, header = hdul[0].data.squeeze(), hdul[0].header
    assert header["WSCDATAC"] == "DATA" and header["MSPATH"] == str(ms)
    _, x, y = _refined_peak(image)
    found = WCS(header).celestial.pixel_to_world(x, y)
    offset = found.separation(SkyCoord(cal["ra_deg"] * u.deg, cal["dec_deg"] * u.deg)).arcsec
    assert offset < header["BMIN"] * 3600 / 5, offset
    assert "x expected" in printed and "DR " in printed  # the quality figures, printed


def test_contimg_image_names_a_path_that_is_no_measurement_set(tmp_path, layout_env, capsys):
    from contimg.cli import main

    (tmp_path / "not.ms").mkdir()
    assert main(["image", str(tmp_path / "not.ms")]) == 2
    assert "not.ms is not a Measurement Set" in capsys.readouterr().err
