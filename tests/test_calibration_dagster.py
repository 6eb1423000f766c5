"""Calibration in Dagster with no operator: a calibrator transit and a science group five
minutes later (tiny preset, real CASA and AOFlagger) go through the incoming sensor, the
per-group job, the calibration sensor and the solve jobs.

SNR: tiny preset (6 antennas, 32 channels of 5.9 MHz, 24 x 12.9 s), SEFD 5800 Jy ->
~0.47 Jy per visibility; 0834+555 at ~8.8 Jy gives ~190 per antenna and channel for the
bandpass. The science group still has the calibrator in its beam's edge, so its hourly
gains solve against the NVSS model with a median SNR well above the limit.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from casacore import tables
from dagster import Definitions, build_sensor_context

from benchmarks.day import failed_checks
from contimg.ops.metrics import registry_for
from contimg.state import StateStore, products_db
from contimg.state.cal_registry_db import tables_for
from contimg_assets.calibration import bandpass_solution, calibrated_ms, gain_solution
from contimg_assets.imaging import image
from contimg_assets.measurement_set import measurement_set
from contimg_assets.photometry import photometry
from contimg_assets.uvh5_group import uvh5_group
from sensors.calibration import (
    bandpass_solution_job,
    calibrate_group_job,
    calibration_sensor,
    gain_solution_job,
)
from sensors.incoming_files import convert_group_job, incoming_files_sensor
from tests.conftest import drop_groups_with_their_catalogue


@pytest.fixture
def calibration_platform(platform, tiny_groups, monkeypatch):
    """The platform with the simulator's NVSS table as the catalogue, alerts on at once,
    both groups dropped into incoming/ and made partitions by the incoming sensor."""
    layout, resources, instance = platform
    monkeypatch.setenv("CONTIMG_CAL_GAP_ALERT_MIN", "0")
    drop_groups_with_their_catalogue(layout, tiny_groups)
    with build_sensor_context(instance=instance, resources=resources) as context:
        result = incoming_files_sensor(context)
    instance.add_dynamic_partitions("observation_groups", [r.partition_key for r in result.run_requests])
    defs = Definitions(
        assets=[uvh5_group, measurement_set, bandpass_solution, gain_solution, calibrated_ms, image,
                photometry],
        jobs=[convert_group_job, bandpass_solution_job, gain_solution_job, calibrate_group_job],
        resources=resources)
    return layout, resources, instance, defs


class Ticker:
    """The calibration sensor evaluated as the daemon would, cursor carried between ticks."""

    def __init__(self, instance, resources):
        self.instance, self.resources, self.cursor = instance, resources, None

    def __call__(self) -> list:
        with build_sensor_context(instance=self.instance, resources=self.resources,
                                  cursor=self.cursor) as context:
            result = calibration_sensor(context)
            self.cursor = context.cursor if not hasattr(result, "cursor") or result.cursor is None \
                else result.cursor
        return list(getattr(result, "run_requests", None) or [])


def _run(defs, job: str, key: str, instance):
    result = defs.resolve_job_def(job).execute_in_process(partition_key=key, instance=instance,
                                                          raise_on_error=False)
    assert result.success, [str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure]
    return result


def _materialization(result, asset: str):
    events = [e for e in result.get_asset_materialization_events()
              if e.asset_key.to_user_string() == asset]
    return events[-1].event_specific_data.materialization if events else None


def _alerts(layout, kind: str) -> list[dict]:
    path = layout.logs_dir / "alerts.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [a for a in map(json.loads, lines) if a.get("kind") == kind]


def _corrected(ms: Path) -> bool:
    with tables.table(str(ms), ack=False) as main:
        return "CORRECTED_DATA" in main.colnames() and bool(abs(main.getcol("CORRECTED_DATA")).sum())


def test_groups_are_calibrated_with_no_operator(calibration_platform, tiny_groups):
    layout, resources, instance, defs = calibration_platform
    calibrator, science = (g.group_id for g in tiny_groups)
    day = calibrator[:10]
    store = StateStore(layout.state_dir)
    tick = Ticker(instance, resources)

    # The calibrator group converts before any solution exists: it waits, visibly.
    converted = _run(defs, "convert_group_job", calibrator, instance)
    assert _materialization(converted, "measurement_set") is not None
    assert _materialization(converted, "calibrated_ms") is None
    observed = [e.event_specific_data.asset_observation for e in converted.all_events
                if e.event_type_value == "ASSET_OBSERVATION"]
    assert observed and observed[0].metadata["calibration_status"].value == "awaiting"
    row = products_db.ms_record(store, calibrator)
    assert row["calibration_status"] == "awaiting" and "bandpass" in row["calibration_note"]

    # The sensor asks for the day's bandpass and alerts once for the gap.
    requests = tick()
    assert [(r.job_name, r.partition_key) for r in requests] == [("bandpass_solution_job", day)]
    assert tick() == [], "each request is made once"
    assert len(_alerts(layout, "missing_calibration")) == 1

    solved = _run(defs, "bandpass_solution_job", day, instance)
    meta = _materialization(solved, "bandpass_solution").metadata
    date_dir = layout.ms_dir / "calibrators" / day
    for kind in ("bpcal", "gpcal", "2gcal"):
        assert (date_dir / f"{calibrator}_{kind}" / "table.dat").exists()
    assert meta["status"].value == "active" and meta["refant"].value
    assert "data:image/png;base64," in meta["plot_bpcal"].value
    assert all(c.passed for c in solved.get_asset_check_evaluations())

    # Its tables landed: the waiting group is requested again and calibrated.
    requests = tick()
    assert [(r.job_name, r.partition_key) for r in requests] == [("calibrate_group_job", calibrator)]
    applied = _run(defs, "calibrate_group_job", calibrator, instance)
    meta = _materialization(applied, "calibrated_ms").metadata
    assert f"{calibrator}_bpcal" in meta["table_names"].value
    assert abs(meta["calibrator_flux_ratio"].value - 1) < 0.05
    assert all(c.passed for c in applied.get_asset_check_evaluations())
    assert _corrected(Path(products_db.ms_record(store, calibrator)["path"]))

    # The science group is calibrated inside its own conversion run.
    converted = _run(defs, "convert_group_job", science, instance)
    meta = _materialization(converted, "calibrated_ms").metadata
    row = products_db.ms_record(store, science)
    assert row["calibration_status"] == "calibrated"
    assert json.loads(row["cal_tables"]) == meta["tables"].value
    assert {Path(p).name for p in meta["tables"].value} == {f"{calibrator}_{k}" for k in
                                                           ("bpcal", "gpcal", "2gcal")}
    assert _corrected(Path(row["path"]))
    # ... and imaged in that same run: the quick-look and the tables that calibrated it.
    imaged = _materialization(converted, "image").metadata
    assert "data:image/png;base64," in imaged["quicklook"].value
    assert Path(imaged["image_pb"].value).exists() and imaged["cal_tables"].value == meta["tables"].value
    checks = {c.check_name: c.passed for c in converted.get_asset_check_evaluations()}
    assert checks["image_valid"] and "image_beam" in checks
    # ... and measured: forced photometry of the catalogue's sources, in its Parquet file.
    measured = _materialization(converted, "photometry").metadata
    assert Path(measured["measurements"].value).exists() and measured["forced"].value >= 1
    assert "data:image/png;base64," in measured["fluxes"].value

    # Its hour gets its own gains, against the NVSS model, with the bandpass applied.
    requests = tick()
    hour = f"{science[:10]}-{science[11:13]}:00"
    assert [(r.job_name, r.partition_key) for r in requests] == [("gain_solution_job", hour)]
    assert len(_alerts(layout, "calibration_restored")) == 1
    assert len(_alerts(layout, "missing_calibration")) == 1, "one alert per gap"
    gains = _run(defs, "gain_solution_job", hour, instance)
    meta = _materialization(gains, "gain_solution").metadata
    assert meta["status"].value == "active" and meta["group"].value == science
    assert (date_dir / f"{science}_2gcal" / "table.dat").exists()
    late_in_hour = products_db.ms_record(store, science)["start_mjd"] + 50 / 1440
    assert tables_for(store, late_in_hour).paths[-1] == str(date_dir / f"{science}_2gcal")

    ages = {s.labels["kind"]: s.value for family in registry_for(layout).collect()
            if family.name == "contimg_calibration_age_seconds" for s in family.samples}
    assert set(ages) == {"bpcal", "2gcal"} and 0 <= ages["2gcal"] <= ages["bpcal"] < 3600


def test_tables_older_than_the_limits_turn_the_age_checks_to_warn(calibration_platform, tiny_groups,
                                                                   monkeypatch):
    """The science group is calibrated by the calibrator's set, solved five minutes before
    it: with limits of 36 s both age checks WARN (not ERROR) and the run still succeeds."""
    _, _, instance, defs = calibration_platform
    monkeypatch.setenv("CONTIMG_BANDPASS_WARN_AGE_H", "0.01")
    monkeypatch.setenv("CONTIMG_GAIN_WARN_AGE_H", "0.01")
    calibrator, science = (g.group_id for g in tiny_groups)
    _run(defs, "convert_group_job", calibrator, instance)
    _run(defs, "bandpass_solution_job", calibrator[:10], instance)
    on_its_own_tables = {c.check_name: c for c in _run(
        defs, "calibrate_group_job", calibrator, instance).get_asset_check_evaluations()}
    assert on_its_own_tables["gain_age"].passed and on_its_own_tables["bandpass_age"].passed
    checks = {c.check_name: c for c in _run(defs, "convert_group_job", science, instance)
              .get_asset_check_evaluations()}
    for name in ("bandpass_age", "gain_age"):
        assert not checks[name].passed and checks[name].severity.value == "WARN", name
        assert checks[name].metadata["age_h"].value > 0.07, name  # five minutes
    assert checks["group_flagging"].passed


def test_convert_group_job_runs_conversion_calibration_imaging_and_photometry_in_one_process():
    assert convert_group_job.executor_def.name == "in_process"
    assert {str(k.path[-1]) for k in convert_group_job.selection.resolve(
        [uvh5_group, measurement_set, calibrated_ms, image, photometry])} == {
        "uvh5_group", "measurement_set", "calibrated_ms", "image", "photometry"}


def test_a_solution_failing_its_limits_is_never_active_and_alerts(calibration_platform, tiny_groups,
                                                                   monkeypatch):
    layout, _, instance, defs = calibration_platform
    monkeypatch.setenv("CONTIMG_CAL_MIN_SNR", "1e9")
    calibrator = tiny_groups[0].group_id
    _run(defs, "convert_group_job", calibrator, instance)
    result = defs.resolve_job_def("bandpass_solution_job").execute_in_process(
        partition_key=calibrator[:10], instance=instance, raise_on_error=False)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity.value == "ERROR"
    assert result.success  # the solve ran; its verdict is the failed check, not a failed run
    assert _materialization(result, "bandpass_solution").metadata["status"].value == "failed"
    store = StateStore(layout.state_dir)
    statuses = {r[0] for r in store.query("cal_registry", "SELECT status FROM caltables")}
    assert statuses == {"failed"}
    assert tables_for(store, products_db.ms_record(store, calibrator)["start_mjd"]) is None
    assert len(_alerts(layout, "calibration_failed")) == 1


def test_a_killed_apply_is_requested_again_once_its_lock_is_free(platform):
    """No CASA: registry rows and ms_index states are enough for the sensor's plan."""
    from contimg.ingest.group_lock import group_lock
    from contimg.state.cal_registry_db import RegisteredTable, register_set
    from contimg.state.connection import write_transaction
    from sensors.calibration import plan_tick

    layout, _, _ = platform
    store = StateStore(layout.state_dir)
    store.migrate_all()
    groups = {"2025-10-13T10:00:00": 60961.4167, "2025-10-14T10:00:00": 60962.4167}
    conn = store.connection("products")
    with write_transaction(conn):
        for group, start in groups.items():
            products_db.upsert_ms(conn, path=f"/ms/{group}.ms", group_id=group, kind="science",
                                  start_mjd=start, end_mjd=start + 0.0036, status="converted")
    first, second = groups
    register_set(store, set_id="s1", group_id=first, source_ms=Path("/ms/cal.ms"), calibrator=None,
                 refant="1", registered=[RegisteredTable(k, Path(f"/t/{k}"), "{}", 0.0)
                                         for k in ("bpcal", "gpcal", "2gcal")],
                 windows={k: (60961.3, 60961.5) for k in ("bpcal", "gpcal", "2gcal")})
    products_db.set_calibration_status(store, first, "calibrating", tables=["/t/bpcal"])
    products_db.set_calibration_status(store, second, "awaiting", note="no bandpass")

    def applies(plan) -> list[str]:
        return [r.partition for r in plan.requests if r.job == "calibrate_group_job"]

    with group_lock(layout, first):  # the apply is still running
        plan = plan_tick(layout, store, None, gap_alert_min=60, now=time.time())
    assert applies(plan) == [] and plan.gap_level == "OK"
    plan = plan_tick(layout, store, None, gap_alert_min=0, now=time.time() + 1)
    assert applies(plan) == [first]
    # A request of it still queued: newer tables must not add a second (found by bench day:
    # a group awaiting calibration was applied and imaged twice).
    busy = plan_tick(layout, store, None, gap_alert_min=0, now=time.time() + 1,
                     busy=frozenset({first}))
    assert applies(busy) == []
    # Its run failed (a worker killed before the apply began leaves it as it was): the next
    # request has a key of its own, so Dagster's run-key de-duplication does not drop it.
    keys = [r.run_key for r in plan.requests if r.job == "calibrate_group_job"]
    again = plan_tick(layout, store, None, gap_alert_min=0, now=time.time() + 1,
                      failed={first: 1})
    assert [r.run_key for r in again.requests if r.job == "calibrate_group_job"] == \
        [f"{keys[0]}-r1"]
    assert plan.gap_level == "GAP" and second in plan.gap_message


def test_an_hour_with_no_sky_model_is_a_failed_check_not_a_crash(calibration_platform, tiny_groups,
                                                                  monkeypatch):
    """The simulated day met two hours whose fields have no catalogue source above the flux
    floor: recorded, alerted and shown as the failed gain_quality check (as a solve failing
    its limits is), not a step error; the hour's groups take neighbouring gains."""
    layout, _, instance, defs = calibration_platform
    calibrator, science = (g.group_id for g in tiny_groups)
    _run(defs, "convert_group_job", calibrator, instance)
    _run(defs, "bandpass_solution_job", calibrator[:10], instance)
    _run(defs, "convert_group_job", science, instance)
    monkeypatch.setenv("CONTIMG_SKY_FLUX_FLOOR_JY", "1e6")
    hour = f"{science[:10]}-{science[11:13]}:00"
    result = defs.resolve_job_def("gain_solution_job").execute_in_process(
        partition_key=hour, instance=instance, raise_on_error=False)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity.value == "ERROR"
    assert "is empty" in check.metadata["problems"].value[0]
    meta = _materialization(result, "gain_solution").metadata
    assert meta["status"].value == "unsolvable" and science in meta["reason"].value
    assert result.success  # a verdict on the hour's sky, shown by the check: not a failed run
    assert failed_checks(instance, result.run_id) == ["gain_quality"]  # as the day's audit sees it
    store = StateStore(layout.state_dir)
    assert store.query("cal_registry", "SELECT count(*) FROM solve_failures")[0][0] == 1
    assert any("cannot be solved" in a["message"] for a in _alerts(layout, "calibration_failed"))
