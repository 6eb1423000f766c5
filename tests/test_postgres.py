"""The production instance (deploy/dagster.yaml, unchanged) on a real PostgreSQL cluster.

A throwaway cluster (tests/pg_cluster.py) holds Dagster's storage; `dagster-daemon` runs
the code location with the production instance file, as the systemd unit does (the state
databases on the same server, as the multi-node layout keeps them). Tiny
groups dropped into incoming/ are found by the incoming sensor's ticks, which register
their partitions and request conversion runs; the queued run coordinator launches them
side by side. Then everything is read back from Postgres with SQL (runs, event logs,
dynamic partitions, sensor ticks) and through Dagster's instance API (partition status).
Last, a run worker killed with SIGKILL is failed by run monitoring and its group is
converted again by a new run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.live_platform import platform_environment, start_daemon, stop_daemon, wait_for_sensor
from tests.conftest import fresh_state_url
from tests.pg_cluster import PgCluster, pg_bin_dir, throwaway_cluster

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(pg_bin_dir() is None, reason="no PostgreSQL server installed "
                                 "(scripts/setup.sh installs Debian's postgresql)")]

REPO = Path(__file__).resolve().parents[1]
N_GROUPS = 3
JOB = "convert_group_job"


class LivePlatform:
    """The cluster, the platform's environment and its running daemon."""

    def __init__(self, cluster: PgCluster, env: dict[str, str], incoming: Path, groups: list):
        self.cluster, self.env, self.incoming, self.groups = cluster, env, incoming, groups
        self.conn = cluster.connect()

    def query(self, sql: str, *args) -> list[tuple]:
        """Rows of one SQL query on Dagster's Postgres storage."""
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def state(self, sql: str, *args) -> list[tuple]:
        """Rows of one SQL query on the platform's state databases (their own database)."""
        conn = self.cluster.connect(self.env["CONTIMG_STATE_URL"].rsplit("/", 1)[1])
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        finally:
            conn.close()

    def runs(self, job: str = JOB) -> list[tuple[str, str, str]]:
        """(run_id, status, partition) of every run of `job`, oldest first."""
        return self.query("SELECT run_id, status, partition FROM runs WHERE pipeline_name = %s"
                          " ORDER BY create_timestamp", job)

    def wait_for(self, what: str, done, timeout_s: float, poll_s: float = 1.0):
        """Until `done()` returns something truthy (returned), or fail naming `what`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = done()
            if value:
                return value
            time.sleep(poll_s)
        log = (Path(self.env["CONTIMG_HOME"]) / "daemon.log").read_text()[-4000:]
        pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}; runs: "
                    f"{self.runs()}; daemon log tail:\n{log}")


def drop(group, incoming: Path) -> None:
    """Put a simulated group's 16 files into incoming/ (old mtimes: settled at once)."""
    for path in group.files:
        shutil.copy2(path, incoming / path.name)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    """A platform home whose DAGSTER_HOME holds a copy of deploy/dagster.yaml, on a
    throwaway Postgres cluster, with `dagster-daemon` running; N_GROUPS + 1 tiny groups
    simulated (no calibrator: each conversion run converts and then waits for tables)."""
    from contimg.layout import resolve_layout
    from contimg.simulation.telescope import SimulationRequest, simulate

    base = tmp_path_factory.mktemp("pg-platform")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        groups = simulate(SimulationRequest(out_dir=base / "sim", size="tiny",
                                            n_groups=N_GROUPS + 1, seed=23))
    with throwaway_cluster() as cluster, pytest.MonkeyPatch.context() as patch:
        home = base / "home"
        # the production configuration: the state databases on the same server too
        env = platform_environment(home, **cluster.environ(),
                                   CONTIMG_STATE_URL=fresh_state_url(cluster))
        dagster_home = Path(env["DAGSTER_HOME"])
        dagster_home.mkdir(parents=True)
        shutil.copy(REPO / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
        for key, value in env.items():  # the test's own instance API calls read the same
            if key.startswith(("CONTIMG_", "DAGSTER_")):
                patch.setenv(key, value)
        _create_storage()
        daemon = start_daemon(env, home / "daemon.log")
        try:
            wait_for_sensor(env, "incoming_files_sensor", timeout_s=300)
            yield LivePlatform(cluster, env, resolve_layout(env).incoming_dir, groups)
        finally:
            stop_daemon(daemon)
            shutil.rmtree(env["CONTIMG_TMPFS_DIR"], ignore_errors=True)


def _create_storage() -> None:
    """Create Dagster's schema in the empty database once, before the daemon and its code
    server both try to."""
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        instance.get_run_records(limit=1)


def test_sensor_ticks_and_concurrent_runs_are_recorded_in_postgres(live: LivePlatform):
    from dagster import AssetKey, DagsterInstance
    from dagster._core.storage.partition_status_cache import AssetPartitionStatus

    from contimg_assets.partitions import observation_groups

    groups = live.groups[:N_GROUPS]
    for group in groups:
        drop(group, live.incoming)
    ids = sorted(g.group_id for g in groups)

    def all_finished():
        runs = live.runs()
        return runs if len(runs) >= N_GROUPS and all(
            s in ("SUCCESS", "FAILURE", "CANCELED") for _, s, _ in runs) else None

    runs = live.wait_for(f"{N_GROUPS} conversion runs to finish", all_finished, timeout_s=600)

    # runs: one per group, each requested by the sensor and finished with SUCCESS
    assert sorted(p for _, _, p in runs) == ids, runs
    assert {s for _, s, _ in runs} == {"SUCCESS"}, runs
    run_ids = [r for r, _, _ in runs]
    sensor_tags = live.query("SELECT value FROM run_tags WHERE key = 'dagster/sensor_name'"
                             " AND run_id = ANY(%s)", run_ids)
    assert [v for (v,) in sensor_tags] == ["incoming_files_sensor"] * N_GROUPS

    # the runs overlapped: the coordinator launched them side by side, not one by one
    spans = live.query("SELECT run_id, start_time, end_time FROM runs WHERE run_id = ANY(%s)"
                       " ORDER BY start_time", run_ids)
    assert all(start and end for _, start, end in spans), spans
    assert spans[1][1] < spans[0][2], f"the runs never ran at the same time: {spans}"

    # event logs: each group's MS materialised by its own run; the conversion pool
    # (limit 1) kept the measurement_set steps apart even though the runs overlapped
    materialised = live.query(
        "SELECT partition, run_id FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        " AND asset_key = %s ORDER BY partition", '["measurement_set"]')
    assert [p for p, _ in materialised] == ids
    assert {r for _, r in materialised} == set(run_ids)
    steps = live.query(
        "SELECT run_id, dagster_event_type, timestamp FROM event_logs WHERE step_key ="
        " 'measurement_set' AND dagster_event_type IN ('STEP_START', 'STEP_SUCCESS')"
        " ORDER BY timestamp")
    intervals = sorted((min(t for r2, e, t in steps if r2 == r and e == "STEP_START"),
                        max(t for r2, e, t in steps if r2 == r and e == "STEP_SUCCESS"))
                       for r in run_ids)
    print(f"measurement_set steps (start, end): {intervals}; runs: {spans}")
    for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False):
        assert start >= end, f"two conversions ran at once despite the pool limit: {intervals}"

    # the state databases in PostgreSQL: each group's MS registered, its ingest row completed
    assert live.state("SELECT group_id, status FROM products.ms_index ORDER BY group_id") == [
        (g, "converted") for g in ids]
    assert live.state("SELECT group_id, state FROM ingest.groups ORDER BY group_id") == [
        (g, "completed") for g in ids]

    # dynamic partitions: the sensor registered every group
    partitions = live.query("SELECT partition FROM dynamic_partitions WHERE"
                            " partitions_def_name = 'observation_groups' ORDER BY partition")
    assert [p for (p,) in partitions] == ids
    assert live.query("SELECT 1 FROM asset_keys WHERE asset_key = %s", '["measurement_set"]')

    # sensor ticks: the daemon evaluated the incoming sensor repeatedly, and the ticks
    # that requested the runs are recorded with their run ids
    ticks = live.query(
        "SELECT t.status, t.tick_body FROM job_ticks t JOIN jobs j ON j.job_origin_id ="
        " t.job_origin_id WHERE j.job_body LIKE %s AND t.type = 'SENSOR'", '%incoming_files_sensor%')
    assert len(ticks) >= 3, ticks
    requested = {r for status, body in ticks if status == "SUCCESS" for r in run_ids if r in body}
    assert requested == set(run_ids)

    # partition status through Dagster's own API on the same storage
    with DagsterInstance.get() as instance:
        assert set(instance.get_dynamic_partitions("observation_groups")) >= set(ids)
        status = instance.get_status_by_partition(AssetKey("measurement_set"), ids, observation_groups)
        assert status == {g: AssetPartitionStatus.MATERIALIZED for g in ids}
        assert instance.get_materialized_partitions(AssetKey("uvh5_group")) >= set(ids)


def test_a_killed_run_worker_is_failed_by_run_monitoring_and_its_group_redone(live: LivePlatform):

    group = live.groups[N_GROUPS]
    drop(group, live.incoming)
    gid = group.group_id

    def converting() -> str | None:
        """The group's run id once it converts the group: the ingest registry has it
        in_progress under its lock (a worker killed before that leaves a group the sensor
        re-requests only after REREQUEST_AFTER, 5 min; not what this test is about)."""
        rows = live.state("SELECT run_id FROM ingest.groups WHERE group_id = %s AND state ="
                          " 'in_progress'", gid)
        return rows[0][0] if rows and rows[0][0] else None

    run_id = live.wait_for(f"group {gid}'s conversion to start", converting, 300, poll_s=0.05)
    pid = _worker_pid(run_id)
    assert Path(f"/proc/{pid}").exists(), "the conversion ended before it could be killed"
    # The code server that started the worker would notice its child's death itself; a
    # node losing both (OOM, a crash) leaves only run monitoring to find out. So the code
    # server goes first (the daemon starts a new one), then the worker.
    server = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert b"grpc" in Path(f"/proc/{server}/cmdline").read_bytes(), "the worker's parent"
    os.kill(server, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    failed = live.wait_for(f"run {run_id} to be marked failed", lambda: live.query(
        "SELECT status FROM runs WHERE run_id = %s AND status = 'FAILURE'", run_id), 300)
    assert failed
    detected_s = time.monotonic() - killed_at
    # the reason the health check gave, recorded with the run's failure (stored as
    # PIPELINE_FAILURE, Dagster's old name for RUN_FAILURE)
    messages = [json.loads(body)["dagster_event"].get("message") or "" for (body,) in live.query(
        "SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type ="
        " 'PIPELINE_FAILURE'", run_id)]
    assert any(f"the run worker (pid {pid}) is gone" in m for m in messages), messages

    # the incoming sensor puts the group back in line: a second run converts it
    def redone():
        rows = live.query("SELECT run_id, status FROM runs WHERE partition = %s AND run_id <> %s",
                          gid, run_id)
        return rows if rows and rows[-1][1] in ("SUCCESS", "FAILURE") else None

    again = live.wait_for(f"group {gid} to be converted again", redone, 300)
    assert [s for _, s in again] == ["SUCCESS"], again
    assert live.state("SELECT status FROM products.ms_index WHERE group_id = %s", gid) == [("converted",)]
    print(f"killed worker detected in {detected_s:.0f} s")


def _worker_pid(run_id: str) -> int:
    """The pid the run's worker recorded in its first engine event ("Started process for
    run (pid: N)"), the one run monitoring's health check reads too."""
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.get() as instance:
        for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT,
                                                   limit=20).records:
            event = record.event_log_entry.dagster_event
            pid = event.event_specific_data.metadata.get("pid") if event else None
            if pid is not None:
                return int(pid.value)
    raise AssertionError(f"run {run_id} recorded no worker pid")
