"""`contimg bench arrival`: one group from the last file's arrival to its registered
PB-corrected image, through the real incoming sensor and Dagster runs.

A calibrator transit and the two groups after it are simulated once (cached in the work
directory). Untimed preparation, so that the timed group meets a platform in its steady
state: a fresh home, the transit converted, its daily set solved and applied, the next
group converted and calibrated and its hour's gains solved. Then `dagster-daemon` runs the
platform's code location (sensors on, the queued run coordinator, runs in their own
processes, as `scripts/run.sh` does), the science group's 16 files are copied into
incoming/, and the clock runs until products.images holds its PB-corrected image. Stage
times come from the run's event log; memory is the peak summed RSS of the daemon's process
tree (daemon, code server, run worker, WSClean). Afterwards WSClean with its own defaults
images the same calibrated MS, for the ratio.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

from benchmarks.live_platform import (
    create_instance,
    platform_environment,
    start_daemon,
    stop_daemon,
    tree_rss,
    wait_for_sensor,
)
from contimg.layout import resolve_layout

REPO = Path(__file__).resolve().parents[1]
POLL_S = 1.0  # the poll reads /proc: keep it from competing with the run it measures


def bench_arrival(size: str, work: Path, timeout_s: float = 900.0) -> int:
    """Run the measurement and print one JSON line; 0 when the image was registered."""
    files = _simulated_pair(size, work)
    home = work / f"arrival-home-{size}"
    shutil.rmtree(home, ignore_errors=True)
    env = platform_environment(home)
    science = _prepare(files, env)
    daemon = start_daemon(env, home / "daemon.log")
    try:
        wait_for_sensor(env)
        arrival = _deliver(files[science], resolve_layout(env).incoming_dir)
        registered, peak_bytes = _wait_for_image(env, science, daemon.pid, arrival + timeout_s)
    finally:
        stop_daemon(daemon)
    if registered is None:
        print(json.dumps({"size": size, "error": f"no image within {timeout_s:.0f} s"}))
        return 1
    figures = {"size": size, "group": science, "arrival_to_image_s": round(registered - arrival, 2)}
    figures |= _stage_seconds(env, science, arrival)
    figures |= _wsclean_default(env, science, figures.get("imaging_s"))
    figures["peak_gb"] = round(peak_bytes / 1e9, 2)
    print(json.dumps(figures))
    return 0


def _simulated_pair(size: str, work: Path) -> dict[str, list[Path]]:
    """{group id: files} of a calibrator transit (0834+555) and the two groups after it."""
    from contimg.simulation.telescope import SimulationRequest, simulate

    out = work / f"arrival-{size}"
    done = out / "groups.json"
    if not done.exists():
        shutil.rmtree(out, ignore_errors=True)
        print(f"simulating a {size} calibrator transit and the next two groups into {out} ...",
              flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            groups = simulate(SimulationRequest(out_dir=out / "files", size=size, n_groups=3,
                                                calibrator="0834+555", seed=17))
        done.write_text(json.dumps({g.group_id: [str(f) for f in g.files] for g in groups}))
    return {group: [Path(f) for f in names] for group, names in json.loads(done.read_text()).items()}


def _prepare(files: dict[str, list[Path]], env: dict[str, str]) -> str:
    """Untimed: the transit and the group after it converted and calibrated, the day's and
    that hour's solutions made (in the fresh home); returns the group to time."""
    calibrator, previous, timed = sorted(files)
    code = (
        "import json, shutil, sys\n"
        "from pathlib import Path\n"
        "from contimg.layout import resolve_layout\n"
        "from contimg.state import StateStore\n"
        "from contimg.conversion.pipeline import convert_into_tree\n"
        "from contimg.calibration.stages import (CalibrationConfig, calibrate_group,\n"
        "    hour_start_of, solve_bandpass_for_day, solve_gains_for_hour)\n"
        "def main():\n"
        "    groups = {g: [Path(p) for p in f] for g, f in json.loads(sys.argv[1]).items()}\n"
        "    (calibrator, first), (previous, files) = sorted(groups.items())\n"
        "    layout = resolve_layout().ensure(); store = StateStore(layout.state_dir)\n"
        "    catalog = layout.static_dir / 'catalogs' / 'nvss.tsv'\n"
        "    catalog.parent.mkdir(parents=True, exist_ok=True)\n"
        "    shutil.copy(next(first[0].parent.glob('truth/*_nvss.tsv')), catalog)\n"
        "    config = CalibrationConfig()\n"
        "    convert_into_tree(calibrator, first, layout, store)\n"
        "    solve_bandpass_for_day(layout, store, calibrator[:10], config=config)\n"
        "    calibrate_group(layout, store, calibrator, config=config)\n"
        "    convert_into_tree(previous, files, layout, store)\n"
        "    calibrate_group(layout, store, previous, config=config)\n"
        "    hour = hour_start_of(previous[:13].replace('T', '-') + ':00')\n"
        "    solve_gains_for_hour(layout, store, hour, config=config)\n"
        "if __name__ == '__main__':\n"
        "    main()\n")
    print(f"preparing: {calibrator} and {previous} converted and calibrated, the day's and "
          "the hour's solutions made ...", flush=True)
    untimed = {g: [str(f) for f in files[g]] for g in (calibrator, previous)}
    subprocess.run([sys.executable, "-c", code, json.dumps(untimed)], env=env, check=True,
                   cwd=REPO, capture_output=True)
    create_instance(env)
    return timed


def _deliver(files: list[Path], incoming: Path) -> float:
    """Copy the group's files in as the correlator writes them; the time the last is done."""
    incoming.mkdir(parents=True, exist_ok=True)
    for source in files:
        shutil.copyfile(source, incoming / source.name)
    arrival = time.time()
    print(f"delivered {len(files)} files at {time.strftime('%H:%M:%S')}", flush=True)
    return arrival


def _wait_for_image(env: dict[str, str], group: str, root_pid: int,
                    deadline: float) -> tuple[float | None, int]:
    """(time the PB-corrected image was registered, peak RSS bytes of the process tree)."""
    import sqlite3

    products = resolve_layout(env).database_path("products")
    peak = 0
    while time.time() < deadline:
        peak = max(peak, tree_rss(root_pid))
        if products.exists():
            with sqlite3.connect(f"file:{products}?mode=ro", uri=True) as conn:
                try:
                    row = conn.execute("SELECT created FROM images WHERE group_id = ? AND kind ="
                                       " 'image-pb' AND status = 'ready'", (group,)).fetchone()
                except sqlite3.OperationalError:
                    row = None
            if row:
                return time.time(), peak
        time.sleep(POLL_S)
    return None, peak


def _stage_seconds(env: dict[str, str], group: str, arrival: float) -> dict[str, float]:
    """Per stage, from the run's event log: detection (arrival -> run created), launch
    (created -> started), conversion, calibration and imaging (materialisation to
    materialisation), and the image's own figures."""
    code = (
        "import json, sys\n"
        "from dagster import DagsterInstance, DagsterEventType, RunsFilter\n"
        "i = DagsterInstance.get()\n"
        "records = i.get_run_records(RunsFilter(tags={'dagster/partition': sys.argv[1]}))\n"
        "run = [r for r in records if r.dagster_run.job_name == 'convert_group_job'][-1]\n"
        "out = {'created': run.create_timestamp.timestamp()}\n"
        "for event in i.all_logs(run.dagster_run.run_id):\n"
        "    e = event.dagster_event\n"
        "    if e is None: continue\n"
        "    if e.event_type == DagsterEventType.RUN_START: out['started'] = event.timestamp\n"
        "    if e.event_type == DagsterEventType.ASSET_MATERIALIZATION:\n"
        "        key = e.asset_key.to_user_string(); out[key] = event.timestamp\n"
        "        if key == 'image':\n"
        "            out['image_seconds'] = e.materialization.metadata['seconds'].value\n"
        "print(json.dumps(out))\n")
    done = subprocess.run([sys.executable, "-c", code, group], env=env, capture_output=True,
                          text=True, check=True)
    t = json.loads(done.stdout.strip().splitlines()[-1])
    image = t.get("image_seconds", {})
    return {
        "detect_s": round(t["created"] - arrival, 2),
        "launch_s": round(t["started"] - t["created"], 2),
        "convert_s": round(t["measurement_set"] - t["started"], 2),
        "calibrate_s": round(t["calibrated_ms"] - t["measurement_set"], 2),
        "image_stage_s": round(t["image"] - t["calibrated_ms"], 2),
        "imaging_s": round(image.get("imager", float("nan")), 2),
        "beam_s": round(image.get("beam", float("nan")), 2),
        "quality_s": round(image.get("quality", float("nan")), 2),
    }


def _wsclean_default(env: dict[str, str], group: str, ours_s: float | None) -> dict[str, float]:
    """WSClean with its own defaults (w-stacking, no reordering or averaging choices) on
    the same calibrated MS, the same image size, cell, weighting and deconvolution."""
    from contimg.imaging.options import ImagingOptions, grid_for

    home = Path(env["CONTIMG_HOME"])
    ms = next(resolve_layout(env).ms_dir.glob(f"*/*/{group}.ms"))
    grid = grid_for(ms, ImagingOptions())
    options = ImagingOptions()
    out = home / "wsclean-default"
    out.mkdir(exist_ok=True)
    command = ["wsclean", "-name", str(out / "default"), "-size", str(grid.size), str(grid.size),
               "-scale", f"{grid.cell_arcsec:g}asec", "-pol", "I", "-data-column", "CORRECTED_DATA",
               "-weight", "briggs", f"{options.robust:g}", "-niter", str(options.niter),
               "-mgain", f"{options.mgain:g}", "-auto-mask", f"{options.auto_mask:g}",
               "-auto-threshold", f"{options.auto_threshold:g}", "-no-update-model-required",
               "-quiet", str(ms)]
    began = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - began
    figures = {"wsclean_default_s": round(seconds, 2)}
    if ours_s:
        figures["imaging_speedup_vs_wsclean_default"] = round(seconds / ours_s, 2)
    return figures
