"""The `storage_usage` asset and its disk-threshold checks."""

import base64

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from contimg.ops.metrics import write_textfile
from contimg.ops.notifier import level_changed
from contimg.ops.storage_usage import observe_storage
from contimg.ops.thresholds import DiskThresholds
from contimg.ops.usage_history import (
    GrowthEstimate,
    append_observation,
    compact_past_days,
    estimate_growth,
    history_png,
)
from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource

CHECKS = [
    AssetCheckSpec("fast_disk_free", asset="storage_usage",
                   description="Fast disk free space: WARN below 200 GB, ERROR below 100 GB."),
    AssetCheckSpec("tmpfs_usage", asset="storage_usage",
                   description="tmpfs use: ERROR above 95%."),
]


@asset(group_name="ops", kinds={"duckdb", "parquet"}, check_specs=CHECKS)
def storage_usage(context: AssetExecutionContext, storage: StorageLayoutResource,
                  state: StateDatabasesResource, notifier: NotifierResource) -> MaterializeResult:
    """Observe the fast disk, tmpfs and every area; keep the history (Parquet, DuckDB);
    report growth, days until full, a plot and Prometheus textfile metrics; alert once
    per threshold crossing. Growth is only estimated over CONTIMG_GROWTH_MIN_SPAN_H
    hours of history or more; the metadata shows the span used."""
    layout = storage.layout()
    settings = storage.settings()
    thresholds = DiskThresholds.from_settings(settings)
    history_dir = layout.state_dir / "history" / "storage_usage"
    observation = observe_storage(layout, cache_file=history_dir.parent / "area_walk_cache.json")
    append_observation(history_dir, observation)
    compact_past_days(history_dir, today=observation.observed_at[:10])
    growth = estimate_growth(history_dir,
                             min_span_h=float(settings["CONTIMG_GROWTH_MIN_SPAN_H"]))
    levels = {"fast_disk_free": thresholds.fast_disk_level(observation),
              "tmpfs_usage": thresholds.tmpfs_level(observation)}
    _alert_on_crossings(state, notifier, levels, observation)
    write_textfile(layout)
    return MaterializeResult(
        metadata=_metadata(observation, growth, history_dir),
        check_results=[_check("fast_disk_free", levels["fast_disk_free"],
                              f"{observation.fast_disk_free_gb:.1f} GB free"),
                       _check("tmpfs_usage", levels["tmpfs_usage"],
                              f"{observation.tmpfs_used_percent:.1f}% used")],
    )


def _check(name: str, level: str, text: str) -> AssetCheckResult:
    severity = AssetCheckSeverity.WARN if level == "WARN" else AssetCheckSeverity.ERROR
    return AssetCheckResult(check_name=name, passed=level == "OK", severity=severity,
                            metadata={"level": level, "value": text})


def _alert_on_crossings(state, notifier, levels, observation) -> None:
    with state.open() as store:
        changes = {key: level_changed(store, f"disk:{key}", level) for key, level in levels.items()}
    for key, previous in changes.items():
        level = levels[key]
        if previous is not None:
            notifier.notifier().notify(
                "disk_threshold", f"{key} went from {previous} to {level}", check=key,
                level=level, previous=previous, fast_disk_free_gb=observation.fast_disk_free_gb,
                tmpfs_used_percent=observation.tmpfs_used_percent)


def _metadata(observation, growth: GrowthEstimate, history_dir) -> dict:
    """The asset's metadata: figures, the area table, the growth span and the plot."""
    table = "| area | files | GB | oldest (days) | growth GB/day |\n|---|---|---|---|---|\n"
    for area in observation.areas:
        oldest = f"{area.oldest_age_s / 86400:.1f}" if area.oldest_age_s is not None else "-"
        # "-" rather than 0.000 while the history is too short to give a rate.
        rate = (f"{growth.per_day.get(area.area, 0.0) / 1e9:.3f}" if growth.enough_history
                else "-")
        table += (f"| {area.area} | {area.file_count} | {area.bytes / 1e9:.3f} | {oldest} | "
                  f"{rate} |\n")
    metadata = {
        "fast_disk_free_gb": round(observation.fast_disk_free_gb, 2),
        "tmpfs_used_percent": round(observation.tmpfs_used_percent, 2),
        "incoming_files": next(a.file_count for a in observation.areas if a.area == "incoming"),
        "days_until_full": growth.describe_days_until_full(observation.fast_disk_free_bytes),
        "growth_span_h": round(growth.span_h, 2),
        "growth_min_span_h": growth.min_span_h,
        "areas": MetadataValue.md(table),
        "history": MetadataValue.path(str(history_dir)),
    }
    png = history_png(history_dir)
    if png:
        encoded = base64.b64encode(png).decode()
        metadata["plot"] = MetadataValue.md(f"![storage history](data:image/png;base64,{encoded})")
    return metadata
