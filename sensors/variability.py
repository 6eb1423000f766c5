"""The variability sensor: the daily variability pass once a day's photometry is in.

A day is due once the data's clock (the newest image's mid time) is past its end by
CONTIMG_MOSAIC_GRACE_MIN, or once no image has been made for that long (the stream
stopped); the run key holds the day's Parquet file count and newest modification time, so
photometry added later (a late image, a backfill) requests the pass again. While a day is
under way its pass runs every CONTIMG_VARIABILITY_REFRESH_IMAGES images (candidates and
light curves an operator sees within the hour, not the next day).
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from contimg.photometry.measurements import measurements_root
from contimg.state import StateStore, products_db
from contimg.timeutil import iso_to_epoch, mjd_to_datetime
from contimg_assets.executors import run_executor
from contimg_assets.mosaics import PARTITIONS_START
from resources import StateDatabasesResource, StorageLayoutResource

LOOKBACK_DAYS = 2

variability_job = define_asset_job("variability_job", selection=["variability"],
                                   executor_def=run_executor(),
                                   description="The daily variability pass over every measurement.")


def plan_variability(store: StateStore, photometry_dir: Path, *, grace_s: float,
                     refresh_images: int = 0, now: float | None = None) -> list[tuple[str, str]]:
    """(partition, run key) of each day due now."""
    clock_mjd = products_db.newest_image_mjd(store)
    if clock_mjd is None:
        return []
    now = time.time() if now is None else now
    clock = mjd_to_datetime(clock_mjd)
    recent = products_db.image_times_since(store, clock_mjd - 1)
    newest_image = max((r["created"] for r in recent), default="")
    stalled = bool(newest_image) and now - iso_to_epoch(newest_image) >= grace_s
    requests = []
    for back in range(LOOKBACK_DAYS, -1, -1):
        day: date = clock.date() - timedelta(days=back)
        files = list((measurements_root(photometry_dir) / f"date={day.isoformat()}").glob("*.parquet"))
        if not files or day.isoformat() < PARTITIONS_START:
            continue
        end = clock.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=back - 1)
        if clock >= end + timedelta(seconds=grace_s) or stalled:
            newest = max(int(f.stat().st_mtime) for f in files)
            requests.append((day.isoformat(), f"variability-{day.isoformat()}-{len(files)}-{newest}"))
        elif refresh_images and len(files) >= refresh_images:
            batch = len(files) // refresh_images
            requests.append((day.isoformat(), f"variability-{day.isoformat()}-so-far-{batch}"))
    return requests


@sensor(name="variability_sensor", jobs=[variability_job], minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING)
def variability_sensor(context: SensorEvaluationContext, storage: StorageLayoutResource,
                       state: StateDatabasesResource) -> SensorResult | SkipReason:
    """Requests `variability` for each finished day with photometry (again when more came)."""
    settings = storage.settings()
    grace_s = 60.0 * float(settings["CONTIMG_MOSAIC_GRACE_MIN"])
    with state.open() as store:
        requests = plan_variability(store, storage.layout().photometry_dir, grace_s=grace_s,
                                    refresh_images=int(settings["CONTIMG_VARIABILITY_REFRESH_IMAGES"]))
    if not requests:
        return SkipReason("no day is due for the variability pass")
    return SensorResult(run_requests=[RunRequest(job_name="variability_job", partition_key=p, run_key=k)
                                      for p, k in requests])
