"""Flagging before solving (issue 9, item 2): real AOFlagger on simulated groups with RFI.

The group is the `small` preset (32 antennas, 128 channels of 1.46 MHz, 24 integrations)
with the 0834+555 calibrator in the beam, thermal noise from SEFD 5800 Jy and `rfi=True`.
The truth is written outside the group's directory and read only by the tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from casacore import tables

from contimg.calibration.flagging import FlaggingError, default_strategy, flag_ms, run_aoflagger
from contimg.conversion.ms_writer import convert_group
from contimg.simulation.rfi import draw_rfi, noise_sigma_jy
from contimg.simulation.telescope import SimulationRequest, simulate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rfi_group(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(converted MS with RFI, its RFI truth file) — the truth kept away from the files."""
    root = tmp_path_factory.mktemp("flagging")
    (root / "incoming").mkdir()
    request = SimulationRequest(out_dir=root / "incoming", size="small", calibrator="0834+555",
                                seed=5, rfi=True, truth_dir=root / "truth")
    group = simulate(request)[0]
    ms = root / "group.ms"
    convert_group(group.files, ms)
    return ms, next((root / "truth").glob("*_rfi.npz"))


@pytest.fixture
def fresh_ms(rfi_group: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the converted group, to flag and alter."""
    return Path(shutil.copytree(rfi_group[0], tmp_path / "copy.ms"))


def _columns(ms: Path, *names: str) -> list[np.ndarray]:
    with tables.table(str(ms), ack=False) as main:
        return [main.getcol(name) for name in names]


def test_flagging_finds_injected_rfi_and_spares_clean_samples(fresh_ms: Path,
                                                              rfi_group: tuple[Path, Path]) -> None:
    """>= 90 % of the injected RFI samples flagged, < 3 % of the clean ones.

    SNR: thermal noise sigma = 5800 Jy / sqrt(2 x 1.465 MHz x 12.88 s) = 0.95 Jy per
    real/imaginary part; persistent carriers are 10-30 sigma and broadband bursts 8-20 sigma,
    each sample varying by +-30 %, so every RFI sample is between 5.6 and 39 sigma (up to 65
    where a burst crosses a carrier; asserted from the truth). Counted on cross-correlations,
    both polarisations.
    """
    truth = np.load(rfi_group[1])
    snr = truth["amplitude_jy"][truth["mask"]] / float(truth["noise_sigma_jy"])
    assert snr.min() > 5.5 and snr.max() < 66
    assert default_strategy().is_file()
    report = flag_ms(fresh_ms)
    flags, ant1, ant2, times = _columns(fresh_ms, "FLAG", "ANTENNA1", "ANTENNA2", "TIME")
    _, time_index = np.unique(times, return_inverse=True)
    cross = ant1 != ant2
    rfi = np.broadcast_to(truth["mask"][time_index][:, :, None], flags.shape)[cross]
    found, clean_flagged = flags[cross][rfi].mean(), flags[cross][~rfi].mean()
    print(f"RFI found {found:.4f}, clean flagged {clean_flagged:.4f}, "
          f"AOFlagger {report.seconds['aoflagger']:.2f} s")
    assert found >= 0.90
    assert clean_flagged < 0.03
    # The persistent channels stand out in the per-channel fractions.
    assert np.all(report.channel_fraction[truth["persistent_channels"]] > 0.9)
    assert report.after_fraction > report.preflag_fraction > report.before_fraction == 0.0


def test_autocorrelations_zeros_and_nonfinite_flagged_and_existing_flags_kept(fresh_ms: Path) -> None:
    """Autos, exact zeros, NaN and inf samples are flagged; flags set before are still set."""
    with tables.table(str(fresh_ms), readonly=False, ack=False) as main:
        data, flags = main.getcol("DATA"), main.getcol("FLAG")
        ant1, ant2 = main.getcol("ANTENNA1"), main.getcol("ANTENNA2")
        rows = np.flatnonzero(ant1 != ant2)[[10, 500, 2000, 3000]]
        data[rows[0], 7, 0] = 0
        data[rows[1], 8, 1] = np.nan
        data[rows[2], 9, 0] = np.inf
        flags[rows[3], 20:30, :] = True  # an operator's flags on clean data
        main.putcol("DATA", data)
        main.putcol("FLAG", flags)
    report = flag_ms(fresh_ms)
    (after,) = _columns(fresh_ms, "FLAG")
    assert after[ant1 == ant2].all()
    assert after[rows[0], 7, 0] and after[rows[1], 8, 1] and after[rows[2], 9, 0]
    assert after[rows[3], 20:30, :].all()
    assert (after | ~flags).all(), "a flag set before flagging was cleared"
    assert report.before_fraction == pytest.approx(flags.mean())


def test_flags_set_before_survive_a_strategy_that_clears_them(fresh_ms: Path, tmp_path: Path) -> None:
    """Whatever the strategy does, nothing flagged before AOFlagger is unflagged after it."""
    clearing = tmp_path / "clear.lua"
    clearing.write_text('aoflagger.require_min_version("3.0")\n'
                        "function execute(input)\n  input:clear_mask()\nend\n")
    with tables.table(str(fresh_ms), readonly=False, ack=False) as main:
        flags = main.getcol("FLAG")
        flags[100:200, 40:50, :] = True
        main.putcol("FLAG", flags)
    flag_ms(fresh_ms, strategy=clearing)
    (after,) = _columns(fresh_ms, "FLAG")
    assert after[100:200, 40:50, :].all()


def test_fractions_per_antenna_and_channel_on_a_constructed_case(fresh_ms: Path) -> None:
    """One antenna flagged everywhere, one channel flagged on every row: fractions by hand."""
    bad_antenna, bad_channel = 3, 5
    with tables.table(str(fresh_ms), readonly=False, ack=False) as main:
        ant1, ant2 = main.getcol("ANTENNA1"), main.getcol("ANTENNA2")
        flags = np.zeros(main.getcol("FLAG").shape, bool)
        flags[(ant1 == bad_antenna) | (ant2 == bad_antenna)] = True
        flags[:, bad_channel, :] = True
        main.putcol("FLAG", flags)
    report = flag_ms(fresh_ms, rfi=False)
    n_ant = np.unique(np.concatenate([ant1, ant2])).size
    n_chan = flags.shape[1]
    fractions = dict(zip(report.antenna_names, report.antenna_fraction, strict=True))
    with tables.table(str(fresh_ms / "ANTENNA"), ack=False) as antennas:
        bad_name = antennas.getcol("NAME")[bad_antenna]
    assert len(fractions) == n_ant
    assert fractions.pop(bad_name) == pytest.approx(1.0)
    # Another antenna: 1 of its n_ant-1 baselines fully flagged, the rest only bad_channel.
    other = (1 + (n_ant - 2) / n_chan) / (n_ant - 1)
    assert np.allclose(list(fractions.values()), other)
    expected_channel = np.full(n_chan, 2 / n_ant)  # baselines with bad_antenna / all baselines
    expected_channel[bad_channel] = 1.0
    assert np.allclose(report.channel_fraction, expected_channel)
    with_autos = flags | (ant1 == ant2)[:, None, None]
    assert report.preflag_fraction == pytest.approx(with_autos.mean())
    assert report.after_fraction == pytest.approx(with_autos.mean())
    assert report.before_fraction == pytest.approx(flags.mean())
    assert set(report.metadata()) >= {"flag_fraction_before", "flag_fraction_after", "worst_antennas"}


def test_missing_aoflagger_is_a_clear_error(fresh_ms: Path) -> None:
    with pytest.raises(FlaggingError, match="Debian package 'aoflagger'"):
        run_aoflagger(fresh_ms, default_strategy(), executable="no-such-aoflagger")


def test_simulated_rfi_is_deterministic_and_shaped_as_documented() -> None:
    """Same seed, same RFI; a few persistent channels at every time, bursts across the band."""
    freqs = np.linspace(1.5e9, 1.3e9, 256)  # file order: descending
    sigma = noise_sigma_jy(5800.0, 781e3, 12.88)
    first, again = (draw_rfi(4, 0, 24, freqs, 10, sigma) for _ in range(2))
    assert np.array_equal(first.amplitude_jy, again.amplitude_jy)
    assert not np.array_equal(first.amplitude_jy, draw_rfi(4, 1, 24, freqs, 10, sigma).amplitude_jy)
    mask, ascending = first.truth_mask()
    assert np.all(np.diff(ascending) > 0)
    always = np.flatnonzero(mask.all(axis=0))
    assert 2 <= always.size <= 8
    burst_rows = np.flatnonzero(mask.sum(axis=1) > always.size)
    assert np.array_equal(burst_rows, first.burst_integrations)
    assert np.all(mask[burst_rows].mean(axis=1) >= 0.3)
