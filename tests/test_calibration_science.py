"""Science validation of the whole calibration chain on a science group one hour after a
calibrator transit: bandpass from the transit, gains solved on the science group
against the NVSS-format sky model, applied, imaged by the real WSClean; field sources
at their catalogue positions with their expected fluxes. The truth directories are
moved away before anything runs, so calibration cannot read them.

SNR: small preset, SEFD 5800 Jy; image noise ~0.5 mJy/beam, so the sources checked
(apparent flux above 50 x the measured residual rms) have SNR > 50.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from datetime import timedelta

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from contimg.calibration.apply import apply_tables
from contimg.calibration.flagging import flag_ms
from contimg.calibration.predict import predict_model_data
from contimg.calibration.sky_model import SkyModelSettings, sky_model_for_ms
from contimg.calibration.solve import solve_calibrator, solve_gains
from contimg.catalogs.nvss import read_nvss_table, write_nvss_table
from contimg.conversion.ms_writer import convert_group
from contimg.simulation.sky import calibrator_source
from contimg.simulation.telescope import SimulationRequest, centred_start, simulate
from contimg.simulation.truth import load_truth
from contimg.state.cal_registry_db import ApplySet
from tests.test_simulated_imaging import _refined_peak

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def calibrated_science(tmp_path_factory):
    out = tmp_path_factory.mktemp("calscience")
    cal = calibrator_source("3C147")
    start = centred_start(cal.ra_deg)
    common = {"size": "small", "seed": 21, "calibrator": "3C147"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (transit,) = simulate(SimulationRequest(out_dir=out / "cal", start=start, **common))
        (science,) = simulate(SimulationRequest(out_dir=out / "sci",
                                                start=start + timedelta(hours=1), **common))
    catalog = out / "static" / "catalogs" / "nvss.tsv"
    catalog.parent.mkdir(parents=True)
    rows = [s for g in (transit, science)
            for s in read_nvss_table(next(g.truth_json.parent.glob("*_nvss.tsv")))]
    write_nvss_table(catalog, rows)
    truth_dir = out / "truth-kept-apart"
    for group, name in ((transit, "cal"), (science, "sci")):
        shutil.move(group.truth_json.parent, truth_dir / name)
    settings = SkyModelSettings(catalog_path=catalog)

    def prepare(group, name):
        ms = out / f"{name}.ms"
        convert_group(group.files, ms)
        predict_model_data(ms, sky_model_for_ms(ms, settings))
        flag_ms(ms, rfi=False)
        work = out / f"work-{name}"
        work.mkdir()
        return ms, work

    cal_ms, cal_work = prepare(transit, "cal")
    daily = solve_calibrator(cal_ms, cal_work, transit.group_id)
    bandpass = [str(t.path) for t in daily.tables if t.kind == "bpcal"]
    sci_ms, sci_work = prepare(science, "sci")
    hourly = solve_gains(sci_ms, sci_work, science.group_id, bandpass)
    apply_tables(sci_ms, ApplySet("daily", "hourly", (*bandpass, *hourly.paths()),
                                  ("bpcal", *(t.kind for t in hourly.tables))))
    truth, _ = load_truth(truth_dir / "sci" / science.truth_json.name)
    return sci_ms, out, truth


def test_field_sources_at_their_positions_with_their_fluxes(calibrated_science):
    ms, out, truth = calibrated_science
    result = subprocess.run(
        [shutil.which("wsclean") or "wsclean", "-quiet", "-size", "1536", "1536",
         "-scale", "4asec", "-niter", "20000", "-mgain", "0.8", "-auto-threshold", "3",
         "-auto-mask", "5", "-weight", "briggs", "0", "-use-wgridder",
         "-data-column", "CORRECTED_DATA", "-no-update-model-required",
         "-name", str(out / "img"), str(ms)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    with fits.open(out / "img-image.fits") as hdul:
        image, header = hdul[0].data[0, 0], hdul[0].header
    with fits.open(out / "img-model.fits") as hdul:
        model = hdul[0].data[0, 0]
    with fits.open(out / "img-residual.fits") as hdul:
        rms = float(np.sqrt(np.nanmean(hdul[0].data[0, 0] ** 2)))
    wcs = WCS(header).celestial
    beam_px = header["BMAJ"] / abs(header["CDELT1"])
    rows, cols = np.indices(model.shape)
    checked = 0
    for source in truth["sources"]:
        expected = source["mean_apparent_flux_jy"]
        x, y = wcs.world_to_pixel(SkyCoord(source["ra_deg"] * u.deg, source["dec_deg"] * u.deg))
        inside = 3 * beam_px < min(x, y, image.shape[1] - x, image.shape[0] - y)
        if expected < 50 * rms or not inside:
            continue
        x0, y0 = int(round(float(x))), int(round(float(y)))
        half = int(beam_px) + 2
        _, fx, fy = _refined_peak(image[y0 - half:y0 + half + 1, x0 - half:x0 + half + 1])
        found = wcs.pixel_to_world(x0 - half + fx, y0 - half + fy)
        true = SkyCoord(source["ra_deg"] * u.deg, source["dec_deg"] * u.deg)
        assert found.separation(true).arcsec < 0.2 * header["BMIN"] * 3600, source["name"]
        flux = model[np.hypot(cols - float(x), rows - float(y)) < beam_px].sum()
        assert flux == pytest.approx(expected, rel=0.05), (source["name"], expected / rms)
        print(f"{source['name']}: {flux / expected:.4f} of {expected:.3f} Jy, SNR {expected / rms:.0f},"
              f" offset {found.separation(true).arcsec:.2f} arcsec")
        checked += 1
    assert checked >= 3, f"only {checked} source(s) above SNR 50 (rms {rms * 1e3:.2f} mJy)"
