"""The calibration sensor: solves and applies requested with no operator.

Each tick (plain `plan_tick`, then Dagster requests):
(a) every group converted since the cursor: a calibrator group requests `bandpass_solution`
    for its day (`bandpass-<group>`); a group whose hour has a valid bandpass requests
    `gain_solution` for that hour, once per hour and bandpass set (`gain-<hour>-<set>`);
(b) every group `awaiting` (or left `calibrating` by a killed run: its lock is free) is
    requested again in `calibrate_group_job` once `tables_for` finds tables
    (`calibrate-<group>-<tables>-<since>`); when only the gains are missing, its hour's
    gains are requested (same key as in (a), so never twice);
(c) when a group has awaited longer than CONTIMG_CAL_GAP_ALERT_MIN, one
    `missing_calibration` alert per gap (once per crossing), and one when the gap closes.
(d) every calibrated group with no image, no imaging failure on record, no live run and a
    free lock (its run died while imaging) is requested in `image_group_job`
    (`image-<group>-<its newest run>`), at most REIMAGE_ATTEMPTS times.
The cursor keeps the last converted rowid and the recent run keys, so a request is made
once even where the daemon's own run-key de-duplication is not there (tests, tools).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from contimg.ingest.group_lock import is_locked
from contimg.layout import StorageLayout
from contimg.ops.notifier import Notifier, level_changed
from contimg.state import StateStore, products_db
from contimg.state.cal_registry_db import bandpass_at, gains_solved_since, solved_on, tables_for
from contimg_assets.calibration import CALIBRATION_START
from contimg_assets.executors import run_executor
from contimg_assets.partitions import LIVE_RUN_STATUSES, REDONE_BY_SENSORS
from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource

KEPT_KEYS = 2000  # recent run keys remembered in the cursor
FAILED_RUNS_LOOKED_AT = 500  # the newest failed applies counted per group (new request keys)
REIMAGE_ATTEMPTS = 3  # image_group_job runs of one group before it is left to an operator
# One process per run and no step subprocesses: a per-group run is ~2 s of Dagster
# instead of ~7 (README, "Automation and the calibration assets").
bandpass_solution_job = define_asset_job("bandpass_solution_job", selection=["bandpass_solution"],
                                         executor_def=run_executor(),
                                         description="Solve the day's bandpass set.")
gain_solution_job = define_asset_job("gain_solution_job", selection=["gain_solution"],
                                     executor_def=run_executor(),
                                     description="Solve the hour's gains.")
calibrate_group_job = define_asset_job("calibrate_group_job",
                                       selection=["calibrated_ms", "image", "photometry"],
                                       executor_def=run_executor(), tags=REDONE_BY_SENSORS,
                                       description="Apply calibration to one group, image and measure it.")
image_group_job = define_asset_job("image_group_job", selection=["image", "photometry"],
                                   executor_def=run_executor(), tags=REDONE_BY_SENSORS,
                                   description="Image and measure one calibrated group again (its "
                                               "earlier run died while imaging).")


@dataclass(frozen=True)
class Request:
    """One run to request: job, partition key and run key."""

    job: str
    partition: str
    run_key: str
    group: str = ""


@dataclass
class TickPlan:
    """What one tick decided."""

    requests: list[Request] = field(default_factory=list)
    rowid: int = 0
    keys: list[str] = field(default_factory=list)
    gap_level: str = "OK"
    gap_message: str = ""


def plan_tick(layout: StorageLayout, store: StateStore, cursor: str | None, *, gap_alert_min: float,
              now: float | None = None, busy: frozenset[str] = frozenset(),
              gain_fallback_h: float = 0.0, failed: Mapping[str, int] | None = None) -> TickPlan:
    """Decide the tick's requests from the products and calibration registries; groups in
    `busy` (a run of theirs is queued or running) are not requested again."""
    state = json.loads(cursor) if cursor else {}
    plan = TickPlan(rowid=int(state.get("rowid", 0)), keys=list(state.get("keys", [])))
    seen = set(plan.keys)

    def add(request: Request) -> None:
        if request.run_key not in seen and request.partition[:10] >= CALIBRATION_START:
            seen.add(request.run_key)
            plan.keys.append(request.run_key)
            plan.requests.append(request)

    for row in products_db.converted_after(store, plan.rowid):
        plan.rowid = max(plan.rowid, int(row["rowid"]))
        # A transit whose bandpass is already active (solved on it) needs no new solve; a
        # later, brighter transit of the day still asks (the asset picks the day's best).
        if row["kind"] == "calibrators" and not solved_on(store, row["group_id"], "bpcal"):
            add(Request("bandpass_solution_job", row["group_id"][:10], f"bandpass-{row['group_id']}"))
        gains = _gain_request(store, row["group_id"], (row["start_mjd"] + row["end_mjd"]) / 2)
        if gains:
            add(gains)
    _plan_waiting(layout, store, plan, add, gap_alert_min, time.time() if now is None else now,
                  busy, gain_fallback_h, failed or {})
    plan.keys = plan.keys[-KEPT_KEYS:]
    return plan


def _plan_waiting(layout: StorageLayout, store: StateStore, plan: TickPlan, add, gap_alert_min: float,
                  now: float, busy: frozenset[str], gain_fallback_h: float,
                  failed: Mapping[str, int]) -> None:
    """Re-request groups whose tables now exist; ask for missing gains; measure the gap."""
    overdue = []
    for row in products_db.groups_in_calibration_state(store, ("awaiting", "calibrating")):
        group = row["group_id"]
        if row["calibration_status"] == "calibrating" and is_locked(layout, group):
            continue  # an apply is running now
        if group in busy:
            # Its request is queued (or running): newer tables landing meanwhile must not
            # add a second one, which would apply and image the group twice.
            continue
        mid = (row["start_mjd"] + row["end_mjd"]) / 2
        found = tables_for(store, mid, gain_fallback_h=gain_fallback_h)
        if found is not None:
            tag = _short("|".join(found.paths))
            # A run of it that failed (its worker killed before the apply began leaves the
            # group awaiting, unchanged) gives the next request a key of its own.
            again = f"-r{failed[group]}" if failed.get(group) else ""
            add(Request("calibrate_group_job", group,
                        f"calibrate-{group}-{tag}-{int(row['calibration_since'] or 0)}{again}", group))
            continue
        gains = _gain_request(store, group, mid)
        if gains:
            add(gains)
        if row["calibration_status"] == "awaiting" and now - (row["calibration_since"] or now) \
                >= gap_alert_min * 60:
            overdue.append(group)
    if overdue:
        plan.gap_level = "GAP"
        plan.gap_message = (f"{len(overdue)} group(s) await calibration for longer than "
                            f"{gap_alert_min:g} min (oldest {overdue[0]}): no valid bandpass or "
                            "gains for their time")


def _gain_request(store: StateStore, group_iso: str, mid: float) -> Request | None:
    """The hour's gain solve, once a bandpass is valid there (key per hour and bandpass set),
    unless gains were already solved in that hour with that bandpass."""
    bandpass = bandpass_at(store, mid)
    if bandpass is None:
        return None
    hour = f"{group_iso[:10]}-{group_iso[11:13]}:00"
    first, last = f"{group_iso[:13]}:00:00", f"{group_iso[:13]}:59:60"
    if gains_solved_since(store, first, last, bandpass.bandpass_set):
        return None
    return Request("gain_solution_job", hour, f"gain-{hour}-{_short(bandpass.bandpass_set)}")


def _short(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def alert_on_gap(store: StateStore, notifier: Notifier, plan: TickPlan) -> bool:
    """One `missing_calibration` alert per gap, one `calibration_restored` when it closes."""
    previous = level_changed(store, "calibration_gap", plan.gap_level)
    if previous is None:
        return False
    if plan.gap_level == "GAP":
        notifier.notify("missing_calibration", plan.gap_message)
    else:
        notifier.notify("calibration_restored", "every group awaiting calibration has been calibrated")
    return True


def reimage_requests(layout: StorageLayout, store: StateStore, instance) -> list[Request]:
    """(d): calibrated groups left without an image by a run that died while imaging."""
    requests = []
    for row in products_db.calibrated_without_image(store):
        group = row["group_id"]
        if group[:10] < CALIBRATION_START or is_locked(layout, group):
            continue
        runs = instance.get_runs(RunsFilter(tags={"dagster/partition": group}), limit=1)
        if runs and runs[0].status in LIVE_RUN_STATUSES:
            continue  # its run is still under way (e.g. waiting for the imaging pool)
        attempts = instance.get_runs_count(RunsFilter(job_name="image_group_job",
                                                      tags={"dagster/partition": group}))
        if attempts < REIMAGE_ATTEMPTS:
            newest = runs[0].run_id[:8] if runs else "none"
            requests.append(Request("image_group_job", group, f"image-{group}-{newest}", group))
    return requests


@sensor(name="calibration_sensor", jobs=[bandpass_solution_job, gain_solution_job, calibrate_group_job,
                                                 image_group_job],
        minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING)
def calibration_sensor(context: SensorEvaluationContext, storage: StorageLayoutResource,
                       state: StateDatabasesResource, notifier: NotifierResource):
    """Request bandpass and gain solves as calibrator and science groups are converted,
    apply calibration to groups that waited once their tables land, alert once per gap."""
    gap_min = float(storage.settings()["CONTIMG_CAL_GAP_ALERT_MIN"])
    fallback_h = float(storage.settings()["CONTIMG_GAIN_FALLBACK_H"])
    with state.open() as store:
        busy = frozenset(run.tags.get("dagster/partition", "") for run in context.instance.get_runs(
            RunsFilter(statuses=LIVE_RUN_STATUSES, job_name="calibrate_group_job")))
        failed = Counter(run.tags.get("dagster/partition", "") for run in context.instance.get_runs(
            RunsFilter(statuses=[DagsterRunStatus.FAILURE], job_name="calibrate_group_job"),
            limit=FAILED_RUNS_LOOKED_AT))
        plan = plan_tick(storage.layout(), store, context.cursor, gap_alert_min=gap_min, busy=busy,
                         gain_fallback_h=fallback_h, failed=failed)
        plan.requests += reimage_requests(storage.layout(), store, context.instance)
        alert_on_gap(store, notifier.notifier(), plan)
    cursor = json.dumps({"rowid": plan.rowid, "keys": plan.keys})
    if not plan.requests:
        context.update_cursor(cursor)
        return SkipReason("nothing to solve or apply")
    for request in plan.requests:
        context.log.info(f"{request.job} {request.partition} ({request.run_key})")
    return SensorResult(
        run_requests=[RunRequest(job_name=r.job, partition_key=r.partition, run_key=r.run_key,
                                 tags={})
                      for r in plan.requests],
        cursor=cursor)
