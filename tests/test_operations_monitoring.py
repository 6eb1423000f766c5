"""Storage usage: thresholds crossed and restored, history and growth, metrics scraped,
alert payloads delivered once per crossing to a real local HTTP server."""

import json
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from dagster import AssetCheckSeverity, materialize
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from contimg.layout import resolve_layout
from contimg.ops.metrics import registry_for
from contimg.ops.storage_usage import observe_storage
from contimg.ops.usage_history import (
    append_observation,
    compact_past_days,
    days_until_full,
    growth_per_day,
)
from contimg.state import StateStore
from contimg_assets.storage_usage import storage_usage
from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource
from tests.conftest import VENV_BIN, fire_run_failure_sensor


def _materialize(fake: Path, level: dict, webhook_url: str):
    fake.write_text(json.dumps(level))
    storage = StorageLayoutResource()
    result = materialize([storage_usage], resources={
        "storage": storage, "state": StateDatabasesResource(storage=storage),
        "notifier": NotifierResource(storage=storage, webhook_url=webhook_url)})
    assert result.success
    return {e.check_name: e for e in result.get_asset_check_evaluations()}, result


def _wait_for(payloads: list, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(payloads) < count and time.monotonic() < deadline:
        time.sleep(0.1)


def test_thresholds_go_warn_error_and_back_with_one_alert_per_crossing(
        layout_env, tmp_path, monkeypatch, webhook):
    url, payloads = webhook
    fake = tmp_path / "fake_disk.json"
    monkeypatch.setenv("CONTIMG_FAKE_DISK_USAGE", str(fake))
    steps = [({"fast_disk_free_gb": 500, "tmpfs_used_percent": 10}, True, None, True),
             ({"fast_disk_free_gb": 150, "tmpfs_used_percent": 10}, False,
              AssetCheckSeverity.WARN, True),
             ({"fast_disk_free_gb": 150, "tmpfs_used_percent": 10}, False,
              AssetCheckSeverity.WARN, True),
             ({"fast_disk_free_gb": 50, "tmpfs_used_percent": 97}, False,
              AssetCheckSeverity.ERROR, False),
             ({"fast_disk_free_gb": 500, "tmpfs_used_percent": 10}, True, None, True)]
    for level, disk_ok, severity, tmpfs_ok in steps:
        checks, _ = _materialize(fake, level, url)
        assert checks["fast_disk_free"].passed is disk_ok
        if severity is not None:
            assert checks["fast_disk_free"].severity == severity
        assert checks["tmpfs_usage"].passed is tmpfs_ok
    _wait_for(payloads, 5)
    texts = [p["text"] for p in payloads]
    # OK->WARN, WARN->ERROR, tmpfs OK->ERROR, ERROR->OK, tmpfs ERROR->OK: once each,
    # and nothing for the repeated WARN observation.
    assert sorted(texts) == sorted([
        "[contimg] disk_threshold: fast_disk_free went from OK to WARN",
        "[contimg] disk_threshold: fast_disk_free went from WARN to ERROR",
        "[contimg] disk_threshold: tmpfs_usage went from OK to ERROR",
        "[contimg] disk_threshold: fast_disk_free went from ERROR to OK",
        "[contimg] disk_threshold: tmpfs_usage went from ERROR to OK"])
    assert payloads[0]["contimg"]["check"] in ("fast_disk_free", "tmpfs_usage")


def test_history_gives_growth_and_days_until_full(layout_env, tmp_path):
    layout = resolve_layout().ensure()
    history = tmp_path / "history"
    day = 86400.0
    for index in range(4):
        (layout.incoming_dir / f"blob{index}.bin").write_bytes(b"x" * 1_000_000)
        observation = observe_storage(layout, now=1.7e9 + index * day, fake_file=str(
            _fake(tmp_path, {"fast_disk_free_gb": 100 - 10 * index})))
        append_observation(history, observation)
    before = growth_per_day(history, days=30)
    merged = compact_past_days(history, today="2099-01-01")
    assert len(merged) == 4 and all(list(d.glob("*.parquet")) == [d / "day.parquet"]
                                    for d in merged)
    growth = growth_per_day(history, days=30)
    assert growth == pytest.approx(before)  # compaction keeps every observation
    assert growth["incoming"] == pytest.approx(1_000_000, rel=1e-6)
    assert growth["fast_disk_free"] == pytest.approx(-10e9, rel=1e-6)
    assert days_until_full(70e9, growth) == pytest.approx(7.0)


def _fake(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "fake.json"
    path.write_text(json.dumps(values))
    return path


def test_materialization_shows_plot_and_writes_textfile_metrics(layout_env, webhook):
    url, _ = webhook
    storage = StorageLayoutResource()
    resources = {"storage": storage, "state": StateDatabasesResource(storage=storage),
                 "notifier": NotifierResource(storage=storage, webhook_url=url)}
    for _ in range(2):
        result = materialize([storage_usage], resources=resources)
    metadata = result.asset_materializations_for_node("storage_usage")[0].metadata
    assert metadata["plot"].value.startswith("![storage history](data:image/png;base64,")
    assert "incoming" in metadata["areas"].value
    prom = (resolve_layout().logs_dir / "metrics" / "contimg.prom").read_text()
    for name in ("contimg_stage_disk_free_gb", "contimg_tmpfs_usage_percent",
                 "contimg_incoming_file_count", "contimg_groups_converted_total",
                 "contimg_last_backup_timestamp_seconds"):
        assert name in prom


def test_metrics_http_endpoint_is_scraped(layout_env, tmp_path, monkeypatch):
    monkeypatch.setenv("CONTIMG_FAKE_DISK_USAGE", str(_fake(tmp_path, {"fast_disk_free_gb": 123})))
    layout = resolve_layout().ensure()
    for index in range(3):
        (layout.incoming_dir / f"2025-10-13T13:28:0{index}_sb0{index}.hdf5").write_bytes(b"\0")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([str(VENV_BIN / "contimg"), "metrics", "serve", "--port", str(port)])
    try:
        body = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert "contimg_incoming_file_count 3.0" in body
        assert "contimg_stage_disk_free_gb 123.0" in body
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_run_failure_sensor_posts_the_failure(layout_env, webhook):
    from dagster import DagsterInstance

    from contimg_assets.measurement_set import measurement_set
    from contimg_assets.uvh5_group import uvh5_group

    url, payloads = webhook
    instance = DagsterInstance.ephemeral()
    storage = StorageLayoutResource()
    resources = {"storage": storage, "state": StateDatabasesResource(storage=storage),
                 "notifier": NotifierResource(storage=storage, webhook_url=url)}
    instance.add_dynamic_partitions("observation_groups", ["2025-10-13T13:28:03"])
    # A group nobody registered: its files cannot be found, so the run fails.
    result = materialize([uvh5_group, measurement_set], partition_key="2025-10-13T13:28:03",
                         instance=instance, resources=resources, raise_on_error=False)
    assert not result.success
    fire_run_failure_sensor(instance, result, resources)
    _wait_for(payloads, 1)
    assert len(payloads) == 1
    assert payloads[0]["text"].startswith("[contimg] run_failure: run ")
    assert payloads[0]["contimg"]["partition"] == "2025-10-13T13:28:03"


def test_area_walk_cache_matches_a_full_walk_and_follows_changes(layout_env, tmp_path):
    layout = resolve_layout().ensure()
    day = layout.ms_dir / "science" / "2025-10-13"
    for name in ("2025-10-13T13:28:03.ms", "2025-10-13T13:33:12.ms"):
        (day / name / "ANTENNA").mkdir(parents=True)
        (day / name / "table.f0").write_bytes(b"x" * 1000)
        (day / name / "ANTENNA" / "table.f0").write_bytes(b"y" * 10)
    cache_file = tmp_path / "cache.json"

    def science(**kwargs):
        observation = observe_storage(layout, now=2e9, **kwargs)
        return next(a for a in observation.areas if a.area == "ms_science")

    full = science()
    assert (full.file_count, full.bytes) == (4, 2020)
    assert science(cache_file=cache_file) == full
    # The cache is really used: an unchanged day is not walked again...
    cache = json.loads(cache_file.read_text())
    cache[str(day)]["count"] = 999
    cache_file.write_text(json.dumps(cache))
    assert science(cache_file=cache_file).file_count == 999
    # ...and a product that gains files (e.g. CORRECTED_DATA) invalidates it.
    time.sleep(0.01)
    (day / "2025-10-13T13:28:03.ms" / "table.f3").write_bytes(b"z" * 5)
    updated = science(cache_file=cache_file)
    assert (updated.file_count, updated.bytes) == (5, 2025)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _scrape(port: int) -> requests.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "the metrics server never answered"
            time.sleep(0.3)


def test_metrics_keep_serving_when_a_database_is_corrupt(layout_env, tmp_path, monkeypatch):
    monkeypatch.setenv("CONTIMG_FAKE_DISK_USAGE", str(_fake(tmp_path, {"fast_disk_free_gb": 321})))
    layout = resolve_layout().ensure()
    with StateStore(layout.state_dir) as store:
        store.execute("ingest", "INSERT INTO groups (group_id, state, first_seen, updated, failures)"
                      " VALUES ('g1', 'failed', 'now', 'now', 1)")
    for extra in layout.state_dir.glob("products.sqlite3-*"):
        extra.unlink()
    products = layout.database_path("products")
    products.write_bytes(b"not a database " * 1000)  # garbage over the whole file
    port = _free_port()
    server = subprocess.Popen([str(VENV_BIN / "contimg"), "metrics", "serve", "--port", str(port)],
                              stderr=subprocess.DEVNULL)
    try:
        reply = _scrape(port)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert reply.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(reply.text)}
    ok = {s.labels["database"]: s.value for s in families["contimg_state_database_ok"].samples}
    assert ok == {"ingest": 1.0, "cal_registry": 1.0, "products": 0.0, "master_sources": 1.0}
    assert "contimg_stage_disk_free_gb 321.0" in reply.text
    assert "contimg_group_failures_total 1.0" in reply.text, "the ingest families still served"
    assert "contimg_groups_converted_total" not in reply.text, "products families are dropped"
    assert products.read_bytes().startswith(b"not a database"), "the broken file is left alone"


def test_total_metrics_are_counters(layout_env):
    layout = resolve_layout().ensure()
    text = generate_latest(registry_for(layout)).decode()
    assert re.search(r"^# TYPE contimg_groups_converted(_total)? counter$", text, re.M)
    assert re.search(r"^# TYPE contimg_group_failures(_total)? counter$", text, re.M)
    assert "contimg_groups_converted_total 0.0" in text
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["contimg_groups_converted"] == "counter"
    assert types["contimg_group_failures"] == "counter"
    assert types["contimg_stage_disk_free_gb"] == "gauge"


def test_failure_counter_never_goes_down_when_a_group_is_requeued(layout_env):
    from contimg.ingest.registry import IngestRegistry
    from contimg.ingest.settings import IngestSettings

    layout = resolve_layout().ensure()
    with StateStore(layout.state_dir) as store:
        store.execute("ingest", "INSERT INTO groups (group_id, state, n_subbands, first_seen,"
                      " updated) VALUES ('2025-10-13T13:28:03', 'pending', 16, 'now', 'now')")
        registry = IngestRegistry(store, IngestSettings())
        registry.mark_group("2025-10-13T13:28:03", "failed", "bad file")
        first = generate_latest(registry_for(layout)).decode()
        registry.requeue("2025-10-13T13:28:03", "fixed")
        second = generate_latest(registry_for(layout)).decode()
    assert "contimg_group_failures_total 1.0" in first
    assert "contimg_group_failures_total 1.0" in second
