"""A stretch of a simulated day through the live platform (the CI version of `contimg bench
day`): `dagster-daemon` with the platform's sensors on, a feeder delivering 30 tiny
groups at 30× the telescope's cadence, calibration from the stretch's own transit.
Every group must be converted, calibrated and imaged exactly once, the state databases,
the files on disk and Dagster's runs must agree, and no run may fail."""

from __future__ import annotations

import json

import pytest

from benchmarks.day import run_day

GROUPS = 30
SOLUTION_CHECKS = ("gain_quality", "bandpass_quality")


def _assert_each_group_done_once(audit: dict, groups: int) -> None:
    """Every group converted, calibrated and imaged, each exactly once (the day's audit)."""
    for count in ("ingest_completed", "ms_rows", "ms_on_disk", "calibrated", "images_ready",
                  "images_on_disk", "converted_once"):
        assert audit[count] == groups, (count, audit)
    assert audit["groups_imaged_more_than_once"] == []
    assert audit["groups_with_more_than_one_run"] == []
    assert audit["groups_converted_more_than_once"] == []


@pytest.mark.slow
def test_thirty_groups_are_each_converted_calibrated_and_imaged_exactly_once(tmp_path):
    figures = run_day(GROUPS, speedup=30, work=tmp_path, timeout_s=1500)
    print(json.dumps(figures))
    audit = figures["audit"]
    assert figures["finished"], f"the stream did not finish: {audit}"
    assert audit["runs_by_status"].get("FAILURE", 0) == 0, audit
    # A solve may fail its quality limits on a faint field (six antennas): a failed check,
    # not a failed run; its hour then takes neighbouring gains, and every group is still
    # calibrated (asserted below).
    assert all(c.startswith(SOLUTION_CHECKS) for c in audit["failed_solution_checks"]), audit
    assert audit["ingest_other"] == {}, "groups left in another state than completed"
    _assert_each_group_done_once(audit, GROUPS)
    assert figures["consistent"]
    assert figures["images"] == GROUPS and figures["latency_max_s"] > 0


@pytest.mark.slow
def test_killing_the_daemon_and_webserver_mid_stream_loses_and_duplicates_no_group(tmp_path):
    # SIGKILL to both services' process groups once 3 images exist: the daemon takes its
    # code server and the run workers in flight with it. Started again, run monitoring
    # fails the dead runs (their workers are gone) and the sensors and run retries redo them.
    groups = 12
    figures = run_day(groups, speedup=30, work=tmp_path, timeout_s=1500, restart_after_images=3)
    print(json.dumps(figures))
    audit = figures["audit"]
    assert figures["restarted_at_images"] >= 3 and figures["webserver_back_s"] < 180
    assert figures["finished"], f"the stream did not finish after the restart: {audit}"
    assert audit["failed_runs"] == [], "only runs whose worker died may have failed"
    assert audit["quality_failed_runs"] == [], audit
    _assert_each_group_done_once(audit, groups)
    assert figures["consistent"]
