"""`contimg bench sensor`: one incoming-sensor tick over a week of files.

Creates N small files with the instrument's names (16 subbands per group, groups
309 s apart, settled mtimes), then times the real Dagster sensor function:
the first tick (every file new), a steady tick (nothing new) and a tick where one
new group has arrived — the one that happens every five minutes, reported as
`tick_s`. The reference measured in the same run is the floor: one bare
os.scandir + stat pass over the same directory.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

from contimg import naming
from contimg.simulation.instrument import GROUP_DURATION_S
from contimg.simulation.telescope import DEFAULT_START


def bench_sensor(n_files: int, work: Path) -> int:
    """Time sensor ticks over `n_files` incoming files; print figures and a JSON line."""
    from dagster import DagsterInstance, build_sensor_context

    from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource
    from sensors.incoming_files import incoming_files_sensor

    shutil.rmtree(work, ignore_errors=True)
    os.environ["CONTIMG_HOME"] = str(work / "home")
    os.environ["CONTIMG_TMPFS_DIR"] = str(work / "shm")
    storage = StorageLayoutResource()
    layout = storage.layout()
    n_groups = _populate(layout.incoming_dir, n_files)
    print(f"{n_files} files ({n_groups} groups) in {layout.incoming_dir}")
    resources = {"storage": storage, "state": StateDatabasesResource(storage=storage),
                 "notifier": NotifierResource(storage=storage)}
    instance = DagsterInstance.ephemeral()

    def tick() -> tuple[float, int]:
        began = time.perf_counter()
        with build_sensor_context(instance=instance, resources=resources) as context:
            result = incoming_files_sensor(context)
        requests = len(getattr(result, "run_requests", None) or [])
        return time.perf_counter() - began, requests

    first_s, first_runs = tick()
    steady_s, _ = tick()
    _populate(layout.incoming_dir, 16, first_group=n_groups)
    arrival_s, arrival_runs = tick()
    floor_s = _scan_floor(layout.incoming_dir)
    print(f"first tick (all {n_files} files new): {first_s:.3f} s, {first_runs} runs requested")
    print(f"steady tick (nothing new):            {steady_s:.3f} s")
    print(f"tick with one new group:              {arrival_s:.3f} s, {arrival_runs} run requested")
    print(f"reference: bare scandir + stat:       {floor_s:.3f} s")
    print(json.dumps({"tick_s": round(arrival_s, 3), "first_tick_s": round(first_s, 3),
                      "steady_tick_s": round(steady_s, 3), "scan_floor_s": round(floor_s, 3),
                      "ratio_to_floor": round(arrival_s / floor_s, 1), "files": n_files + 16}))
    return 0


def _populate(directory: Path, n_files: int, first_group: int = 0) -> int:
    old = time.time() - 3600
    n_groups = max(1, n_files // 16)
    for group in range(first_group, first_group + n_groups):
        moment = DEFAULT_START + timedelta(seconds=group * GROUP_DURATION_S)
        for sb in range(16):
            path = directory / naming.subband_filename(moment, sb)
            path.write_bytes(b"\0")
            os.utime(path, (old, old))
    return n_groups


def _scan_floor(directory: Path) -> float:
    began = time.perf_counter()
    with os.scandir(directory) as entries:
        for entry in entries:
            entry.stat()
    return time.perf_counter() - began
