"""The fast converter agrees with pyuvdata's own write_ms, and CASA and WSClean accept it."""

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from casacore import tables

from contimg.conversion.ms_writer import convert_group
from contimg.uvh5_reading import read_group


@pytest.fixture(scope="module")
def converted(tiny_groups, tmp_path_factory) -> tuple[Path, Path]:
    """Our MS and pyuvdata's MS of the same group, phased to the same centre."""
    out = tmp_path_factory.mktemp("conversion")
    ours = out / "ours.ms"
    report = convert_group(tiny_groups[0].files, ours)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd = read_group(tiny_groups[0].files)
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
