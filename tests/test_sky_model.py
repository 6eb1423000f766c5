"""Sky model -> MODEL_DATA: analytic visibilities, CASA ft, selection, catalogue errors,
and a model built from an NVSS-format catalogue (never from the simulator's truth)."""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import HADec, SkyCoord
from astropy.io import fits
from astropy.time import Time
from casacore import tables
from scipy.special import j1

from contimg.calibration.casa_reference import casa_ft
from contimg.calibration.predict import predict_model_data
from contimg.calibration.sky_model import (
    Component,
    SkyModelSettings,
    pointing_from_ms,
    select_components,
    site_location,
    sky_model_for_ms,
)
from contimg.catalogs.nvss import (
    CatalogError,
    CatalogMissingError,
    CatalogSource,
    load_nvss,
    read_nvss_table,
    write_nvss_table,
)
from contimg.catalogs.vlacals import find_calibrator, load_calibrators
from contimg.conversion.ms_writer import convert_group
from contimg.simulation.sky import PointSource
from contimg.simulation.telescope import SimulationRequest, simulate

C = 299_792_458.0
CAL = find_calibrator("0834+555")
DISH_M = 4.65


def _sky() -> tuple[PointSource, ...]:
    """The calibrator (with the VLA list's own index), field sources at the NVSS default
    index, one too faint for the floor and one far outside the beam."""
    ra, dec = CAL.ra_deg, CAL.dec_deg
    offsets = [(0.9, 0.4, 1.2), (-1.1, -0.6, 0.8), (0.3, 1.3, 0.6), (-0.5, 0.9, 1.5),
               (1.6, -1.0, 0.5), (0.0, -1.5, 0.9)]
    field = [PointSource(f"f{i}", ra + dra / np.cos(np.radians(dec)), dec + ddec, flux, -0.7)
             for i, (dra, ddec, flux) in enumerate(offsets)]
    faint = PointSource("faint", ra + 0.4, dec - 0.3, 0.004, -0.7)
    far = PointSource("far", ra, dec + 5.0, 0.3, -0.7)  # in a sidelobe: ~1 mJy apparent
    return (PointSource(CAL.name, CAL.ra_deg, CAL.dec_deg, CAL.flux_jy, CAL.spectral_index),
            *field, faint, far)


@pytest.fixture(scope="module")
def group(tmp_path_factory) -> dict:
    """A small calibrator transit with no corruptions and no noise, converted to an MS."""
    out = tmp_path_factory.mktemp("skymodel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (sim,) = simulate(SimulationRequest(out_dir=out / "files", size="small", seed=5,
                                            calibrator="0834+555", corrupt=False, sefd_jy=0.0,
                                            sources=_sky()))
    ms = out / "group.ms"
    report = convert_group(sim.files, ms)
    nvss = sim.truth_json.with_name(sim.truth_json.name.replace("_truth.json", "_nvss.tsv"))
    return {"ms": ms, "report": report, "nvss": nvss, "truth_dir": sim.truth_json.parent}


@pytest.fixture
def ms_copy(group, tmp_path) -> Path:
    """A private copy of the group's MS (each test writes its own MODEL_DATA)."""
    target = tmp_path / "copy.ms"
    shutil.copytree(group["ms"], target)
    return target


def _columns(ms: Path, *names: str) -> list[np.ndarray]:
    with tables.table(str(ms), ack=False) as main:
        return [main.getcol(name) for name in names]


def _freqs(ms: Path) -> np.ndarray:
    with tables.table(str(ms / "SPECTRAL_WINDOW"), ack=False) as spw:
        return spw.getcol("CHAN_FREQ")[0]


def _phase_centre(ms: Path) -> tuple[float, float]:
    with tables.table(str(ms / "FIELD"), ack=False) as field:
        return tuple(field.getcol("PHASE_DIR")[0, 0])


def _unit(ra: float, dec: float) -> np.ndarray:
    return np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _analytic(ms: Path, comp: Component, pointing_dec_deg: float | None) -> np.ndarray:
    """S(ν) A(t, ν) exp(+2πi ν/c (u l + v m + w (n-1))) with vector algebra for l, m, n and
    astropy's HADec frame for the pointing (meridian, the files' declination) — no code
    shared with the predictor. (Rows, channels)."""
    ra0, dec0 = _phase_centre(ms)
    source = _unit(np.radians(comp.ra_deg), np.radians(comp.dec_deg))
    east = np.array([-np.sin(ra0), np.cos(ra0), 0.0])
    north = np.array([-np.sin(dec0) * np.cos(ra0), -np.sin(dec0) * np.sin(ra0), np.cos(dec0)])
    l_dir, m_dir, n_dir = source @ east, source @ north, source @ _unit(ra0, dec0)
    uvw, time_s = _columns(ms, "UVW", "TIME")
    freqs = _freqs(ms)
    geometric = uvw[:, 0] * l_dir + uvw[:, 1] * m_dir + uvw[:, 2] * (n_dir - 1.0)
    vis = np.exp(2j * np.pi * geometric[:, None] * freqs[None, :] / C)
    vis *= comp.flux_jy * (freqs / 1.4e9) ** comp.spectral_index
    if pointing_dec_deg is None:
        return vis
    times, index = np.unique(time_s, return_inverse=True)
    obstime = Time(times / 86400.0, format="mjd", scale="utc")
    frame = HADec(obstime=obstime, location=site_location())
    pointing = SkyCoord(ha=np.zeros(times.size) * u.hourangle,
                        dec=np.full(times.size, pointing_dec_deg) * u.deg, frame=frame).icrs
    offset = pointing.separation(SkyCoord(comp.ra_deg * u.deg, comp.dec_deg * u.deg)).rad
    x = np.pi * DISH_M * np.sin(offset)[:, None] * freqs[None, :] / C
    return vis * ((2 * j1(x) / x) ** 2)[index]


def test_one_point_source_matches_its_analytic_visibility(group, ms_copy):
    ra0, dec0 = np.degrees(_phase_centre(ms_copy))
    comp = Component("offset", ra0 + 1.1, dec0 - 0.6, 2.5, -0.8)  # ~0.9 deg off the centre
    predict_model_data(ms_copy, [comp], beam=False)
    (model,) = _columns(ms_copy, "MODEL_DATA")
    expected = _analytic(ms_copy, comp, None)
    assert np.abs(model[:, :, 0] - expected).max() < 1e-5 * comp.flux_jy
    np.testing.assert_array_equal(model[:, :, 0], model[:, :, 1])  # unpolarised: XX = YY
    predict_model_data(ms_copy, [comp], beam=True)
    (model,) = _columns(ms_copy, "MODEL_DATA")
    expected = _analytic(ms_copy, comp, group["report"].pointing_dec_deg)
    beam = np.abs(expected) / (comp.flux_jy * (_freqs(ms_copy) / 1.4e9) ** -0.8)
    assert 0.3 < beam.min() < beam.max() < 0.95  # the beam matters, and changes within the group
    assert np.abs(model[:, :, 0] - expected).max() < 1e-3 * comp.flux_jy


def test_several_sources_match_casa_ft_without_the_beam(ms_copy, tmp_path):

    ra0, dec0 = np.degrees(_phase_centre(ms_copy))
    comps = [Component("a", ra0 + 1.5, dec0 + 0.7, 2.0, -0.7),
             Component("b", ra0 - 1.2, dec0 - 1.4, 1.0, 0.4),
             Component("c", ra0 + 0.01, dec0 + 0.02, 0.5, -1.2),
             Component("d", ra0 - 2.5, dec0 + 2.0, 3.0, 0.0)]
    reference = tmp_path / "ft.ms"
    shutil.copytree(ms_copy, reference)
    casa_ft(reference, comps)
    report = predict_model_data(ms_copy, comps, beam=False)
    (ours,) = _columns(ms_copy, "MODEL_DATA")
    (casa,) = _columns(reference, "MODEL_DATA")
    assert report.created_column and ours.shape == casa.shape
    assert np.abs(ours - casa).max() < 1e-4 * np.abs(casa).max()
    with tables.table(str(ms_copy), ack=False) as main:  # stored like DATA: tiled, same tiles
        data_dm, model_dm = main.getdminfo("DATA"), main.getdminfo("MODEL_DATA")
    assert model_dm["TYPE"] == data_dm["TYPE"] == "TiledColumnStMan"
    assert list(model_dm["SPEC"]["DEFAULTTILESHAPE"]) == list(data_dm["SPEC"]["DEFAULTTILESHAPE"])


def _catalogue(path: Path, entries: list[tuple[float, float, float]]) -> Path:
    return write_nvss_table(path, [CatalogSource(ra, dec, flux) for ra, dec, flux in entries])


def test_selection_keeps_the_beam_and_flux_floor_and_merges_calibrators(group, tmp_path):
    pointing = pointing_from_ms(group["ms"])
    ra0, dec0 = pointing.phase_centre_deg
    cos = np.cos(np.radians(dec0))
    path = _catalogue(tmp_path / "nvss.tsv", [
        (CAL.ra_deg + 5 / 3600, CAL.dec_deg, 8.7),  # NVSS's own entry for the calibrator
        (ra0 + 0.5 / cos, dec0, 0.5),  # well inside: kept
        (ra0, dec0 + 2.8, 5.0),  # below 10 % power at the band's bottom, above 2 %
        (ra0 - 0.3 / cos, dec0 + 0.2, 0.01),  # in the beam, apparent flux under the floor
    ])
    nvss = load_nvss(path)
    chosen = select_components(pointing, nvss, load_calibrators(), beam_level=0.1, flux_floor_jy=0.02)
    assert [c.name for c in chosen] == [CAL.name, nvss.source(1).name]
    calibrator, field = chosen
    assert calibrator.flux_jy == 8.8 and calibrator.spectral_index == pytest.approx(CAL.spectral_index)
    assert field.spectral_index == -0.7  # NVSS lists one frequency
    deeper = select_components(pointing, nvss, load_calibrators(), beam_level=0.01, flux_floor_jy=0.005)
    assert {c.flux_jy for c in deeper} == {8.8, 0.5, 5.0, 0.01}
    assert len(select_components(pointing, nvss, [], beam_level=0.1, flux_floor_jy=0.02)) == 2


def test_calibrator_spectral_index_from_the_other_bands(tmp_path):
    header = ("J2000_NAME,B1950_NAME,PC_J2000,PC_B1950,RA_J2000,DEC_J2000,POS_REF,ALT_NAME,BAND,"
              "BAND_CODE,A,B,C,D,FLUX_JY,UVMIN_kL,UVMAX_kL\n")
    row = '{n},x,A,A,08h00m00s,"50d00\'00""",x,NaN,{band},L,P,P,P,P,{flux},NaN,NaN\n'
    csv = tmp_path / "vlacals.csv"
    csv.write_text(header + row.format(n="only20", band="20cm", flux=2.0)
                   + row.format(n="two", band="20cm", flux=4.0) + row.format(n="two", band="6cm", flux=2.0)
                   + row.format(n="no20", band="6cm", flux=1.0))
    cals = {c.name: c for c in load_calibrators(csv)}
    assert set(cals) == {"only20", "two"}
    assert cals["only20"].spectral_index == -0.7
    assert cals["two"].spectral_index == pytest.approx(np.log(0.5) / np.log(4.86 / 1.4))
    assert find_calibrator("3C286").spectral_index == pytest.approx(-0.46, abs=0.01)


def test_settings_choose_catalogue_level_and_floor(group, layout_env, monkeypatch):
    static = layout_env / "stage" / "static"
    target = static / "catalogs" / "mine.tsv"
    target.parent.mkdir(parents=True)
    shutil.copy(group["nvss"], target)
    monkeypatch.setenv("CONTIMG_NVSS_CATALOG", "mine.tsv")
    monkeypatch.setenv("CONTIMG_SKY_BEAM_LEVEL", "0.5")
    monkeypatch.setenv("CONTIMG_SKY_FLUX_FLOOR_JY", "0.7")
    config = SkyModelSettings.from_settings()
    assert config == SkyModelSettings(target, 0.5, 0.7)
    chosen = sky_model_for_ms(group["ms"])
    pointing = pointing_from_ms(group["ms"])
    ra = np.array([c.ra_deg for c in chosen])
    dec = np.array([c.dec_deg for c in chosen])
    low, centre = pointing.freqs_hz.min(), pointing.freqs_hz.mean()
    assert chosen and (pointing.beam_power(ra, dec, [low]).max(axis=1) >= 0.5).all()
    flux = np.array([c.flux_jy for c in chosen])
    assert (flux * pointing.beam_power(ra, dec, [centre]).max(axis=(1, 2)) >= 0.7).all()
    assert len(chosen) < len(sky_model_for_ms(group["ms"], SkyModelSettings(target, 0.1, 0.02)))


def test_missing_and_malformed_catalogues_name_the_path(tmp_path, group, layout_env):
    missing = tmp_path / "nowhere" / "nvss.fits"
    with pytest.raises(CatalogMissingError, match="VIII/65") as info:
        load_nvss(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(CatalogMissingError, match=re.escape(str(layout_env))):
        sky_model_for_ms(group["ms"])  # the default static/catalogs/nvss.tsv is absent
    cases = {
        "garbage.tsv": "this is not\ta catalogue\n1\t2\n",
        "noflux.csv": "RAJ2000,DEJ2000,Name\n08 34 54.9,+55 34 21,x\n",
        "badpos.csv": "RAJ2000,DEJ2000,S1.4\n08 34 54.9,+55 34 21,12.0\nnot,a position,3\n",
        "short.tsv": "NVSS\tRAJ2000\tDEJ2000\tS1.4\nJ0\t08 34 54.9\n",
        "empty.csv": "",
        "bad.fits": "SIMPLE  = nonsense",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(CatalogError, match="VIII/65") as info:
            load_nvss(path)
        assert str(path) in str(info.value), name


def test_csv_and_fits_tables_read_like_the_tsv(tmp_path):
    sources = [CatalogSource(128.7287, 55.5725, 8.8), CatalogSource(359.99, -12.5, 0.0123),
               CatalogSource(10.5, 80.25, 1.5, 45.0, 20.0, 30.0)]
    tsv = read_nvss_table(write_nvss_table(tmp_path / "nvss.tsv", sources))
    lines = (tmp_path / "nvss.tsv").read_text().splitlines()
    csv = tmp_path / "vizier.csv"  # VizieR CSV export: header and units rows, comma separated
    csv.write_text("\n".join(",".join(ln.split("\t")) for ln in lines if not ln.startswith("-")) + "\n")
    vizier_fits = tmp_path / "vizier.fits"  # VizieR FITS: decimal degrees, S1.4 in mJy
    fits.BinTableHDU.from_columns([
        fits.Column("RAJ2000", "D", "deg", array=[s.ra_deg for s in sources]),
        fits.Column("DEJ2000", "D", "deg", array=[s.dec_deg for s in sources]),
        fits.Column("S1.4", "E", "mJy", array=[s.flux_jy * 1e3 for s in sources]),
        fits.Column("MajAxis", "E", "arcsec", array=[s.major_arcsec for s in sources]),
    ]).writeto(vizier_fits)
    nrao_fits = tmp_path / "CATALOG.FIT"  # NRAO's own: degrees, PEAK INT in Jy, axes in deg
    fits.BinTableHDU.from_columns([
        fits.Column("RA(2000)", "D", "DEGREES", array=[s.ra_deg for s in sources]),
        fits.Column("DEC(2000)", "D", "DEGREES", array=[s.dec_deg for s in sources]),
        fits.Column("PEAK INT", "E", "JY/BEAM", array=[s.flux_jy for s in sources]),
        fits.Column("MAJOR AX", "E", "DEGREES", array=[s.major_arcsec / 3600 for s in sources]),
    ]).writeto(nrao_fits)
    for path in (csv, vizier_fits, nrao_fits):
        got = read_nvss_table(path)
        assert len(got) == 3, path
        for mine, theirs in zip(got, tsv, strict=True):
            assert mine.ra_deg == pytest.approx(theirs.ra_deg, abs=1e-5), path
            assert mine.dec_deg == pytest.approx(theirs.dec_deg, abs=1e-5), path
            assert mine.flux_jy == pytest.approx(theirs.flux_jy, rel=1e-3), path
        assert got[2].major_arcsec == pytest.approx(45.0, abs=0.1) or path == csv


def test_model_from_the_nvss_format_catalogue_reproduces_the_data_without_the_truth(
        group, layout_env, monkeypatch, tmp_path):
    catalogs = layout_env / "stage" / "static" / "catalogs"
    catalogs.mkdir(parents=True)
    shutil.copy(group["nvss"], catalogs / "nvss.tsv")  # as if it were the real NVSS
    hidden = tmp_path / "hidden-truth"
    shutil.move(group["truth_dir"], hidden)  # nothing may read the truth
    try:
        ms = tmp_path / "e.ms"
        shutil.copytree(group["ms"], ms)
        components = sky_model_for_ms(ms)
        report = predict_model_data(ms, components)
    finally:
        shutil.move(hidden, group["truth_dir"])
    names = [c.name for c in components]
    assert names.count(CAL.name) == 1 and len(names) == 7  # calibrator once, six field, no faint/far
    assert all(n.startswith("J") for n in names if n != CAL.name)
    assert report.n_components == 7 and report.beam
    data, model, a1, a2 = _columns(ms, "DATA", "MODEL_DATA", "ANTENNA1", "ANTENNA2")
    cross = a1 != a2
    residual = np.linalg.norm(data[cross] - model[cross]) / np.linalg.norm(data[cross])
    # The catalogue rounds positions to 0.15" and fluxes to 0.1 mJy; the simulator works in
    # apparent coordinates, ft (and we) in J2000: sub-percent, not 1e-4.
    assert residual < 0.02, residual
    autos = np.abs(data[~cross] - model[~cross]).max() / np.abs(data[~cross]).max()
    assert autos < 1e-3, autos  # the beam through the drift scan, per integration and channel
