"""The code location loads, its assets materialise with real resources, and a real
dagster-webserver serves it over GraphQL."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from dagster import materialize

from contimg.layout import resolve_layout
from contimg.state import StateStore
from contimg_assets.storage_locations import storage_locations
from resources import StateDatabasesResource, StorageLayoutResource
from tests.conftest import REPO, VENV_BIN


def test_definitions_validate(layout_env, tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    Path(env["DAGSTER_HOME"]).mkdir()
    result = subprocess.run(
        [str(VENV_BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_storage_locations_asset_registers_every_base_directory(layout_env):
    storage = StorageLayoutResource()
    result = materialize([storage_locations], resources={
        "storage": storage, "state": StateDatabasesResource(storage=storage)})
    assert result.success
    layout = resolve_layout()
    rows = StateStore(layout.state_dir).query(
        "products", "SELECT name, path FROM storage_locations ORDER BY name")
    paths = {r["name"]: r["path"] for r in rows}
    assert paths["science_ms"] == str(layout.ms_dir / "science")
    assert paths["failed_ms"] == str(layout.ms_dir / "failed")
    assert len(paths) == 10


def test_demo_feeder_job_writes_a_group_into_incoming(layout_env):
    from contimg_assets.definitions import defs

    job = defs.resolve_job_def("simulated_telescope_job")
    result = job.execute_in_process(run_config={
        "ops": {"write_simulated_group": {"config": {"group_index": 2}}}})
    assert result.success
    files = sorted(resolve_layout().incoming_dir.glob("*.hdf5"))
    assert len(files) == 16
    assert result.output_for_node("write_simulated_group") == files[0].name[:19]
    # Only the subband files: the truth goes elsewhere, so the sensor has nothing to reject.
    assert sorted(resolve_layout().incoming_dir.iterdir()) == files
    assert any((resolve_layout().tmp_dir / "demo-truth").glob("*_truth.json"))
    # The demo's sky is also its NVSS-format catalogue, so calibration has a sky model.
    from contimg.catalogs.nvss import read_nvss_table

    catalogue = read_nvss_table(resolve_layout().static_dir / "catalogs" / "nvss.tsv")
    assert len(catalogue) > 5 and max(s.flux_jy for s in catalogue) > 5  # 0834+555 is listed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_webserver_serves_the_code_location_over_graphql(layout_env, tmp_path):
    port = _free_port()
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    server = subprocess.Popen(
        [str(VENV_BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
         "-p", str(port)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    query = """{ workspaceOrError { ... on Workspace { locationEntries { name
        locationOrLoadError { __typename ... on RepositoryLocation {
          repositories { name assetNodes { assetKey { path } }
                         sensors { name } schedules { name cronSchedule } } } } } } } }"""
    try:
        body = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                reply = requests.post(f"http://127.0.0.1:{port}/graphql",
                                      json={"query": query}, timeout=10)
                body = reply.json()
                entry = body["data"]["workspaceOrError"]["locationEntries"][0]
                if entry["locationOrLoadError"]:
                    break
            except (requests.ConnectionError, KeyError, IndexError, TypeError):
                pass
            time.sleep(1)
        assert body is not None, "webserver never answered"
        entry = body["data"]["workspaceOrError"]["locationEntries"][0]
        assert entry["name"] == "contimg"
        location = entry["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation", location
        repo = location["repositories"][0]
        assert ["storage_locations"] in [a["assetKey"]["path"] for a in repo["assetNodes"]]
        assert "simulated_telescope_sensor" in [s["name"] for s in repo["sensors"]]
        assert {"name": "storage_locations_schedule", "cronSchedule": "5 0 * * *"} in \
            repo["schedules"]
    finally:
        server.terminate()
        server.wait(timeout=30)
