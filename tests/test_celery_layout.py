"""The multi-node layout on one machine: CONTIMG_EXECUTOR=celery, a Redis broker
(Debian's redis-server on a free loopback port), two Celery workers started as separate
processes with `dagster-celery worker start` and deploy/celery/celery.yaml, as the systemd
units start them on two nodes ("node-a" serves the conversion queue, "node-b" the
calibration and imaging queues; both Dagster's default queue), one task at a time each, and
the production instance and the state databases on a throwaway PostgreSQL cluster. One tiny group's
`convert_group_job` runs through them: each step must be executed by the worker that
serves its pool's queue, and the run recorded as a success in Postgres."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.live_platform import platform_environment
from tests.conftest import fresh_state_url
from tests.pg_cluster import free_port, pg_bin_dir, throwaway_cluster

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None,
                       reason="redis-server is not installed (scripts/setup.sh installs it)"),
    pytest.mark.skipif(pg_bin_dir() is None,
                       reason="no PostgreSQL server installed (scripts/setup.sh installs it)"),
]

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
WORKERS = {"node-a": ["conversion", "dagster"], "node-b": ["calibration", "imaging", "dagster"]}


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to a process group started here, SIGKILL if it lingers."""
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()
    except ProcessLookupError:
        pass


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server on a free loopback port, nothing persisted; its URL."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=(tmp_path / "redis.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                             text=True).stdout.strip() != "PONG":
            assert time.monotonic() < deadline and server.poll() is None, "redis never answered"
            time.sleep(0.2)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(server)


def _start_worker(name: str, queues: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """One node's Celery worker as its systemd unit starts it."""
    args = [str(VENV_BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
            "-y", str(REPO / "deploy" / "celery" / "celery.yaml"), "-n", name]
    # One comma-joined -q: dagster-celery passes each -q as its own -Q, and Celery 5 keeps
    # only the last of repeated -Q options (the worker would listen to one queue).
    args += ["-q", ",".join(queues)]
    # --pool=solo: one task at a time in the worker's main process. Celery's default
    # prefork children are daemonic and may not start processes, and the conversion runs
    # in a child process ("daemonic processes are not allowed to have children").
    return subprocess.Popen([*args, "--", "--pool=solo"], env=env, cwd=REPO,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_workers(env: dict[str, str], names: list[str], timeout_s: float = 180) -> None:
    """Until every named worker answers a broadcast ping."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = subprocess.run([str(VENV_BIN / "celery"), "-b", env["CONTIMG_CELERY_BROKER"],
                               "inspect", "ping", "--json", "-t", "3"],
                              capture_output=True, text=True, env=env)
        answered = done.stdout.strip()
        if answered and all(f'"{n}@' in answered for n in names):
            return
        time.sleep(2)
    raise AssertionError(f"the workers {names} never answered a ping")


def test_steps_run_on_the_workers_of_their_pools_queues(tmp_path: Path, redis_url: str):
    from dagster import DagsterInstance

    from contimg.ingest.settings import IngestSettings
    from contimg.layout import resolve_layout
    from contimg.settings import load_settings
    from contimg.simulation.telescope import SimulationRequest, simulate
    from contimg.state import StateStore
    from sensors.incoming_files import run_tick

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group = simulate(SimulationRequest(out_dir=tmp_path / "sim", size="tiny", seed=31))[0]
    with throwaway_cluster() as cluster, pytest.MonkeyPatch.context() as patch:
        home = tmp_path / "home"
        # the state databases on the same server, as deploy/ sets them up: every node's
        # steps write them there (SQLite files would be safe from one host only)
        state_url = fresh_state_url(cluster)
        env = platform_environment(home, **cluster.environ(), CONTIMG_EXECUTOR="celery",
                                   CONTIMG_CELERY_BROKER=redis_url, CONTIMG_STATE_URL=state_url)
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # `celery` for the CLI
        dagster_home = Path(env["DAGSTER_HOME"])
        dagster_home.mkdir(parents=True)
        shutil.copy(REPO / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
        for key, value in env.items():
            if key.startswith(("CONTIMG_", "DAGSTER_")):
                patch.setenv(key, value)
        layout = resolve_layout().ensure()

        # what the incoming sensor does: record the group's files, register its partition
        settled = time.time() - 120  # written a while ago: past the settle time at once
        for path in group.files:
            shutil.copy2(path, layout.incoming_dir / path.name)
            os.utime(layout.incoming_dir / path.name, (settled, settled))
        store = StateStore(layout.state_dir)
        ready: list[str] = []
        for _ in range(3):  # a tick may only record the files; a later one finds the group
            ready += [g.group_id for g in run_tick(layout, store, IngestSettings.from_settings(
                load_settings())).ready]
            if ready:
                break
        assert ready == [group.group_id]
        with DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("observation_groups", [group.group_id])

        workers = [_start_worker(name, queues, env, home / f"{name}.log")
                   for name, queues in WORKERS.items()]
        try:
            _wait_for_workers(env, list(WORKERS))
            began = time.monotonic()
            done = subprocess.run(
                [str(VENV_BIN / "dagster"), "job", "execute", "-m", "contimg_assets.definitions",
                 "-a", "defs", "-j", "convert_group_job", "--tags",
                 json.dumps({"dagster/partition": group.group_id})],
                env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
            elapsed = time.monotonic() - began
        finally:
            for worker in workers:
                _stop(worker)
        logs = {name: (home / f"{name}.log").read_text()[-3000:] for name in WORKERS}
        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{logs}"

        conn = cluster.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT run_id, status FROM runs WHERE pipeline_name = 'convert_group_job'")
            runs = cur.fetchall()
            assert [s for _, s in runs] == ["SUCCESS"], runs
            run_id = runs[0][0]
            # which worker executed each step: the engine event each task writes first
            cur.execute("SELECT event FROM event_logs WHERE run_id = %s AND dagster_event_type ="
                        " 'ENGINE_EVENT' AND step_key IS NOT NULL", (run_id,))
            where: dict[str, str] = {}
            for (body,) in cur.fetchall():
                event = json.loads(body)["dagster_event"]
                # stored in Dagster's serialised form: a list of labelled entries
                entries = {e["label"]: e["entry_data"].get("text")
                           for e in event["event_specific_data"].get("metadata_entries", [])}
                if entries.get("Celery worker"):
                    where[event["step_key"]] = entries["Celery worker"].split("@")[0]
            cur.execute("SELECT asset_key FROM event_logs WHERE run_id = %s AND"
                        " dagster_event_type = 'ASSET_MATERIALIZATION'", (run_id,))
            materialised = sorted(k for (k,) in cur.fetchall())
        print(f"steps by worker: {where}; run took {elapsed:.0f} s")
        assert where["measurement_set"] == "node-a"  # the only worker on the conversion queue
        assert where["calibrated_ms"] == "node-b"  # the only one on the calibration queue
        assert where["uvh5_group"] in WORKERS  # the default queue: either node
        # no calibration tables for this lone group: converted, not calibrated (as in-process)
        assert materialised == ['["measurement_set"]', '["uvh5_group"]'], materialised
        # both nodes wrote the shared state: node-a's conversion registered the MS, node-b's
        # calibration step recorded that the group awaits tables, in PostgreSQL
        state = cluster.connect(state_url.rsplit("/", 1)[1])
        with state.cursor() as cur:
            cur.execute("SELECT status, calibration_status FROM products.ms_index WHERE group_id = %s",
                        (group.group_id,))
            assert cur.fetchall() == [("converted", "awaiting")]
            cur.execute("SELECT state FROM ingest.groups WHERE group_id = %s", (group.group_id,))
            assert cur.fetchall() == [("completed",)]
        assert not list(layout.state_dir.glob("*.sqlite3")), "no node wrote SQLite state"
