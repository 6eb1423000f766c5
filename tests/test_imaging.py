"""Imaging: the options and commands (no tool needed), the drift-averaged primary beam,
and one group imaged through the stage with the real WSClean (tiny preset)."""

from __future__ import annotations

import shutil
import warnings
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import EarthLocation
from astropy.io import fits
from astropy.wcs import WCS

from contimg import naming
from contimg.calibration.sky_model import pointing_from_ms
from contimg.calibration.stages import CalibrationConfig, calibrate_group, solve_bandpass_for_day
from contimg.conversion.pipeline import convert_into_tree
from contimg.imaging.coverage import measure_coverage
from contimg.imaging.options import ImageGrid, ImagingOptions, ImagingOptionsError, grid_for
from contimg.imaging.primary_beam import drift_averaged_beam
from contimg.imaging.stage import ImagingError, image_group
from contimg.imaging.tclean import tclean_parameters
from contimg.imaging.weighting import weighting_noise_factor
from contimg.imaging.wsclean import baseline_averaging_wavelengths, wsclean_command
from contimg.layout import resolve_layout
from contimg.settings import SettingsError, load_settings
from contimg.simulation.telescope import SimulationRequest, simulate
from contimg.state import StateStore, products_db
from contimg.state.discovery import find_products
from tests.conftest import module_home


def test_the_wsclean_command_carries_every_option():
    options = ImagingOptions(robust=-0.5, niter=500, auto_mask=4.0, threads=2)
    command = wsclean_command(Path("g.ms"), Path("/w/x.img"), ImageGrid(2070, 6.09), options,
                              averaging_wavelengths=12.7, temp_dir=Path("/shm/t"))
    text = " ".join(command)
    for expected in ("-size 2070 2070", "-scale 6.09asec", "-weight briggs -0.5", "-niter 500",
                     "-auto-mask 4", "-auto-threshold 0.5", "-mgain 0.9", "-use-wgridder",
                     "-wgridder-accuracy 0.001",
                     "-data-column CORRECTED_DATA", "-pol I", "-no-update-model-required",
                     "-baseline-averaging 12.700", "-j 2", "-parallel-reordering 2",
                     "-temp-dir /shm/t", "-name /w/x.img"):
        assert expected in text, expected
    assert command[-1] == "g.ms"
    plain = wsclean_command(Path("g.ms"), Path("x"), ImageGrid(64, 10.0),
                            ImagingOptions(weighting="natural", auto_mask=0, baseline_averaging=False))
    assert "-auto-mask" not in plain and "-baseline-averaging" not in plain
    assert plain[plain.index("-weight") + 1] == "natural"


def test_baseline_averaging_costs_at_most_the_allowed_loss_at_the_edge():
    radius = np.radians(2.12)  # the PB-0.2 radius at the band's bottom
    size = baseline_averaging_wavelengths(0.05, radius)
    assert size == pytest.approx(4.75, rel=0.01)
    # A fringe averaged over that much uv track keeps 95 % of a source at the radius.
    phases = 2 * np.pi * np.linspace(-size / 2, size / 2, 10001) * radius
    assert abs(np.exp(1j * phases).mean()) == pytest.approx(0.95, abs=1e-3)


def _noise_factor_by_hand(u, v, w, size, cell_arcsec, robust):
    """The Briggs noise factor with a dictionary of uv cells (the reference)."""
    du = 1 / (size * np.radians(cell_arcsec / 3600))
    cells: dict[tuple[int, int], float] = {}
    keys = []
    for ui, vi, wi in zip(u, v, w, strict=True):
        if vi < 0:
            ui, vi = -ui, -vi
        key = (int(np.floor(ui / du + 0.5)), int(np.floor(vi / du + 0.5)))
        cells[key] = cells.get(key, 0.0) + wi
        keys.append(key)
    density = np.array([cells[k] for k in keys])
    f2 = (5 * 10 ** -robust) ** 2 * w.sum() / sum(c * c for c in cells.values())
    t = 1 / (1 + f2 * density)
    return np.sqrt(w.sum() * (w * t * t).sum()) / (w * t).sum()


def test_the_weighting_noise_factor_follows_briggs_definition():
    rng = np.random.default_rng(3)
    # A dense core (short spacings) and a sparse ring, as a drift scan's uv coverage.
    core = rng.normal(0, 30, (3000, 2))
    ring = rng.uniform(-2000, 2000, (1000, 2))
    u, v = np.concatenate([core, ring]).T
    w = rng.uniform(0.5, 1.5, u.size)
    grid = {"size": 512, "cell_arcsec": 6.0}
    factors = {r: weighting_noise_factor(u, v, w, weighting="briggs", robust=r, **grid)
               for r in (-2, -1, 0, 1, 2)}
    for robust, factor in factors.items():
        assert factor == pytest.approx(_noise_factor_by_hand(u, v, w, 512, 6.0, robust), rel=1e-9)
    assert 1.0 < factors[2] < factors[1] < factors[0] < factors[-1] < factors[-2]
    assert factors[2] < 1.02  # robust +2 is nearly natural
    uniform = weighting_noise_factor(u, v, w, weighting="uniform", robust=0, **grid)
    assert factors[-2] == pytest.approx(uniform, rel=0.05)  # and -2 nearly uniform
    assert weighting_noise_factor(u, v, w, weighting="natural", robust=0, **grid) == 1.0


def test_tclean_gets_the_same_choices():
    parameters = tclean_parameters(Path("g.ms"), Path("x.img"), ImageGrid(512, 8.0),
                                   ImagingOptions(imager="tclean", robust=0.5))
    assert parameters["imsize"] == [512, 512] and parameters["cell"] == "8arcsec"
    assert parameters["weighting"] == "briggs" and parameters["robust"] == 0.5
    assert parameters["datacolumn"] == "corrected" and parameters["pblimit"] < 0  # our PB


@pytest.mark.parametrize("bad", [{"weighting": "robust"}, {"pb_limit": 0.0}, {"mgain": 1.5},
                                 {"auto_mask": 0.4}, {"imager": "difmap"},
                                 {"wgridder_accuracy": 0.5}])
def test_bad_imaging_options_are_refused_naming_the_option(bad):
    with pytest.raises(ImagingOptionsError, match=next(iter(bad))):
        ImagingOptions(**bad)


def test_a_bad_imaging_setting_stops_at_load_naming_the_variable(layout_env, monkeypatch):
    monkeypatch.setenv("CONTIMG_IMAGER", "difmap")
    with pytest.raises(SettingsError, match="CONTIMG_IMAGER"):
        load_settings()


# -- one calibrated tiny group through the stage ------------------------------------------


@pytest.fixture(scope="module")
def imaged(tmp_path_factory):
    """A calibrator transit and a science group five minutes later, converted, calibrated
    (the platform's own solve and apply) and the science group imaged by the stage."""
    home = tmp_path_factory.mktemp("imaging")
    with module_home(home) as (layout, store):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            groups = simulate(SimulationRequest(out_dir=home / "files", size="tiny", n_groups=2,
                                                calibrator="0834+555", seed=11))
        catalog = layout.static_dir / "catalogs" / "nvss.tsv"
        catalog.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(next(groups[0].truth_json.parent.glob("*_nvss.tsv")), catalog)
        for group in groups:
            convert_into_tree(group.group_id, group.files, layout, store)
        science = groups[1].group_id
        with pytest.raises(ImagingError, match="not calibrated"):
            image_group(layout, store, science)
        solve_bandpass_for_day(layout, store, science[:10], config=CalibrationConfig())
        calibrate_group(layout, store, science, config=CalibrationConfig())
        first = image_group(layout, store, science)
        second = image_group(layout, store, science)  # a re-image supersedes the first
        yield layout, store, science, first, second


def test_the_set_lands_whole_in_its_date_directory(imaged):
    layout, _, science, _, outcome = imaged
    final = layout.images_dir / science[:10] / f"{science}.img"
    assert outcome.image_set == final
    assert sorted(p.name for p in final.iterdir()) == sorted(
        naming.image_product_name(science, k) for k in naming.IMAGE_PRODUCTS)
    assert not list(layout.staging_dir.glob("img-*")) and not list(layout.tmpfs_root.glob("img-*"))


def test_a_re_image_keeps_the_earlier_set_aside_and_registered(imaged):
    _, store, science, first, second = imaged
    assert second.superseded is not None and second.superseded.exists()
    current = products_db.image_rows(store, science)
    aside = products_db.image_rows(store, science, status="superseded")
    assert {r["kind"] for r in current} == {"image", "image-pb", "residual", "beam"}
    assert all(Path(r["path"]).exists() for r in current + aside)
    assert all(str(second.superseded) in r["path"] for r in aside) and len(aside) == 4


def test_below_the_pb_limit_the_corrected_image_is_blank(imaged):
    *_, outcome = imaged
    corrected = fits.getdata(outcome.products["image-pb"]).squeeze()
    beam = fits.getdata(outcome.products["beam"]).squeeze()
    assert np.isnan(corrected[beam < 0.2]).all() and np.isfinite(corrected[beam >= 0.2]).all()
    assert (beam < 0.2).any(), "the field reaches below the PB limit"
    assert beam.max() == pytest.approx(1.0, abs=0.05)


def test_the_quality_figures_are_recorded(imaged):
    _, store, science, _, outcome = imaged
    quality = outcome.quality
    assert 0 < quality.rms_jy < quality.peak_jy and quality.dynamic_range > 50
    assert 0.5 < quality.rms_ratio < 4  # tiny array: sidelobes of the bright calibrator
    assert quality.bmaj_arcsec > quality.bmin_arcsec > 0 and quality.n_sources_5sigma >= 1
    assert quality.beam_problem(outcome.grid.cell_arcsec) is None, "the long thin tiny-array beam is real"
    row = next(r for r in products_db.image_rows(store, science) if r["kind"] == "image-pb")
    assert row["rms_jy"] == pytest.approx(quality.rms_jy) and row["imager"] == "wsclean"
    assert outcome.png.startswith(b"\x89PNG")


@pytest.mark.parametrize("bmaj, bmin, axis", [(40.0, 0.0, "BMIN"), (40.0, 2.0, "BMIN"),
                                              (float("nan"), 30.0, "BMAJ")])
def test_a_collapsed_psf_fit_is_named(imaged, bmaj, bmin, axis):
    """The collapsed fit the simulated day met (BMIN 0.0"), a sub-pixel axis and a NaN axis
    are each named, with the floor they fall below."""
    *_, outcome = imaged
    cell = outcome.grid.cell_arcsec
    collapsed = replace(outcome.quality, bmaj_arcsec=bmaj, bmin_arcsec=bmin)
    problem = collapsed.beam_problem(cell)
    assert problem is not None and axis in problem and f"{cell / 4:.2f}" in problem


def test_headers_carry_provenance_pointing_at_files_that_exist(imaged):
    *_, outcome = imaged
    for kind in ("image", "image-pb", "residual", "beam"):
        header = fits.getheader(outcome.products[kind])
        assert header["GROUPID"] == outcome.group_id and Path(header["MSPATH"]).exists()
        assert header["IMAGER"].startswith("WSClean 3.1") and header["CONTIMG"]
        tables = [header[f"CALTAB{i:02d}"] for i in range(1, header["NCALTAB"] + 1)]
        assert len(tables) == 3 and all(Path(t).exists() for t in tables), tables
        assert any(h.startswith("imaging pb_limit = 0.2") for h in header["HISTORY"])
    header = fits.getheader(outcome.products["image-pb"])
    wcs = WCS(header).celestial
    assert wcs.has_celestial and wcs.wcs.ctype[0].startswith("RA---")
    site = EarthLocation.from_geocentric(header["OBSGEO-X"], header["OBSGEO-Y"], header["OBSGEO-Z"],
                                         unit="m")
    assert abs(site.lat.deg - 37.2339) < 0.01 and abs(site.height.value - 1222) < 50


def test_find_products_finds_images_by_timestamp_and_date_range(imaged):
    layout, store, science, _, outcome = imaged
    by_time = find_products(store, layout, "image", group=naming.group_id(science), kind="image-pb")
    assert [f.path for f in by_time] == [outcome.products["image-pb"]]
    day = datetime.fromisoformat(science).replace(tzinfo=UTC)
    window = find_products(store, layout, "image", kind="image-pb", start=day.replace(hour=0),
                           end=day.replace(hour=23))
    assert [f.group_id for f in window] == [science]


def test_images_are_found_on_disk_when_the_database_has_none(layout_env):
    layout = resolve_layout().ensure()
    store = StateStore(layout.state_dir)
    image_set = layout.image_set_dir("2025-10-13T13:28:03")
    image_set.mkdir(parents=True)
    for kind in ("image", "image-pb", "beam"):
        (image_set / naming.image_product_name("2025-10-13T13:28:03", kind)).touch()
    found = find_products(store, layout, "image", group="2025-10-13_13_28_03", kind="image-pb")
    assert [(f.path.name, f.kind, f.found_by) for f in found] == [
        ("2025-10-13T13:28:03.img-image-pb.fits", "image-pb", "filesystem")]
    assert len(find_products(store, layout, "image", start=datetime(2025, 10, 13))) == 3


def test_the_coarse_beam_equals_the_exact_drift_average(imaged):
    """96² points + bicubic interpolation against the average at every pixel of a 200² grid."""
    layout, store, science, _, outcome = imaged
    ms = Path(products_db.ms_record(store, science)["path"])
    header = fits.getheader(outcome.products["image"])
    wcs = WCS(header).celestial[::8, ::8]  # a coarser image of the same field
    shape = (header["NAXIS2"] // 8, header["NAXIS1"] // 8)
    pointing, coverage = pointing_from_ms(ms), measure_coverage(ms)
    exact = drift_averaged_beam(wcs, shape, pointing, coverage, coarse=max(shape))
    fast = drift_averaged_beam(wcs, shape, pointing, coverage, coarse=24)
    assert np.abs(fast - exact).max() < 1e-3
    assert grid_for(ms, ImagingOptions()).size == header["NAXIS1"]


def test_a_measured_beam_fits_is_used_in_place_of_the_airy_pattern(tmp_path):
    """A beam FITS holding the Airy pattern itself (power against east/north offset at
    1.4 GHz) gives the Airy drift average; a missing file names itself."""
    from astropy.wcs import WCS as AstropyWCS

    from contimg.beam import airy_power
    from contimg.calibration.sky_model import DriftPointing
    from contimg.imaging.coverage import Coverage

    offsets = np.linspace(-4.0, 4.0, 401)
    east, north = np.meshgrid(offsets, offsets)
    power = airy_power(np.radians(np.hypot(east, north)), 1.4e9)
    header = fits.Header({"CRVAL1": 0.0, "CRPIX1": 201, "CDELT1": 0.02, "CRVAL2": 0.0,
                          "CRPIX2": 201, "CDELT2": 0.02, "FREQ": 1.4e9})
    path = tmp_path / "beam.fits"
    fits.PrimaryHDU(power.astype(np.float32), header).writeto(path)
    freqs = np.linspace(1.31e9, 1.50e9, 16)
    times = np.arange(24) * 12.88
    pointing = DriftPointing(times, np.linspace(99.4, 100.6, 24), np.full(24, 55.0), freqs,
                             (100.0, 55.0), 55.0)
    coverage = Coverage(times, freqs, 0.24e6, 12.88, np.ones((24, 16)), 100, 100, 2,
                        np.zeros((0, 3), np.float32))
    wcs = AstropyWCS(naxis=2)
    wcs.wcs.ctype, wcs.wcs.crval = ["RA---SIN", "DEC--SIN"], [100.0, 55.0]
    wcs.wcs.crpix, wcs.wcs.cdelt = [33, 33], [-0.1, 0.1]
    airy = drift_averaged_beam(wcs, (64, 64), pointing, coverage, coarse=64)
    measured = drift_averaged_beam(wcs, (64, 64), pointing, coverage, beam_model=path, coarse=64)
    assert np.abs(measured - airy).max() < 1e-3
    with pytest.raises(FileNotFoundError, match="beam-model"):
        drift_averaged_beam(wcs, (64, 64), pointing, coverage, beam_model=tmp_path / "none.fits")
