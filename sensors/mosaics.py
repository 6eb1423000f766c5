"""The mosaic sensor: an hourly mosaic once an hour's images exist, a daily once its hours'.

Each tick (plain `plan_mosaics`, then Dagster requests), over the last LOOKBACK_DAYS of the
data's own clock (the newest image's mid time, so replayed or delayed data are judged as
live data are):
- an hour with current group images is requested once it is over — the data clock past its
  end by CONTIMG_MOSAIC_GRACE_MIN — or once no image has been made for that long (the
  stream stopped: the hour is as complete as it will get). The run key holds the number of
  members and the newest member's creation time, so a late (or re-made) image requests the
  mosaic again, and an unchanged hour never twice;
- a day is requested likewise once it is over and no hour of it is pending, keyed by its
  hourly mosaics (count and newest), so a re-made hour re-makes the day.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from contimg.state import StateStore, products_db
from contimg.timeutil import datetime_to_mjd, iso_to_epoch, mjd_to_datetime
from contimg_assets.executors import run_executor
from contimg_assets.mosaics import PARTITIONS_START
from resources import StateDatabasesResource, StorageLayoutResource

LOOKBACK_DAYS = 2.0

hourly_mosaic_job = define_asset_job("hourly_mosaic_job", selection=["hourly_mosaic"],
                                     executor_def=run_executor(),
                                     description="Mosaic one hour's group images.")
daily_mosaic_job = define_asset_job("daily_mosaic_job", selection=["daily_mosaic"],
                                    executor_def=run_executor(),
                                    description="Add one day's hourly mosaics.")


@dataclass(frozen=True)
class MosaicRequest:
    """One run to request."""

    job: str
    partition: str
    run_key: str


def plan_mosaics(store: StateStore, *, grace_s: float, now: float | None = None,
                 start_date: str = PARTITIONS_START) -> list[MosaicRequest]:
    """The hourly and daily mosaics due now (see the module doc)."""
    clock_mjd = products_db.newest_image_mjd(store)
    if clock_mjd is None:
        return []
    now = time.time() if now is None else now
    clock = mjd_to_datetime(clock_mjd)
    hours: dict[datetime, list[str]] = {}
    for row in products_db.image_times_since(store, clock_mjd - LOOKBACK_DAYS):
        hour = mjd_to_datetime(row["mid_mjd"]).replace(minute=0, second=0, microsecond=0)
        hours.setdefault(hour, []).append(row["created"])
    newest_created = max((c for created in hours.values() for c in created), default="")
    stalled = bool(newest_created) and now - iso_to_epoch(newest_created) >= grace_s
    grace = timedelta(seconds=grace_s)
    requests, pending_days = [], set()
    for hour, created in sorted(hours.items()):
        if hour.strftime("%Y-%m-%d") < start_date:
            continue
        over = clock >= hour + timedelta(hours=1) + grace or stalled
        if not over:
            pending_days.add(hour.date())
            continue
        mosaic = products_db.mosaic_record(store, hour.strftime("%Y-%m-%dT%H"))
        if mosaic is not None and mosaic["n_members"] == len(created) \
                and mosaic["newest_member"] == max(created):
            continue  # made from exactly these images already
        pending_days.add(hour.date())
        requests.append(MosaicRequest("hourly_mosaic_job", hour.strftime("%Y-%m-%d-%H:00"),
                                      f"hourly-{hour:%Y-%m-%dT%H}-{len(created)}-{max(created)}"))
    for day in sorted({h.date() for h in hours}):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if day.isoformat() < start_date or day in pending_days:
            continue
        if not (clock >= start + timedelta(days=1) + grace or stalled):
            continue
        rows = products_db.mosaics_between(store, "hourly", datetime_to_mjd(start),
                                           datetime_to_mjd(start + timedelta(days=1)))
        if rows:
            newest = max(r["created"] for r in rows)
            requests.append(MosaicRequest("daily_mosaic_job", day.isoformat(),
                                          f"daily-{day.isoformat()}-{len(rows)}-{newest}"))
    return requests


@sensor(name="mosaic_sensor", jobs=[hourly_mosaic_job, daily_mosaic_job], minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING)
def mosaic_sensor(context: SensorEvaluationContext, storage: StorageLayoutResource,
                  state: StateDatabasesResource) -> SensorResult | SkipReason:
    """Requests `hourly_mosaic` for each finished hour with images (again when a late image
    arrives) and `daily_mosaic` for each finished day with hourly mosaics."""
    grace_s = 60.0 * float(storage.settings()["CONTIMG_MOSAIC_GRACE_MIN"])
    with state.open() as store:
        requests = plan_mosaics(store, grace_s=grace_s)
    if not requests:
        return SkipReason("no hour or day is due for a mosaic")
    return SensorResult(run_requests=[RunRequest(job_name=r.job, partition_key=r.partition,
                                                 run_key=r.run_key) for r in requests])

