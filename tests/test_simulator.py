import subprocess
import warnings

import h5py
import numpy as np
import pytest

from contimg import naming
from contimg.catalogs.nvss import read_nvss_table
from contimg.simulation import instrument as inst
from contimg.simulation.telescope import SimulationRequest, simulate
from contimg.uvh5_reading import read_group, read_subband
from tests.conftest import VENV_BIN


def test_cli_writes_two_tiny_groups_of_16_files(tmp_path):
    result = subprocess.run(
        [str(VENV_BIN / "contimg"), "simulate", "--size", "tiny", "--groups", "2",
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("*.hdf5"))
    assert len(files) == 32
    assert all(naming.parse_subband_filename(f.name) for f in files)


def test_files_follow_the_instrument_conventions(tiny_groups):
    group = tiny_groups[0]
    assert len(group.files) == 16
    subbands = sorted(naming.parse_subband_filename(f.name)[1] for f in group.files)
    assert subbands == list(range(16))
    stamps = [naming.parse_subband_filename(f.name)[0] for f in group.files]
    assert naming.iso_timestamp(min(stamps)) == group.group_id
    assert (max(stamps) - min(stamps)).total_seconds() <= 2
    top = None
    for path in sorted(group.files, key=lambda f: naming.parse_subband_filename(f.name)[1]):
        uvd = read_subband(path)
        freqs = uvd.freq_array
        assert np.all(np.diff(freqs) < 0), "channels descend within a file"
        if top is not None:
            assert freqs[0] < top, "sb00 is the highest subband"
        top = freqs[-1]
        assert list(uvd.polarization_array) == [-5, -6]  # XX, YY
        assert uvd.Ntimes == 24
        np.testing.assert_allclose(uvd.integration_time, 12.884902)
        assert uvd.telescope.name == "OVRO_MMA"
        assert uvd.telescope.Nants == 117
        assert uvd.telescope.antenna_names[0] == "1" and uvd.telescope.antenna_numbers[-1] == 116
        assert uvd.Nants_data == inst.PRESETS["tiny"].n_antennas
        with h5py.File(path, "r") as handle:
            assert handle["Header/uvw_array"].dtype == np.float32
            dec = handle["Header/extra_keywords/phase_center_dec"][()]
        assert dec == pytest.approx(np.radians(55.5725), abs=1e-4)


def test_full_preset_geometry_without_writing_it():
    full = inst.PRESETS["full"]
    assert (full.n_antennas, full.channels_per_subband) == (96, 48)
    freqs = np.concatenate([inst.subband_frequencies(sb) for sb in range(16)])
    assert freqs.size == 768
    assert freqs.max() == pytest.approx(1498.66e6, abs=0.1e6)
    assert freqs.min() == pytest.approx(1311.40e6, abs=0.1e6)
    np.testing.assert_allclose(-np.diff(freqs), inst.CHANNEL_WIDTH_HZ)
    assert len(inst.DEFAULT_ACTIVE_STATIONS) == 96
    assert len(set(inst.DEFAULT_ACTIVE_STATIONS)) == 96


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    def first_file(seed, where):
        (group,) = simulate(SimulationRequest(out_dir=tmp_path / where, size="tiny", seed=seed))
        with h5py.File(sorted(group.files)[0], "r") as handle:
            return handle["Data/visdata"][()]

    a, b, c = first_file(5, "a"), first_file(5, "b"), first_file(6, "c")
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_phasing_to_the_calibrator_leaves_it_real(tmp_path):
    """The simulated phases obey pyuvdata's convention: phasing to a source removes them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (group,) = simulate(SimulationRequest(out_dir=tmp_path, size="tiny", corrupt=False,
                                              sefd_jy=0.0, calibrator="0834+555"))
        uvd = read_group(group.files)
        cal = group.sources[0]
        cross = uvd.ant_1_array != uvd.ant_2_array
        before = np.degrees(np.abs(np.angle(uvd.data_array[cross]))).mean()
        uvd.phase(ra=np.radians(cal["ra_deg"]), dec=np.radians(cal["dec_deg"]), cat_name="cal")
    after = np.degrees(np.abs(np.angle(uvd.data_array[cross])))
    assert before > 30.0
    assert np.median(after) < 3.0  # only the faint field sources remain


def test_truth_and_nvss_catalogue_are_written(tiny_groups):
    group = tiny_groups[0]
    names = [s["name"] for s in group.sources]
    assert names[0] == "0834+555" and len(names) > 1
    catalogue = read_nvss_table(group.truth_json.with_name(
        group.truth_json.name.replace("_truth.json", "_nvss.tsv")))
    assert len(catalogue) == len(group.sources)
    assert catalogue[0].flux_jy == pytest.approx(8.8, rel=1e-3)
    assert catalogue[0].dec_deg == pytest.approx(group.sources[0]["dec_deg"], abs=1e-4)
    arrays = np.load(group.truth_npz)
    assert arrays["gains"].shape == (24, 6, 2)
    assert arrays["bandpass"].shape == (6, 32, 2)


def test_bad_requests_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown size"):
        simulate(SimulationRequest(out_dir=tmp_path, size="huge"))
    with pytest.raises(KeyError, match="not in"):
        simulate(SimulationRequest(out_dir=tmp_path, calibrator="NOPE+000"))


def test_corruptions_off_means_unit_gains_at_every_time():
    from contimg.simulation.corruptions import draw_corruptions

    off = draw_corruptions(0, 4, np.linspace(1.3e9, 1.5e9, 8), enabled=False)
    gains = off.gains(np.linspace(60961.0, 60961.9, 50))
    np.testing.assert_array_equal(gains, np.ones_like(gains))
    np.testing.assert_array_equal(off.bandpass, np.ones_like(off.bandpass))


# The telescope writer's layout (dsa110-meridian-fs, initialize_uvh5_file), field for field.
WRITER_HEADER = {
    "latitude", "longitude", "altitude", "telescope_name", "instrument", "object_name",
    "history", "phase_type", "phase_center_app_dec", "Nants_data", "Nants_telescope",
    "antenna_diameters", "ant_1_array", "ant_2_array", "antenna_names", "antenna_numbers",
    "Nbls", "Nblts", "Nfreqs", "Npols", "Ntimes", "Nspws", "uvw_array", "time_array",
    "integration_time", "freq_array", "channel_width", "spw_array", "polarization_array",
    "antenna_positions", "extra_keywords"}
WRITER_EXTRA = {"phase_center_dec", "ha_phase_center", "phase_center_epoch", "applied_delays_ns"}


def test_default_files_have_exactly_the_correlator_writers_layout(tiny_groups):
    with h5py.File(tiny_groups[0].files[0], "r") as handle:
        header = handle["Header"]
        assert set(handle) == {"Header", "Data"}
        assert set(header) == WRITER_HEADER
        assert set(header["extra_keywords"]) == WRITER_EXTRA
        for absent in ("lst_array", "phase_center_catalog", "version", "flex_spw", "x_orientation"):
            assert absent not in header
        assert header["phase_type"][()] == b"drift" and header["telescope_name"][()] == b"OVRO_MMA"
        assert header["antenna_names"].dtype == np.dtype("S4") and header["Nspws"][()] == 1
        assert header["uvw_array"].dtype == np.float32 and header["freq_array"].shape[0] == 1
        assert np.ndim(header["channel_width"][()]) == 0 and header["channel_width"][()] > 0
        assert header["polarization_array"][()].tolist() == [-5, -6]
        assert header["extra_keywords/phase_center_epoch"][()] in (b"HADEC", "HADEC")
        data = handle["Data"]
        assert data["visdata"].dtype == np.complex64 and data["visdata"].shape[1] == 1
        assert data["flags"].dtype == bool and data["nsamples"].dtype == np.float32
        assert data["visdata"].chunks is not None  # grown one integration at a time
        uvw = header["uvw_array"][()].reshape(24, -1, 3)
        np.testing.assert_array_equal(uvw, np.broadcast_to(uvw[0], uvw.shape))  # fixed per baseline
    assert not list(tiny_groups[0].files[0].parent.glob("*_incomplete.hdf5"))
