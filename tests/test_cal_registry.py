"""The calibration registry: sets registered whole, lookup rules, failed never active."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from contimg.layout import resolve_layout
from contimg.state import StateStore
from contimg.state.cal_registry_db import RegisteredTable, record_unsolvable, register_set, tables_for

# Every test here runs on both state backends: SQLite files and PostgreSQL.
pytestmark = pytest.mark.usefixtures("state_backend")

DAY = 60961.0


def _register(store, group: str, kinds: tuple[str, ...], windows: dict, status: str = "active",
              set_id: str | None = None) -> None:
    register_set(store, set_id=set_id or f"{group}/{'+'.join(kinds)}", group_id=group,
                 source_ms=Path(f"/ms/{group}.ms"), calibrator="0834+555", refant="24",
                 registered=[RegisteredTable(k, Path(f"/ms/{group}_{k}" + (f".{set_id}" if set_id
                                                                            else "")),
                                             json.dumps({}), 0.0) for k in kinds],
                 windows={k: windows[k] for k in kinds}, status=status)


def test_lookup_picks_the_bandpass_and_the_nearest_gain_set(layout_env):
    store = StateStore(resolve_layout().ensure().state_dir)
    _register(store, "bp1", ("kcal", "bpcal", "gpcal", "2gcal"),
              {"kcal": (DAY, DAY + 1), "bpcal": (DAY, DAY + 1),
               "gpcal": (DAY + 0.48, DAY + 0.52), "2gcal": (DAY + 0.48, DAY + 0.52)})
    _register(store, "g2", ("gpcal", "2gcal"),
              {"gpcal": (DAY + 0.50, DAY + 0.54), "2gcal": (DAY + 0.50, DAY + 0.54)})
    early = tables_for(store, DAY + 0.505)  # in both gain windows, nearer the first's centre
    assert early.kinds == ("kcal", "bpcal", "gpcal", "2gcal")
    assert early.paths[2:] == ("/ms/bp1_gpcal", "/ms/bp1_2gcal")
    assert early.interp == ["nearest", "nearest", "linear", "linear"]
    late = tables_for(store, DAY + 0.53)
    assert late.paths == ("/ms/bp1_kcal", "/ms/bp1_bpcal", "/ms/g2_gpcal", "/ms/g2_2gcal")
    assert tables_for(store, DAY + 0.6) is None, "no gain valid then: awaiting calibration"
    assert tables_for(store, DAY + 1.2) is None, "no bandpass valid then"


def test_a_failed_solution_is_never_used_and_a_resolve_supersedes(layout_env):
    store = StateStore(resolve_layout().ensure().state_dir)
    windows = {"bpcal": (DAY, DAY + 1), "gpcal": (DAY, DAY + 1), "2gcal": (DAY, DAY + 1)}
    _register(store, "cal", ("bpcal", "gpcal", "2gcal"), windows, status="failed")
    assert tables_for(store, DAY + 0.5) is None
    _register(store, "cal", ("bpcal", "gpcal", "2gcal"), windows, set_id="cal/1")
    _register(store, "cal", ("bpcal", "gpcal", "2gcal"), windows, set_id="cal/2")
    chosen = tables_for(store, DAY + 0.5)
    assert (chosen.bandpass_set, chosen.gain_set) == ("cal/2", "cal/2")
    assert chosen.paths == ("/ms/cal_bpcal.cal/2", "/ms/cal_gpcal.cal/2", "/ms/cal_2gcal.cal/2")
    statuses = store.query("cal_registry", "SELECT set_id, status FROM caltables ORDER BY id")
    assert [tuple(r) for r in statuses][-3:] == [("cal/2", "active")] * 3
    assert {r[1] for r in statuses[:3]} == {"failed"}


def test_a_set_is_visible_whole_or_not_at_all(layout_env, tmp_path):
    """Another process reads while a set is being registered: it never sees part of it."""
    import multiprocessing

    layout = resolve_layout().ensure()
    store = StateStore(layout.state_dir)
    windows = {"bpcal": (DAY, DAY + 1), "gpcal": (DAY, DAY + 1), "2gcal": (DAY, DAY + 1)}
    context = multiprocessing.get_context("spawn")
    stop, ready = context.Event(), context.Event()
    seen = context.Queue()
    reader = context.Process(target=_watch, args=(str(layout.state_dir), stop, ready, seen))
    reader.start()
    assert ready.wait(timeout=60)
    for n in range(60):
        _register(store, f"g{n:03d}", ("bpcal", "gpcal", "2gcal"), windows)
    stop.set()
    reader.join(timeout=60)
    seen_sets = seen.get(timeout=10)
    # A half-registered set would pair the new bandpass with the previous set's gains.
    assert seen_sets and all(b == g for b, g in seen_sets), seen_sets


def _watch(state_dir: str, stop, ready, seen) -> None:
    store = StateStore(state_dir)
    sets = []
    tables_for(store, DAY + 0.5)
    ready.set()
    while not stop.is_set():
        chosen = tables_for(store, DAY + 0.5)
        if chosen is not None:
            sets.append((chosen.bandpass_set, chosen.gain_set))
    seen.put(sets)


def test_gains_of_a_neighbouring_hour_stand_in_only_where_the_own_solve_failed(layout_env):
    store = StateStore(resolve_layout().ensure().state_dir)
    _register(store, "bp", ("bpcal", "gpcal", "2gcal"),
              {"bpcal": (DAY, DAY + 1), "gpcal": (DAY + 0.48, DAY + 0.52),
               "2gcal": (DAY + 0.48, DAY + 0.52)})
    hour_later = DAY + 0.5 + 1 / 24
    assert tables_for(store, hour_later, gain_fallback_h=3) is None, \
        "gains not solved yet for that hour: wait for them, do not stand in"
    _register(store, "faint", ("gpcal", "2gcal"),
              {"gpcal": (hour_later - 0.02, hour_later + 0.02),
               "2gcal": (hour_later - 0.02, hour_later + 0.02)}, status="failed")
    assert tables_for(store, hour_later) is None, "no fallback unless configured"
    stand_in = tables_for(store, hour_later, gain_fallback_h=3)
    assert stand_in.gain_set.startswith("bp/") and stand_in.paths[-1] == "/ms/bp_2gcal"
    assert tables_for(store, hour_later, gain_fallback_h=0.5) is None, "too far away"


def test_an_hour_that_could_not_be_solved_takes_neighbouring_gains(layout_env):
    """An hour whose solve never produced tables (no sky model) counts as failed for the
    fallback, exactly like one whose tables failed their limits."""
    store = StateStore(resolve_layout().ensure().state_dir)
    _register(store, "bp", ("bpcal", "gpcal", "2gcal"),
              {"bpcal": (DAY, DAY + 1), "gpcal": (DAY + 0.48, DAY + 0.52),
               "2gcal": (DAY + 0.48, DAY + 0.52)})
    hours_later = DAY + 0.5 + 5 / 24  # beyond the old 3 h fallback
    assert tables_for(store, hours_later, gain_fallback_h=12) is None, "not solved yet: wait"
    record_unsolvable(store, kind="2gcal", group_id="empty", reason="the sky model is empty",
                      window=(hours_later - 0.02, hours_later + 0.02))
    stand_in = tables_for(store, hours_later, gain_fallback_h=12)
    assert stand_in is not None and stand_in.paths[-1] == "/ms/bp_2gcal"
    assert tables_for(store, hours_later, gain_fallback_h=3) is None, "too far for 3 h"
    assert tables_for(store, hours_later + 0.05, gain_fallback_h=12) is None, "outside its window"


def test_a_gain_solve_with_an_empty_sky_model_is_recorded_for_its_hour(layout_env, tiny_groups):
    """The hourly solve on a field with no catalogue source above the floor cannot run:
    it raises naming the MS, and records the hour so its groups need not wait for ever."""
    from contimg.calibration.sky_model import SkyModelSettings
    from contimg.calibration.stages import (
        CalibrationConfig,
        EmptySkyModelError,
        hour_start_of,
        solve_gains_for_hour,
    )
    from contimg.conversion.pipeline import convert_into_tree
    from contimg.state import products_db

    layout = resolve_layout().ensure()
    store = StateStore(layout.state_dir)
    group = tiny_groups[1]
    convert_into_tree(group.group_id, group.files, layout, store)
    _register(store, "bp", ("bpcal",), {"bpcal": (DAY - 1, DAY + 2)})
    hour = hour_start_of(f"{group.group_id[:10]}-{group.group_id[11:13]}:00")
    catalogue = layout.static_dir / "catalogs" / "nvss.tsv"
    catalogue.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(next(group.truth_json.parent.glob("*_nvss.tsv")), catalogue)
    config = CalibrationConfig(sky=SkyModelSettings(catalog_path=catalogue, flux_floor_jy=1e6))
    with pytest.raises(EmptySkyModelError, match=f"{group.group_id}.ms is empty"):
        solve_gains_for_hour(layout, store, hour, config=config)
    (row,) = store.query("cal_registry", "SELECT * FROM solve_failures")
    mid = products_db.ms_record(store, group.group_id)["start_mjd"]
    hour_mjd = DAY + int(group.group_id[11:13]) / 24
    assert row["kind"] == "2gcal" and row["group_id"] == group.group_id
    assert row["valid_start_mjd"] <= hour_mjd and row["valid_end_mjd"] >= hour_mjd + 1 / 24 - 1e-6
    assert row["valid_start_mjd"] <= mid < row["valid_end_mjd"] and "empty" in row["reason"]
    assert not store.query("cal_registry", "SELECT 1 FROM caltables WHERE kind = '2gcal'")
