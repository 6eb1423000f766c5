"""`contimg bench partitions`: a year of observation groups as Dagster partitions.

A fresh SQLite Dagster instance (the embedded default) gets N group keys (≈100k a year,
ISO timestamps one cadence apart) and a materialisation of every per-group asset for
each (benchmarks/partition_fill.py). Then, with that many partitions existing:

- one tick of the real incoming-files sensor with a new group in incoming/, and the
  daemon's part of it (adding the requested partition);
- the `image` asset page and one partition's page in Debian's Chromium against a real
  dagster-webserver, timed until the content is painted (the latest materialisation's
  key; the partition's own metadata), cold (first visit: the server builds its
  partition-status cache) and warm (a second visit in a new browser context).

The same is measured at a small reference N in the same run; the last line is JSON.

With `--live-days D` the year's instance is then pruned to its newest D days of keys by
the platform's own `live_partitions` operation and measured again, beside a fresh
instance holding only that many keys (benchmarks/partition_window.py).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path

from benchmarks.partition_fill import PARTITIONS, fill, group_keys, image_path

TARGET_S = 5.0
PAGE_TIMEOUT_S = 180.0


TIMED = ("sensor_tick_s", "sensor_apply_s", "asset_page_cold_s", "asset_page_warm_s",
         "partition_page_cold_s", "partition_page_warm_s")


def bench_partitions(count: int, reference: int, work: Path, live_days: float | None = None) -> int:
    """Measure at `reference` and `count` groups; print each figure set and a JSON line
    (with `live_days`: the pruned and window-only figures too)."""
    figures = {}
    for label, n in (("reference", reference), ("year", count)):
        began = time.perf_counter()
        figures[label] = measure(work / f"groups-{n}", n, live_days if label == "year" else None)
        figures[label]["wall_s"] = round(time.perf_counter() - began, 1)
        print(f"{label} ({n} groups): {json.dumps(figures[label])}", flush=True)
    if live_days is not None:
        from benchmarks.partition_window import summary, window_only

        window = window_only(work, figures["year"]["pruned"]["live_keys"])
        print(json.dumps(summary(count, reference, live_days, figures, window)))
        return 0
    year, ref = figures["year"], figures["reference"]
    over = [k for k in TIMED if year[k] is None or year[k] > TARGET_S]
    print(json.dumps({"groups": count, "reference_groups": reference,
                      **{k: year[k] for k in ("register_s", "materialize_s", *TIMED)},
                      "ratio_vs_reference": {k: ratio(year[k], ref[k]) for k in TIMED},
                      "over_5s": over}))
    return 0


def measure(base: Path, n: int, live_days: float | None = None) -> dict:
    """Fill a fresh instance under `base` with `n` groups and time the sensor and pages;
    with `live_days`, then prune it to that window and time them again ("pruned")."""
    from dagster import DagsterInstance

    from benchmarks.dagster_ui import write_instance_yaml

    shutil.rmtree(base, ignore_errors=True)
    os.environ.update(CONTIMG_HOME=str(base / "home"), CONTIMG_TMPFS_DIR=str(base / "shm"))
    dagster_home = base / "dagster_home"
    write_instance_yaml(dagster_home)
    instance = DagsterInstance.from_config(str(dagster_home))
    figures: dict = fill(instance, n)
    list_s = [_timed(instance.get_dynamic_partitions, PARTITIONS) for _ in range(3)]
    figures["list_all_keys_s"] = round(statistics.median(list_s), 3)
    figures.update(sensor_tick(instance, n))
    keys = group_keys(n)
    figures.update(pages(dagster_home, base, keys[-1], keys[n // 2]))
    if live_days is not None:
        from benchmarks.partition_window import measure_pruned

        figures["pruned"] = measure_pruned(instance, dagster_home, base, n, live_days)
    return figures


def sensor_tick(instance, n: int) -> dict:
    """The incoming sensor's tick with group n (16 subband files) newly arrived, then the
    daemon's part: adding the partitions it asked for that do not exist yet."""
    from dagster import build_sensor_context

    from benchmarks.sensor import _populate
    from contimg.layout import resolve_layout
    from contimg_assets.definitions import defs

    _populate(resolve_layout().ensure().incoming_dir, 16, first_group=n)
    sensor = defs.resolve_sensor_def("incoming_files_sensor")
    began = time.perf_counter()
    with build_sensor_context(instance=instance, resources=defs.resources) as context:
        result = sensor(context)
    tick_s = time.perf_counter() - began
    requested = [k for r in result.dynamic_partitions_requests for k in r.partition_keys]
    assert requested == group_keys(1, first=n), requested
    began = time.perf_counter()
    new = [k for k in requested if not instance.has_dynamic_partition(PARTITIONS, k)]
    instance.add_dynamic_partitions(PARTITIONS, new)
    return {"sensor_tick_s": round(tick_s, 3), "sensor_apply_s": round(time.perf_counter() - began, 3),
            "runs_requested": len(result.run_requests)}


def pages(dagster_home: Path, base: Path, latest: str, middle: str, prefix: str = "") -> dict:
    """Time the image asset page (painted when `latest`, the newest materialised key,
    shows) and partition `middle`'s page, cold then warm; screenshots named `prefix`..."""
    import requests

    from benchmarks.dagster_ui import chromium, time_until_visible, webserver

    pages = {"asset_page": ("/assets/image", latest),
             "partition_page": (f"/assets/image?view=partitions&partition={middle}",
                                image_path(middle))}
    figures: dict = {}
    began = time.perf_counter()
    with webserver(dagster_home, dict(os.environ), base / f"{prefix}webserver.log") as url:
        figures["webserver_start_s"] = round(time.perf_counter() - began, 1)
        requests.post(f"{url}/graphql", json={"query": "mutation { setNuxSeen }"}, timeout=60)
        with chromium() as browser:
            for name, (path, text) in pages.items():
                for visit in ("cold", "warm"):
                    context = browser.new_context(viewport={"width": 1600, "height": 1000})
                    page = context.new_page()
                    try:
                        figures[f"{name}_{visit}_s"] = round(time_until_visible(
                            page, url + path, lambda p, t=text: p.get_by_text(t, exact=True),
                            PAGE_TIMEOUT_S), 2)
                    except Exception as exc:  # a page that never paints is a figure too
                        print(f"{name} ({visit}) not painted in {PAGE_TIMEOUT_S} s: {exc}")
                        figures[f"{name}_{visit}_s"] = None
                    page.screenshot(path=str(base / f"{prefix}{name}_{visit}.png"))
                    context.close()
    return figures


def _timed(action, *args) -> float:
    began = time.perf_counter()
    action(*args)
    return time.perf_counter() - began


def ratio(year: float | None, ref: float | None) -> float | None:
    """year / ref to two decimals, None when either is missing."""
    return round(year / ref, 2) if year is not None and ref else None
