"""`contimg bench partitions --live-days D`: the bounded design, measured.

After the year's figures (N keys, 5 N materialisations), the same instance is pruned to
its newest D days of keys by the platform's own operation
(contimg_assets.live_partitions.prune_live_partitions: Dagster's delete_dynamic_partition,
in batches) and the sensor tick and pages are measured again. The pruned keys'
materialisations stay in the event log; to see whether they still cost anything, a fresh
instance holding only the live window's keys ("window_only") is measured too.
"""

import os
import time
from pathlib import Path

from benchmarks.partition_fill import PARTITIONS, group_keys
from benchmarks.partitions import TARGET_S, TIMED, measure, pages, ratio, sensor_tick


def measure_pruned(instance, dagster_home: Path, base: Path, n: int, live_days: float) -> dict:
    """Prune the filled instance to `live_days` (then once more: nothing is left to do),
    check the history is still there, and time the sensor and the pages again."""
    from dagster import AssetKey

    from contimg.layout import resolve_layout
    from contimg.state import StateStore
    from contimg_assets.live_partitions import prune_live_partitions

    def log(line: str) -> None:
        print(f"  prune: {line}", flush=True)

    with StateStore(resolve_layout().ensure().state_dir) as store:
        report = prune_live_partitions(instance, store, live_days, log=log)
        again = prune_live_partitions(instance, store, live_days, log=log)
    live = sorted(instance.get_dynamic_partitions(PARTITIONS))
    began = time.perf_counter()
    # What the UI's cold status-cache rebuild reads: every materialised partition of the
    # asset, pruned keys included (the event log keeps them).
    history = instance.get_materialized_partitions(AssetKey("image"))
    figures: dict = {
        "live_keys": len(live), "removed": report.removed, "prune_s": round(report.seconds, 1),
        "prune_ms_per_key": round(1000 * report.seconds / max(report.removed, 1), 2),
        "second_pass_removed": again.removed, "second_pass_s": round(again.seconds, 2),
        "image_partitions_in_event_log": len(history),
        "materialized_partitions_query_s": round(time.perf_counter() - began, 3)}
    # A fresh home: the tick sees one new group in an empty incoming/, as in the year's run.
    os.environ["CONTIMG_HOME"] = str(base / "home-pruned")
    figures.update(sensor_tick(instance, n + 1))
    newest_sensed = group_keys(1, first=n)[0]  # added by the year's tick, never materialised
    materialised = [key for key in live if key < newest_sensed]
    figures.update(pages(dagster_home, base, materialised[-1],
                         materialised[len(materialised) // 2], prefix="pruned-"))
    return figures


def window_only(work: Path, live_keys: int) -> dict:
    """A fresh instance with only `live_keys` groups: the pruned instance without the
    pruned keys' history, for comparison."""
    began = time.perf_counter()
    figures = measure(work / f"window-{live_keys}", live_keys)
    figures["wall_s"] = round(time.perf_counter() - began, 1)
    print(f"window_only ({live_keys} groups): {figures}", flush=True)
    return figures


def summary(count: int, reference: int, live_days: float, figures: dict, window: dict) -> dict:
    """The one JSON line: the timed figures of each instance, side by side, with ratios."""
    year, pruned, ref = figures["year"], figures["year"]["pruned"], figures["reference"]
    pick = {"unpruned": year, "pruned": pruned, "window_only": window, "reference": ref}
    return {
        "groups": count, "live_days": live_days, "live_keys": pruned["live_keys"],
        "removed": pruned["removed"], "prune_s": pruned["prune_s"],
        "prune_ms_per_key": pruned["prune_ms_per_key"],
        "second_pass_removed": pruned["second_pass_removed"],
        "image_partitions_in_event_log": pruned["image_partitions_in_event_log"],
        "materialized_partitions_query_s": pruned["materialized_partitions_query_s"],
        "reference_groups": reference,
        **{name: {k: data.get(k) for k in TIMED} for name, data in pick.items()},
        "ratio_pruned_vs_unpruned": {k: ratio(pruned[k], year[k]) for k in TIMED},
        "ratio_pruned_vs_window_only": {k: ratio(pruned[k], window[k]) for k in TIMED},
        "ratio_pruned_vs_reference": {k: ratio(pruned[k], ref[k]) for k in TIMED},
        "over_5s_unpruned": [k for k in TIMED if year[k] is None or year[k] > TARGET_S],
        "over_5s_pruned": [k for k in TIMED if pruned[k] is None or pruned[k] > TARGET_S],
    }
