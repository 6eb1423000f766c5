"""Flagging benchmark: `contimg.calibration.flagging.flag_ms` on one group with RFI, beside CASA.

`bench_flagging(size, work)` simulates a group with RFI (`--rfi`, reused when present),
converts it once, and flags a fresh copy of that MS in a child process (so the peak
memory is the flagging's own: the child's, or AOFlagger's, whichever is larger). CASA's
own path (`flagdata` autocorr, then `tfcrop`) runs on another copy in the same run as the
reference. The benchmark (not the flagging) then scores the flags against the simulator's
truth. Run alone: `python -m benchmarks.calibration_flagging --size full`; the last line
is JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIDES = ("ours", "casa")


def bench_flagging(size: str = "full", work: Path = Path("/tmp/contimg-bench"),
                   reference: bool = True) -> dict:
    """Time our flagging (and CASA's flagdata when `reference`) on one group; figures as a dict.

    Keys: flag_s, flag_aoflagger_s, flag_peak_gb, flag_fraction, rfi_found, clean_flagged
    (and casa_flag_s, casa_rfi_found, casa_clean_flagged, flag_speedup_vs_casa).
    """
    work = Path(work)
    base, truth = _base_ms(size, work)
    ours = _child("ours", base, truth, work)
    result = {
        "flag_s": round(ours["seconds"], 2),
        "flag_aoflagger_s": round(ours["aoflagger_s"], 2),
        "flag_peak_gb": round(max(ours["self_gb"], ours["children_gb"]), 2),
        "flag_fraction": round(ours["fraction"], 4),
        "rfi_found": round(ours["rfi_found"], 4),
        "clean_flagged": round(ours["clean_flagged"], 4),
    }
    if reference:
        casa = _child("casa", base, truth, work)
        result.update(casa_flag_s=round(casa["seconds"], 2), casa_rfi_found=round(casa["rfi_found"], 4),
                      casa_clean_flagged=round(casa["clean_flagged"], 4),
                      flag_speedup_vs_casa=round(casa["seconds"] / ours["seconds"], 2))
    return result


def _base_ms(size: str, work: Path) -> tuple[Path, Path]:
    """The converted group with RFI and its RFI truth (simulated and converted once, then reused)."""
    source = work / f"group-{size}-rfi"
    base = work / f"flagging-{size}.ms"
    truths = sorted((source / "truth").glob("*_rfi.npz"))
    if base.exists() and truths:
        return base, truths[0]
    from contimg.conversion.ms_writer import convert_group
    from contimg.simulation.telescope import SimulationRequest, simulate

    shutil.rmtree(source, ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)
    print(f"simulating a {size} group with RFI into {source} ...", flush=True)
    simulate(SimulationRequest(out_dir=source, size=size, rfi=True))
    convert_group(sorted(source.glob("*.hdf5")), base)
    return base, next((source / "truth").glob("*_rfi.npz"))


def _child(side: str, base: Path, truth: Path, work: Path) -> dict:
    """Flag a fresh copy of `base` in a child process; its figures as a dict."""
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-flag-{side}-", dir=work))
    try:
        ms = scratch / "group.ms"
        shutil.copytree(base, ms)
        command = [sys.executable, "-m", "benchmarks.calibration_flagging", "--child", side,
                   str(ms), str(truth)]
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              cwd=Path(__file__).resolve().parent.parent)
        if done.returncode != 0:
            raise RuntimeError(f"{side} flagging failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_child(side: str, ms: Path, truth: Path) -> dict:
    """In the child: flag with one side, time it, score against the truth."""
    figures: dict[str, float] = {}
    if side == "ours":
        from contimg.calibration.flagging import flag_ms

        began = time.perf_counter()
        report = flag_ms(ms)
        figures["seconds"] = time.perf_counter() - began
        figures["aoflagger_s"] = report.seconds["aoflagger"]
        figures["fraction"] = report.after_fraction
    else:
        from contimg.astro_offline import configure_offline_astropy

        configure_offline_astropy()
        from casatasks import flagdata

        began = time.perf_counter()
        flagdata(vis=str(ms), mode="manual", autocorr=True, flagbackup=False)
        flagdata(vis=str(ms), mode="clip", clipzeros=True, flagbackup=False)
        flagdata(vis=str(ms), mode="tfcrop", datacolumn="data", flagbackup=False)
        figures["seconds"] = time.perf_counter() - began
    figures.update(_score(ms, truth))
    figures["self_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    figures["children_gb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    return figures


def _score(ms: Path, truth: Path) -> dict[str, float]:
    """Share of injected RFI samples flagged, and of clean cross-correlation samples flagged."""
    from casacore import tables

    mask = np.load(truth)["mask"]  # (integration, channel), ascending frequency
    found = clean = n_rfi = n_clean = 0
    with tables.table(str(ms), ack=False) as main:
        _, time_index = np.unique(main.getcol("TIME"), return_inverse=True)
        for start in range(0, main.nrows(), 8192):
            count = min(8192, main.nrows() - start)
            flags = main.getcol("FLAG", start, count)
            cross = main.getcol("ANTENNA1", start, count) != main.getcol("ANTENNA2", start, count)
            rfi = np.broadcast_to(mask[time_index[start:start + count]][:, :, None], flags.shape)[cross]
            flags = flags[cross]
            found += int(flags[rfi].sum())
            n_rfi += int(rfi.sum())
            clean += int(flags[~rfi].sum())
            n_clean += int((~rfi).sum())
    return {"rfi_found": found / max(n_rfi, 1), "clean_flagged": clean / max(n_clean, 1)}


def main(argv: list[str] | None = None) -> int:
    """`--size S --work DIR [--no-reference]`, or (internally) `--child SIDE MS TRUTH`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.calibration_flagging")
    parser.add_argument("--size", default="full")
    parser.add_argument("--work", type=Path, default=Path("/tmp/contimg-bench"))
    parser.add_argument("--no-reference", action="store_true", help="skip CASA's flagdata")
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "MS", "TRUTH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, ms, truth = args.child
        print(json.dumps(_run_child(side, Path(ms), Path(truth))))
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    print(json.dumps(bench_flagging(args.size, args.work, reference=not args.no_reference)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
