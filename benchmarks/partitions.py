"""`contimg bench partitions`: a year of observation groups as Dagster partitions.

Adds N group keys (≈100k a year) to a real SQLite Dagster instance and times what
the platform does with them: adding the next group's key, checking one exists, and
listing all keys (what the UI does for a partitioned asset). The reference is the
same operations with 1,000 keys, measured in the same run.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from contimg import naming
from contimg.simulation.instrument import GROUP_DURATION_S
from contimg.simulation.telescope import DEFAULT_START

BATCH = 5000


def bench_partitions(count: int) -> int:
    """Time partition operations at `count` keys and at 1,000; print figures and JSON."""
    figures = {}
    with tempfile.TemporaryDirectory() as home:
        for label, n in (("reference_1k", 1000), ("year", count)):
            figures[label] = _measure(Path(home) / label, n)
            print(f"{label}: {figures[label]}")
    year, ref = figures["year"], figures["reference_1k"]
    print(json.dumps({"keys": count, "add_one_s": year["add_one_s"],
                      "has_one_s": year["has_one_s"], "list_all_s": year["list_all_s"],
                      "add_one_ratio_vs_1k": round(year["add_one_s"] / ref["add_one_s"], 2),
                      "list_all_ratio_vs_1k": round(year["list_all_s"] / ref["list_all_s"], 1)}))
    return 0


def _measure(home: Path, n: int) -> dict:
    from dagster import DagsterInstance

    home.mkdir(parents=True)
    instance = DagsterInstance.local_temp(str(home))
    name = "observation_groups"
    keys = _keys(n + 5)
    began = time.perf_counter()
    for start in range(0, n, BATCH):
        instance.add_dynamic_partitions(name, keys[start:min(start + BATCH, n)])
    fill_s = time.perf_counter() - began
    add_s = statistics.median(
        _timed(instance.add_dynamic_partitions, name, [key]) for key in keys[n:])
    has_s = statistics.median(
        _timed(instance.has_dynamic_partition, name, keys[n - 1]) for _ in range(5))
    list_s = statistics.median(_timed(instance.get_dynamic_partitions, name) for _ in range(3))
    return {"keys": n, "fill_s": round(fill_s, 2), "add_one_s": round(add_s, 4),
            "has_one_s": round(has_s, 4), "list_all_s": round(list_s, 3)}


def _keys(n: int) -> list[str]:
    return [naming.iso_timestamp(DEFAULT_START + timedelta(seconds=i * GROUP_DURATION_S))
            for i in range(n)]


def _timed(action, *args) -> float:
    began = time.perf_counter()
    action(*args)
    return time.perf_counter() - began
