"""Science validation of the solves: a simulated calibrator transit with known gains,
bandpass and noise; the platform's own sky model, flagging and solves recover them.

SNR: small preset (32 antennas, 128 channels of 1.46 MHz, 24 x 12.88 s), SEFD 5800 Jy
-> ~0.95 Jy per visibility; 3C147 at ~22.5 Jy near the beam centre gives ~600 per
antenna and channel over the group for the bandpass, more for the gains.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from casacore import tables

from contimg.calibration.flagging import flag_ms
from contimg.calibration.predict import predict_model_data
from contimg.calibration.sky_model import SkyModelSettings, sky_model_for_ms
from contimg.calibration.solve import solve_calibrator
from contimg.conversion.ms_writer import convert_group
from contimg.simulation.telescope import SimulationRequest, simulate
from contimg.simulation.truth import load_truth


@pytest.fixture(scope="module")
def calibrator_transit(tmp_path_factory):
    """A calibrator group solved by the platform's code, with the truth kept apart."""
    out = tmp_path_factory.mktemp("calsolve")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (group,) = simulate(SimulationRequest(out_dir=out / "files", size="small", seed=21,
                                              calibrator="3C147"))
    # The simulator's NVSS-format table plays the real catalogue; the truth moves away
    # so the code under test cannot read it.
    catalog = out / "static" / "catalogs" / "nvss.tsv"
    catalog.parent.mkdir(parents=True)
    shutil.copy(next(group.truth_json.parent.glob("*_nvss.tsv")), catalog)
    truth_dir = out / "truth-kept-apart"
    shutil.move(group.truth_json.parent, truth_dir)
    ms = out / "cal.ms"
    convert_group(group.files, ms)
    components = sky_model_for_ms(ms, SkyModelSettings(catalog_path=catalog))
    predict_model_data(ms, components)
    flag_ms(ms, rfi=False)
    work = out / "work"
    work.mkdir()
    solved = solve_calibrator(ms, work, group.group_id)
    truth, arrays = load_truth(truth_dir / group.truth_json.name)
    return ms, solved, arrays


def _table(solved, kind: str) -> Path:
    return next(t.path for t in solved.tables if t.kind == kind)


def _solutions(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with tables.table(str(path), ack=False) as table:
        return table.getcol("CPARAM"), table.getcol("FLAG"), table.getcol("ANTENNA1")


def _truth_for(arrays: dict, ms: Path) -> tuple[dict[int, int], np.ndarray]:
    index = {int(a): i for i, a in enumerate(arrays["antenna_numbers"])}
    channel = {round(float(f)): i for i, f in enumerate(arrays["freqs_hz"])}
    with tables.table(str(ms / "SPECTRAL_WINDOW"), ack=False) as spw:
        chans = np.array([channel[round(float(f))] for f in spw.getcol("CHAN_FREQ")[0]])
    return index, chans


def _refant_index(solved, ms: Path) -> int:
    with tables.table(str(ms / "ANTENNA"), ack=False) as antennas:
        return list(antennas.getcol("NAME")).index(solved.refant)


def test_bandpass_recovered_per_channel_within_2_percent_and_2_degrees(calibrator_transit):
    ms, solved, arrays = calibrator_transit
    index, chans = _truth_for(arrays, ms)
    values, flags, antennas = _solutions(_table(solved, "bpcal"))
    ref = _refant_index(solved, ms)
    true_bp = np.conj(arrays["bandpass"][:, chans, :])  # the MS holds the conjugate
    ref_row = np.flatnonzero(antennas == ref)[0]
    checked = 0
    for row, antenna in enumerate(antennas):
        if antenna == ref or flags[row].all():
            continue
        solved_rel = values[row] / values[ref_row]  # (chan, pol), relative to the refant
        true_rel = true_bp[index[antenna]] / true_bp[index[ref]]
        # B is normalised (solnorm): compare shapes, each scaled to mean amplitude 1.
        ratio = (solved_rel / np.abs(solved_rel).mean(axis=0)) / (true_rel / np.abs(true_rel).mean(axis=0))
        good = ~flags[row]
        assert np.abs(np.abs(ratio[good]) - 1).max() < 0.02, antenna
        assert np.degrees(np.abs(np.angle(ratio[good]))).max() < 2.0, antenna
        checked += 1
    assert checked >= 25


def test_gains_recovered_within_2_degrees_and_2_percent(calibrator_transit):
    """The total gain (bandpass x phase x amplitude+phase) per antenna and integration,
    relative to the reference antenna, against the truth."""
    ms, solved, arrays = calibrator_transit
    index, chans = _truth_for(arrays, ms)
    ref = _refant_index(solved, ms)
    bp_values, bp_flags, bp_ants = _solutions(_table(solved, "bpcal"))
    gp_values, _, gp_ants = _solutions(_table(solved, "gpcal"))
    g2_values, g2_flags, g2_ants = _solutions(_table(solved, "2gcal"))
    with tables.table(str(_table(solved, "2gcal")), ack=False) as table:
        g2_times = table.getcol("TIME")
    with tables.table(str(ms), ack=False) as main:
        ms_times = np.unique(main.getcol("TIME"))
    mid_channel = chans.size // 2
    truth_gain = np.conj(arrays["gains"])  # (time, antenna, pol)
    truth_bp = np.conj(arrays["bandpass"][:, chans[mid_channel], :])  # (antenna, pol)
    checked = 0
    for antenna in np.unique(g2_ants):
        if antenna == ref:
            continue
        for row in np.flatnonzero(g2_ants == antenna):
            if g2_flags[row].any():
                continue
            t = np.argmin(np.abs(ms_times - g2_times[row]))

            def total(ant: int, gain_row: int) -> np.ndarray:
                return (bp_values[bp_ants == ant][0, mid_channel] * gp_values[gp_ants == ant][0, 0]
                        * g2_values[gain_row, 0])

            ref_row = np.flatnonzero((g2_ants == ref) & (g2_times == g2_times[row]))[0]
            solved_rel = total(antenna, row) / total(ref, ref_row)
            true_rel = (truth_gain[t, index[antenna]] * truth_bp[index[antenna]]) / (
                truth_gain[t, index[ref]] * truth_bp[index[ref]])
            ratio = solved_rel / true_rel
            assert abs(abs(ratio).max() - 1) < 0.02 and abs(abs(ratio).min() - 1) < 0.02, antenna
            assert np.degrees(np.abs(np.angle(ratio))).max() < 2.0, antenna
            checked += 1
    assert checked >= 25


def test_the_solves_record_their_quality(calibrator_transit):
    _, solved, _ = calibrator_transit
    assert [t.kind for t in solved.tables] == ["bpcal", "gpcal", "2gcal"]
    for table in solved.tables:
        assert table.quality.median_snr > 20 and table.quality.flagged_fraction < 0.1
        if table.kind != "bpcal":  # per antenna and feed: XX and YY phases are independent
            assert table.quality.phase_scatter_deg < 10, table


def test_the_flux_scale_comes_from_the_model_in_jansky(calibrator_transit):
    """Not relative to anything: |total gain| per antenna (mid channel, group median)
    against the truth, so the corrected data are in Jy."""
    ms, solved, arrays = calibrator_transit
    index, chans = _truth_for(arrays, ms)
    bp_values, _, bp_ants = _solutions(_table(solved, "bpcal"))
    gp_values, _, gp_ants = _solutions(_table(solved, "gpcal"))
    g2_values, g2_flags, g2_ants = _solutions(_table(solved, "2gcal"))
    mid = chans.size // 2
    ratios = []
    for antenna in solved.antennas_in_data:
        rows = (g2_ants == antenna) & ~g2_flags[:, 0, 0]
        if not rows.any():
            continue
        total = abs(bp_values[bp_ants == antenna][0, mid, 0] * gp_values[gp_ants == antenna][0, 0, 0]
                    * np.median(np.abs(g2_values[rows, 0, 0])))
        truth = np.median(np.abs(arrays["gains"][:, index[antenna], 0])) * abs(
            arrays["bandpass"][index[antenna], chans[mid], 0])
        ratios.append(total / truth)
    assert len(ratios) >= 25
    assert abs(np.median(ratios) - 1) < 0.02, np.median(ratios)
