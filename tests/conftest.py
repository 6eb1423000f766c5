"""Shared fixtures: an isolated layout per test and simulated groups made once per session."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from contimg.simulation.telescope import SimulatedGroup, SimulationRequest, simulate

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"


@contextmanager
def module_home(base: Path) -> Iterator[tuple]:
    """(layout, store) of a platform home under `base` for a module-scoped fixture (the
    function-scoped `layout_env` cannot serve one); the environment is restored after."""
    from contimg.layout import resolve_layout
    from contimg.state import StateStore

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONTIMG_HOME", str(base / "home"))
        patch.setenv("CONTIMG_TMPFS_DIR", str(base / "shm"))
        layout = resolve_layout().ensure()
        yield layout, StateStore(layout.state_dir)


def drop_groups_with_their_catalogue(layout, groups) -> None:
    """The simulator's NVSS table as the platform's catalogue, and every group's files in
    incoming/ (an hour old, so the sensor takes them as complete at once)."""
    old = time.time() - 3600
    catalog = layout.static_dir / "catalogs" / "nvss.tsv"
    catalog.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(next(groups[0].truth_json.parent.glob("*_nvss.tsv")), catalog)
    for group in groups:
        for src in group.files:
            dst = layout.incoming_dir / Path(src).name
            shutil.copyfile(src, dst)
            os.utime(dst, (old, old))


@pytest.fixture(autouse=True)
def default_sigterm():
    """Every test starts with SIGTERM at its default. Evaluating a Dagster sensor copies
    SIGINT's disposition onto SIGTERM and leaves it there; when the suite runs in the
    background (SIGINT ignored, as `cmd &` does), every process a later test starts would
    then ignore SIGTERM, and `terminate()` would not stop it."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield


@pytest.fixture
def layout_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every CONTIMG_* location into a fresh temporary home; return that home.
    (CONTIMG_STATE_URL stays: `state_backend` may have chosen PostgreSQL.)"""
    for key in list(os.environ):
        if key.startswith("CONTIMG_") and key != "CONTIMG_STATE_URL":
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    monkeypatch.setenv("CONTIMG_HOME", str(home))
    monkeypatch.setenv("CONTIMG_TMPFS_DIR", str(tmp_path / "shm"))
    return home


@pytest.fixture(scope="session")
def tiny_groups(tmp_path_factory: pytest.TempPathFactory) -> list[SimulatedGroup]:
    """Two consecutive tiny groups with a calibrator (made once, read by many tests)."""
    out = tmp_path_factory.mktemp("tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate(SimulationRequest(out_dir=out, size="tiny", n_groups=2,
                                          calibrator="0834+555", seed=11))


class _Capture(BaseHTTPRequestHandler):
    """A Slack-compatible webhook stand-in: records every JSON payload POSTed to it."""

    payloads: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers["Content-Length"])
        _Capture.payloads.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    """A real HTTP server on loopback; yields (url, list of received payloads)."""
    _Capture.payloads = []
    server = HTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Capture.payloads
    server.shutdown()


def fire_run_failure_sensor(instance, result, resources) -> None:
    """Evaluate run_failure_alert_sensor for a failed `materialize` result, as the daemon would."""
    from dagster import DagsterEventType, build_run_status_sensor_context

    from sensors.run_failures import run_failure_alert_sensor

    failure = next(e for e in instance.all_logs(result.run_id)
                   if e.dagster_event_type == DagsterEventType.RUN_FAILURE)
    with build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor", dagster_instance=instance,
            dagster_run=result.dagster_run, dagster_event=failure.dagster_event,
            resources=resources) as context:
        run_failure_alert_sensor(context.for_run_failure())


@pytest.fixture
def platform(layout_env):
    """(layout, resources, ephemeral instance): what the sensor and the assets run with."""
    from dagster import DagsterInstance

    from contimg.layout import resolve_layout
    from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource

    storage = StorageLayoutResource()
    resources = {"storage": storage, "state": StateDatabasesResource(storage=storage),
                 "notifier": NotifierResource(storage=storage)}
    return resolve_layout().ensure(), resources, DagsterInstance.ephemeral()


# -- the state databases on PostgreSQL --------------------------------------------------

_PG_DATABASES = iter(range(1, 1_000_000))


@pytest.fixture(scope="session")
def state_cluster() -> Iterator[object]:
    """One throwaway PostgreSQL cluster for the session's state-backend tests."""
    from tests.pg_cluster import pg_bin_dir, throwaway_cluster

    if pg_bin_dir() is None:
        pytest.skip("no PostgreSQL server installed (scripts/setup.sh installs Debian's postgresql)")
    with throwaway_cluster() as cluster:
        yield cluster


def fresh_state_url(cluster) -> str:
    """A new, empty database on the cluster: its postgresql:// URL."""
    name = f"state_{os.getpid()}_{next(_PG_DATABASES)}"
    conn = cluster.connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
    finally:
        conn.close()
    return (f"postgresql://{cluster.user}:{cluster.password}@{cluster.host}:{cluster.port}/{name}")


@pytest.fixture(params=["sqlite", "postgres"])
def state_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test twice: state in SQLite files, then in a fresh PostgreSQL database
    (CONTIMG_STATE_URL, which every StateStore and subprocess of the test picks up)."""
    if request.param == "postgres":
        monkeypatch.setenv("CONTIMG_STATE_URL", fresh_state_url(request.getfixturevalue("state_cluster")))
    else:
        monkeypatch.delenv("CONTIMG_STATE_URL", raising=False)
    return request.param


def _on_postgres_by_environment() -> bool:
    return os.environ.get("CONTIMG_TEST_STATE_BACKEND") == "postgres"


@pytest.fixture(scope="module", autouse=True)
def module_state_backend_from_environment(request: pytest.FixtureRequest) -> Iterator[None]:
    """CONTIMG_TEST_STATE_BACKEND=postgres: a module's own fixtures (a home made once for
    the module) keep their state in a fresh PostgreSQL database of the module's."""
    if not _on_postgres_by_environment():
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONTIMG_STATE_URL", fresh_state_url(request.getfixturevalue("state_cluster")))
        yield


@pytest.fixture(autouse=True)
def state_backend_from_environment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """CONTIMG_TEST_STATE_BACKEND=postgres runs any test with its state in a fresh
    PostgreSQL database (a whole-suite check of the dialect; CI runs the state tests on
    both backends through `state_backend`); a test on a module-scoped fixture shares the
    module's database, as it shares the module's home."""
    fixtures = request.node._fixtureinfo.name2fixturedefs  # which fixtures, at what scope
    on_module_home = any(defs[-1].scope == "module" and name != "module_state_backend_from_environment"
                         for name, defs in fixtures.items())
    if (_on_postgres_by_environment() and "state_backend" not in request.fixturenames
            and not on_module_home):
        monkeypatch.setenv("CONTIMG_STATE_URL", fresh_state_url(request.getfixturevalue("state_cluster")))
    yield
