"""`python -m benchmarks calibration`: each calibration stage beside CASA's own path.

Parts are registered in `PARTS` (name -> function(size, work) -> dict of figures); the
command runs the chosen ones on one simulated group and ends with one JSON line that
merges their figures: `flag` (against CASA flagdata), `model` (sky model + MODEL_DATA
against CASA `ft`) and `solve` (the daily and hourly solves, the hourly gains against
CASA `gaincal` and the own apply against CASA `applycal`, with their largest differences).

model: a group is simulated once (shared with the conversion benchmark's cache) and
converted once to a base MS; each side then works on its own copy, in its own child
process, so wall time and peak memory are its own. Ours is the platform path — the
pointing from the MS, the selection from an NVSS-format catalogue (the simulator's
table stands in for the real NVSS), MODEL_DATA with the beam. CASA's is `ft` of the
same components (no beam: ft has none) with `usescratch=True`.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.conversion import _group_files
from contimg.calibration.casa_reference import casa_ft


def bench_model(size: str, work: Path) -> dict:
    """Time MODEL_DATA (ours) and CASA ft on the same components; figures as a dict."""
    base, catalogue = _base_ms(size, work)
    ours = _child("ours", base, catalogue, work)
    print(f"ours: {ours['seconds']:.2f} s for {ours['n_components']} components "
          f"({ours['select_s']:.2f} s selection, {ours['detail']}), peak {ours['peak_gb']:.2f} GB")
    casa = _child("ft", base, catalogue, work)
    print(f"CASA ft: {casa['seconds']:.2f} s for the same components, peak {casa['peak_gb']:.2f} GB")
    return {"model_s": round(ours["seconds"], 2), "ft_s": round(casa["seconds"], 2),
            "model_ratio": round(casa["seconds"] / ours["seconds"], 2),
            "model_components": ours["n_components"], "model_peak_gb": round(ours["peak_gb"], 2),
            "ft_peak_gb": round(casa["peak_gb"], 2)}


def bench_solve(size: str, work: Path) -> dict:
    """Time the daily solve (bandpass + gains), the hourly gain solve and the apply on
    the calibrator group, in one child process (its peak memory is the solves')."""
    base, catalogue = _base_ms(size, work)
    solved = _child("solve", base, catalogue, work)
    print(f"solves: bandpass {solved['bandpass_s']:.2f} s, gains {solved['gain_s']:.2f} s, "
          f"hourly gains {solved['hourly_gain_s']:.2f} s (CASA gaincal {solved['gaincal_s']:.2f} s, "
          f"largest difference {solved['gain_max_phase_diff_deg']:.3f} deg, "
          f"{solved['gain_max_amp_diff']:.1e} in amplitude), apply {solved['apply_s']:.2f} s "
          f"(CASA applycal {solved['applycal_s']:.2f} s, largest relative difference "
          f"{solved['apply_max_rel_diff']:.1e}), "
          f"peak {solved['peak_gb']:.2f} GB (model {solved['model_s']:.2f} s beforehand)")
    return {key: round(solved[key], 2) for key in
            ("daily_s", "bandpass_s", "gain_s", "hourly_gain_s", "gaincal_s", "apply_s",
             "applycal_s")} | {
        "gain_ratio": round(solved["gaincal_s"] / solved["hourly_gain_s"], 2),
        "gain_max_phase_diff_deg": round(solved["gain_max_phase_diff_deg"], 4),
        "gain_max_amp_diff": float(f"{solved['gain_max_amp_diff']:.2e}"),
        "apply_ratio": round(solved["applycal_s"] / solved["apply_s"], 2),
        "apply_max_rel_diff": float(f"{solved['apply_max_rel_diff']:.2e}"),
        "solve_peak_gb": round(solved["peak_gb"], 2)}


def bench_flag(size: str, work: Path) -> dict:
    """The flagging benchmark (its own file) as a part of this one."""
    from benchmarks.calibration_flagging import bench_flagging

    return bench_flagging(size, work)


PARTS: dict[str, Callable[[str, Path], dict]] = {"flag": bench_flag, "model": bench_model,
                                                 "solve": bench_solve}


def bench_calibration(size: str, work: Path, parts: list[str] | None = None) -> int:
    """Run the chosen parts (all by default), print their figures and one JSON line."""
    result: dict = {"size": size}
    for name in parts or list(PARTS):
        print(f"== {name}", flush=True)
        result.update(PARTS[name](size, work))
    peaks = [v for k, v in result.items() if k.endswith("_peak_gb") and not k.startswith(("ft", "casa"))]
    if peaks:
        result["peak_gb"] = max(peaks)  # the platform's own stages, the largest of them
    print(json.dumps(result))
    return 0


def _base_ms(size: str, work: Path) -> tuple[Path, Path]:
    """The converted group (made once) and its NVSS-format table."""
    files = _group_files(size, work, "correlator")
    base = work / f"calibration-{size}.ms"
    if not base.exists():
        from contimg.conversion.ms_writer import convert_group

        partial = base.with_name(base.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        convert_group(files, partial)
        partial.rename(base)
    return base, next((files[0].parent / "truth").glob("*_nvss.tsv"))


def _child(side: str, base: Path, catalogue: Path, work: Path) -> dict:
    ms = work / f"calibration-{side}.ms"
    shutil.rmtree(ms, ignore_errors=True)
    shutil.copytree(base, ms)
    try:
        done = subprocess.run([sys.executable, "-m", "benchmarks.calibration", side, str(ms),
                               str(catalogue)], capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{side} failed: {done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(ms, ignore_errors=True)


def _run_side(side: str, ms: Path, catalogue: Path) -> dict:
    from contimg.calibration.predict import predict_model_data
    from contimg.calibration.sky_model import SkyModelSettings, sky_model_for_ms

    config = SkyModelSettings(catalogue)  # the settings' defaults
    if side == "solve":
        return _run_solves(ms, sky_model_for_ms(ms, config))
    if side == "ours":
        start = time.perf_counter()
        components = sky_model_for_ms(ms, config)
        selected = time.perf_counter()
        report = predict_model_data(ms, components, beam=True)
        detail = ", ".join(f"{k} {v:.2f} s" for k, v in report.timings_s.items())
        figures = {"select_s": selected - start, "detail": detail}
    else:
        components = sky_model_for_ms(ms, config)
        start = time.perf_counter()
        casa_ft(ms, components)
        figures = {}
    figures.update(seconds=time.perf_counter() - start, n_components=len(components),
                   peak_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
    return figures


def _run_solves(ms: Path, components) -> dict:
    """Model, then the platform's solves and apply on the group, each timed."""
    from casacore import tables

    from contimg.calibration.apply import apply_paths
    from contimg.calibration.casa_reference import casa_applycal, casa_gaincal
    from contimg.calibration.predict import predict_model_data
    from contimg.calibration.solve import solve_calibrator, solve_gains

    figures = {}
    lap = time.perf_counter()
    predict_model_data(ms, components)
    figures["model_s"] = time.perf_counter() - lap
    work = ms.with_name(ms.name + ".tables")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    (work / "daily").mkdir()
    lap = time.perf_counter()
    daily = solve_calibrator(ms, work / "daily", "2025-10-13T00:00:00")
    figures["daily_s"] = time.perf_counter() - lap
    bandpass = [str(t.path) for t in daily.tables if t.kind == "bpcal"]
    lap = time.perf_counter()
    hourly = solve_gains(ms, work, "2025-10-13T01:00:00", bandpass)
    figures["hourly_gain_s"] = time.perf_counter() - lap
    figures["gain_s"] = figures["hourly_gain_s"]
    lap = time.perf_counter()
    casa_tables = casa_gaincal(ms, work, bandpass, hourly.refant)
    figures["gaincal_s"] = time.perf_counter() - lap
    figures["gain_max_phase_diff_deg"], figures["gain_max_amp_diff"] = _largest_gain_difference(
        [Path(p) for p in hourly.paths()], list(casa_tables))
    # The daily set is prephase + B + the same gains: B's share is what the gains leave.
    figures["bandpass_s"] = figures["daily_s"] - figures["hourly_gain_s"]
    paths = [*bandpass, *hourly.paths()]
    lap = time.perf_counter()
    casa_applycal(ms, paths, ["bpcal", *(t.kind for t in hourly.tables)])
    figures["applycal_s"] = time.perf_counter() - lap
    with tables.table(str(ms), readonly=False, ack=False) as main:
        main.renamecol("CORRECTED_DATA", "CASA_CORRECTED_DATA")
    lap = time.perf_counter()
    apply_paths(ms, paths)
    figures["apply_s"] = time.perf_counter() - lap
    figures["apply_max_rel_diff"] = _max_relative_difference(ms, "CORRECTED_DATA",
                                                             "CASA_CORRECTED_DATA")
    figures["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    shutil.rmtree(work, ignore_errors=True)
    return figures


def _largest_gain_difference(ours: list[Path], casa: list[Path]) -> tuple[float, float]:
    """Largest phase (deg) and relative amplitude difference between matching tables,
    over solutions both left unflagged."""
    import numpy as np
    from casacore import tables

    phase = amp = 0.0
    for mine, theirs in zip(ours, casa, strict=True):
        with tables.table(str(mine), ack=False) as a, tables.table(str(theirs), ack=False) as b:
            ga, gb = a.getcol("CPARAM"), b.getcol("CPARAM")
            good = ~a.getcol("FLAG") & ~b.getcol("FLAG")
        ratio = ga[good] / gb[good]
        phase = max(phase, float(np.degrees(np.abs(np.angle(ratio))).max()))
        amp = max(amp, float(np.abs(np.abs(ratio) - 1).max()))
    return phase, amp


def _max_relative_difference(ms: Path, ours: str, reference: str) -> float:
    """Largest |ours - reference| / |reference| over samples unflagged in the MS."""
    import numpy as np
    from casacore import tables

    worst = 0.0
    with tables.table(str(ms), ack=False) as main:
        for start in range(0, main.nrows(), 8192):
            count = min(8192, main.nrows() - start)
            good = ~main.getcol("FLAG", start, count)
            a = main.getcol(ours, start, count)[good]
            b = main.getcol(reference, start, count)[good]
            if b.size:
                worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30))))
    return worst


if __name__ == "__main__":
    # Child mode: `python -m benchmarks.calibration {ours,ft} MS CATALOGUE`.
    print(json.dumps(_run_side(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))))
