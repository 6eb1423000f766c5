"""`contimg bench conversion`: our converter against pyuvdata on the same group.

Each side runs in its own child process so its peak resident memory is its own;
wall time is measured inside the child around the work only (imports excluded for
both). Ours is the whole platform path: validate, stage in tmpfs, convert, check,
classify, move into ms/<kind>/YYYY-MM-DD/ and register. pyuvdata's is the reference
path: read the 16 files, combine, phase to the same centre, write_ms.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROUNDS_OURS = 3


def bench_conversion(size: str, work: Path, layout: str = "correlator") -> int:
    """Simulate (or reuse) a group, time both converters, print figures and a JSON line.

    The files are in the correlator's layout by default (what the telescope sends);
    pyuvdata's reference path is told their true phase centre before it phases
    (`contimg.uvh5_reading.read_subband`)."""
    files = _group_files(size, work, layout)
    print(f"group: {len(files)} files, {sum(f.stat().st_size for f in files) / 1e9:.2f} GB "
          f"in {files[0].parent}")
    _warm_page_cache(files)
    ours = [_child("ours", files, work) for _ in range(ROUNDS_OURS)]
    for run in ours:
        print(f"ours:     {run['seconds']:.2f} s, peak {run['peak_gb']:.2f} GB, {run['detail']}")
    reference = _child("pyuvdata", files, work)
    print(f"pyuvdata (default combine, as UVData.read does with a list of files): "
          f"{reference['seconds']:.2f} s, peak {reference['peak_gb']:.2f} GB")
    fast = _child("pyuvdata_fast_concat", files, work)
    print(f"pyuvdata (fast_concat along frequency, its fastest path): "
          f"{fast['seconds']:.2f} s, peak {fast['peak_gb']:.2f} GB")
    ours_s = statistics.median(r["seconds"] for r in ours)
    result = {
        "layout": layout,
        "ours_s": round(ours_s, 2),
        "ours_peak_gb": round(max(r["peak_gb"] for r in ours), 2),
        "pyuvdata_s": round(reference["seconds"], 2),
        "pyuvdata_peak_gb": round(reference["peak_gb"], 2),
        "speedup": round(reference["seconds"] / ours_s, 2),
        "pyuvdata_fast_concat_s": round(fast["seconds"], 2),
        "speedup_vs_fast_concat": round(fast["seconds"] / ours_s, 2),
    }
    print(json.dumps(result))
    return 0


def _group_files(size: str, work: Path, layout: str) -> list[Path]:
    source = work / f"group-{size}-{layout}"
    files = sorted(source.glob("*.hdf5"))
    if len(files) != 16:
        from contimg.simulation.telescope import SimulationRequest, simulate

        shutil.rmtree(source, ignore_errors=True)
        print(f"simulating a {size} group into {source} ...", flush=True)
        simulate(SimulationRequest(out_dir=source, size=size, calibrator="0834+555",
                                   layout=layout))
        files = sorted(source.glob("*.hdf5"))
    return files


def _warm_page_cache(files: list[Path]) -> None:
    # Both sides then read from memory, as they do right after the correlator wrote.
    for path in files:
        with open(path, "rb") as handle:
            while handle.read(64 << 20):
                pass


def _child(side: str, files: list[Path], work: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"bench-{side}-", dir=work))
    try:
        command = [sys.executable, "-m", "benchmarks.conversion", side, str(out),
                   *map(str, files)]
        result = subprocess.run(command, capture_output=True, text=True, check=False,
                                cwd=Path(__file__).resolve().parent.parent)
        if result.returncode != 0:
            raise RuntimeError(f"{side} failed:\n{result.stderr[-3000:]}")
        report = json.loads(result.stdout.strip().splitlines()[-1])
        # The child's own peak resident set, or its converter process's (our converter
        # runs in a forked grandchild: RUSAGE_CHILDREN), whichever is larger.
        report["peak_gb"] = max(report["self_gb"], report.get("children_gb", 0.0))
        return report
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _run_ours(out: Path, files: list[Path]) -> dict:
    from contimg.conversion.pipeline import convert_into_tree
    from contimg.layout import resolve_layout
    from contimg.state import StateStore

    env = {"CONTIMG_HOME": str(out / "home"),
           "CONTIMG_TMPFS_DIR": f"/dev/shm/contimg-bench-{os.getpid()}"}
    layout = resolve_layout(env).ensure()
    store = StateStore(layout.state_dir)
    store.migrate_all()
    from contimg.astro_offline import configure_offline_astropy

    configure_offline_astropy()
    began = time.perf_counter()
    outcome = convert_into_tree(files[0].name[:19], files, layout, store)
    seconds = time.perf_counter() - began
    shutil.rmtree(layout.tmpfs_root, ignore_errors=True)
    return {"seconds": seconds, "detail": f"{outcome.staging} staging, {outcome.timings_s}"}


def _run_pyuvdata(out: Path, files: list[Path], combine: str = "add") -> dict:
    from contimg.conversion.rephasing import plan_rephasing
    from contimg.uvh5_reading import read_group

    centre = plan_rephasing(files[0])  # the same phase centre as ours
    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd = read_group(files, combine=combine)
        uvd.phase(ra=centre.ra_rad, dec=centre.dec_rad, cat_name="centre")
        uvd.write_ms(str(out / "pyuvdata.ms"), clobber=True, run_check=False)
    return {"seconds": time.perf_counter() - began,
            "detail": f"read + combine ({combine}) + phase + write_ms"}


if __name__ == "__main__":
    side, out_dir, *paths = sys.argv[1:]
    targets = [Path(p) for p in paths]
    if side == "ours":
        figures = _run_ours(Path(out_dir), targets)
    else:
        figures = _run_pyuvdata(Path(out_dir), targets,
                                "fast_concat" if side.endswith("fast_concat") else "add")
    figures["self_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    figures["children_gb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    print(json.dumps(figures, default=str))
