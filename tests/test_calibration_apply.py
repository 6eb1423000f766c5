"""The own gain solver and the own apply against CASA (gaincal, applycal), and the
all-or-nothing apply under a real kill -9.

Data: a tiny calibrator transit with RFI (so solutions and channels are flagged), a
delay, CASA's bandpass and the own gain tables — every table kind the apply reads.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from casacore import tables

from contimg.calibration.apply import apply_paths
from contimg.calibration.casa_reference import casa_applycal, casa_gaincal
from contimg.calibration.column_commit import PHASE_KEYWORD, SCRATCH_PREFIX, recover_ms
from contimg.calibration.flagging import flag_ms
from contimg.calibration.pipeline import QualityLimits, quality_problems
from contimg.calibration.predict import predict_model_data
from contimg.calibration.sky_model import SkyModelSettings, sky_model_for_ms
from contimg.calibration.solve import SolveOptions, solve_calibrator
from contimg.conversion.ms_writer import convert_group
from contimg.simulation.telescope import SimulationRequest, simulate


@pytest.fixture(scope="module")
def solved_transit(tmp_path_factory):
    out = tmp_path_factory.mktemp("apply")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (group,) = simulate(SimulationRequest(out_dir=out / "files", size="tiny", seed=5,
                                              calibrator="3C147", rfi=True))
    catalog = next(group.truth_json.parent.glob("*_nvss.tsv"))
    ms = out / "cal.ms"
    convert_group(group.files, ms)
    predict_model_data(ms, sky_model_for_ms(ms, SkyModelSettings(catalog_path=catalog)))
    flag_ms(ms, rfi=True)
    (out / "work").mkdir()
    solved = solve_calibrator(ms, out / "work", group.group_id, SolveOptions(do_k=True))
    return ms, solved


def _copy(ms: Path, name: str) -> Path:
    copy = ms.with_name(name)
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(ms, copy)
    return copy


def _columns(ms: Path, *names: str) -> list[np.ndarray]:
    with tables.table(str(ms), ack=False) as main:
        return [main.getcol(name) for name in names]


def test_a_set_with_a_delay_passes_its_quality_limits(solved_transit):
    ms, solved = solved_transit
    assert quality_problems(solved, QualityLimits()) == []


def test_the_own_apply_equals_applycal_to_1e_5(solved_transit):
    ms, solved = solved_transit
    assert [t.kind for t in solved.tables] == ["kcal", "bpcal", "gpcal", "2gcal"]
    ours, casa = _copy(ms, "ours.ms"), _copy(ms, "casa.ms")
    apply_paths(ours, solved.paths())
    casa_applycal(casa, solved.paths(), [t.kind for t in solved.tables])  # reads our G tables
    ours_data, ours_flags = _columns(ours, "CORRECTED_DATA", "FLAG")
    casa_data, casa_flags = _columns(casa, "CORRECTED_DATA", "FLAG")
    np.testing.assert_array_equal(ours_flags, casa_flags)
    good = ~casa_flags
    assert good.sum() > 0.3 * good.size and casa_flags.sum() > 0  # both kinds are compared
    relative = np.abs(ours_data[good] - casa_data[good]) / np.abs(casa_data[good])
    assert relative.max() < 1e-5


def test_the_own_gains_equal_casa_gaincal(solved_transit, tmp_path):
    ms, solved = solved_transit
    applied = [str(t.path) for t in solved.tables if t.kind in ("kcal", "bpcal")]
    casa = casa_gaincal(ms, tmp_path, applied, solved.refant)
    ours = [t.path for t in solved.tables if t.kind in ("gpcal", "2gcal")]
    for mine, theirs in zip(ours, casa, strict=True):
        (ga, fa, ta), (gb, fb, tb) = (_columns(p, "CPARAM", "FLAG", "TIME") for p in (mine, theirs))
        assert ga.shape == gb.shape, mine.name
        np.testing.assert_allclose(ta, tb, atol=2.0)  # interval centroids, seconds
        good = ~fa & ~fb
        assert good.sum() >= 0.9 * (~fb).sum() > 0  # the solutions CASA keeps, we keep
        ratio = ga[good] / gb[good]
        assert np.degrees(np.abs(np.angle(ratio))).max() < 0.1, mine.name
        assert np.abs(np.abs(ratio) - 1).max() < 1e-3, mine.name


_WRITER = """
import os, signal, sys, time
from pathlib import Path
import numpy as np
import contimg.calibration.column_commit as commit

ms, ready, moment = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if moment == "commit":  # die in the worst place: the old column gone, the new not renamed
    def dying_swap(table, scratch):
        table.removecols(["CORRECTED_DATA"])
        table.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    commit._swap = dying_swap
with commit.replaced_columns(ms, {"CORRECTED_DATA": "DATA"}) as main:
    shape = main.getcell("DATA", 0).shape
    rows = main.nrows() if moment == "commit" else main.nrows() // 2
    main.putcol(commit.scratch_name("CORRECTED_DATA"), np.full((rows, *shape), 3 + 3j, np.complex64), 0, rows)
    main.flush()
    if moment == "write":
        ready.touch()
        time.sleep(600)
"""


def _killed_writer(ms: Path, moment: str, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(ms), str(ready), moment])
    deadline = time.monotonic() + 120
    while moment == "write" and not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if moment == "write":
        child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=120) == -signal.SIGKILL


def test_an_apply_killed_while_writing_leaves_the_ms_as_it_was(solved_transit, tmp_path):
    ms, solved = solved_transit
    copy = _copy(ms, "killed-write.ms")
    apply_paths(copy, solved.paths())
    (before,) = _columns(copy, "CORRECTED_DATA")
    _killed_writer(copy, "write", tmp_path)
    with tables.table(str(copy), ack=False) as main:  # before any recovery
        assert main.getkeyword(PHASE_KEYWORD) == "writing"
        np.testing.assert_array_equal(main.getcol("CORRECTED_DATA"), before)
    assert "dropped" in recover_ms(copy)
    with tables.table(str(copy), ack=False) as main:
        assert not [c for c in main.colnames() if c.startswith(SCRATCH_PREFIX)]
        assert PHASE_KEYWORD not in main.getkeywords()
        np.testing.assert_array_equal(main.getcol("CORRECTED_DATA"), before)


def test_an_apply_killed_while_committing_is_completed_on_the_next_opening(solved_transit, tmp_path):
    ms, solved = solved_transit
    copy = _copy(ms, "killed-commit.ms")
    apply_paths(copy, solved.paths())
    _killed_writer(copy, "commit", tmp_path)
    with tables.table(str(copy), ack=False) as main:
        assert "CORRECTED_DATA" not in main.colnames()
        assert main.getkeyword(PHASE_KEYWORD) == "committing"
    assert "completed" in recover_ms(copy)
    (after,) = _columns(copy, "CORRECTED_DATA")
    assert (after == 3 + 3j).all(), "the whole new column, not a half"


def test_the_next_apply_after_a_kill_gives_what_an_uninterrupted_one_gives(solved_transit,
                                                                          tmp_path):
    ms, solved = solved_transit
    clean, killed = _copy(ms, "clean.ms"), _copy(ms, "killed-then-redone.ms")
    apply_paths(clean, solved.paths())
    _killed_writer(killed, "write", tmp_path)
    os.sync()
    apply_paths(killed, solved.paths())  # recovers first, then applies
    np.testing.assert_array_equal(*(_columns(p, "CORRECTED_DATA")[0] for p in (clean, killed)))
    np.testing.assert_array_equal(*(_columns(p, "FLAG")[0] for p in (clean, killed)))


def test_an_ms_written_by_pyuvdata_with_other_antenna_names_is_calibrated(tmp_path):
    """Not the platform's converter: pyuvdata's write_ms (its own storage managers), and
    antennas named `ant000`… (no DSA-110 station number for the preferred refants)."""
    from contimg.uvh5_reading import read_group

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (group,) = simulate(SimulationRequest(out_dir=tmp_path / "files", size="tiny", seed=9,
                                              calibrator="3C147", layout="pyuvdata"))
        centre = convert_group(group.files, tmp_path / "ours.ms").phase_centre_deg
        uvd = read_group(group.files)
        uvd.phase(ra=np.radians(centre[0]), dec=np.radians(centre[1]), cat_name="centre")
        uvd.telescope.antenna_names = [f"ant{n:03d}" for n in uvd.telescope.antenna_numbers]
        ms = tmp_path / "pyuvdata.ms"
        uvd.write_ms(str(ms), clobber=True, run_check=False)
    catalog = next(group.truth_json.parent.glob("*_nvss.tsv"))
    predict_model_data(ms, sky_model_for_ms(ms, SkyModelSettings(catalog_path=catalog)))
    flag_ms(ms, rfi=False)
    (tmp_path / "work").mkdir()
    solved = solve_calibrator(ms, tmp_path / "work", group.group_id, SolveOptions(do_k=True))
    assert solved.refant.startswith("ant") and quality_problems(solved, QualityLimits()) == []
    casa = _copy(ms, "pyuvdata-casa.ms")
    apply_paths(ms, solved.paths())
    casa_applycal(casa, solved.paths(), [t.kind for t in solved.tables])
    (ours, ours_flags), (theirs, their_flags) = (_columns(p, "CORRECTED_DATA", "FLAG") for p in (ms, casa))
    np.testing.assert_array_equal(ours_flags, their_flags)
    good = ~their_flags
    assert (np.abs(ours[good] - theirs[good]) / np.abs(theirs[good])).max() < 1e-5
