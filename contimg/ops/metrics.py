"""Prometheus metrics with the seed's names plus the pipeline's own, computed per scrape.

Served on a loopback HTTP port (`contimg metrics serve`) and written as a textfile
for node_exporter's textfile collector (`logs/metrics/contimg.prom`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from contimg.layout import StorageLayout
from contimg.ops.storage_usage import volume_usage
from contimg.state import StateStore

GB = 1e9


def record_ops_run(store: StateStore, operation: str, status: str, details: str = "") -> None:
    """Remember that an operation (backup, archive, retention) finished."""
    now = time.time()
    store.execute("products",
                  "INSERT INTO ops_runs (operation, finished_at, finished_epoch, status, details)"
                  " VALUES (?, strftime('%Y-%m-%dT%H:%M:%S', 'now'), ?, ?, ?)",
                  (operation, now, status, details))


class ContimgCollector(Collector):
    """Reads the layout and state databases on every scrape (cheap queries only)."""

    def __init__(self, layout: StorageLayout) -> None:
        self.layout = layout

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield every metric family."""
        layout = self.layout
        fast, tmpfs = volume_usage(layout)
        yield _gauge("contimg_stage_disk_free_gb", "Free space on the fast (stage) disk",
                     fast.free / GB)
        yield _gauge("contimg_tmpfs_usage_percent", "tmpfs usage percentage",
                     100.0 * tmpfs.used / tmpfs.total if tmpfs.total else 0.0)
        with os.scandir(layout.incoming_dir) as entries:
            incoming = sum(1 for e in entries if e.is_file() and not e.name.startswith("."))
        yield _gauge("contimg_incoming_file_count", "Files in incoming/", incoming)
        store = StateStore(layout.state_dir)
        try:
            groups = GaugeMetricFamily("contimg_groups", "Observation groups by state",
                                       labels=["state"])
            for state, count in store.query("ingest", "SELECT state, count(*) FROM groups"
                                                      " GROUP BY state"):
                groups.add_metric([state], count)
            yield groups
            converted = store.query("products", "SELECT count(*) FROM ms_index"
                                                " WHERE status = 'converted'")[0][0]
            yield _gauge("contimg_groups_converted_total", "Groups converted to an MS", converted)
            failed = store.query("ingest", "SELECT count(*) FROM groups WHERE state = 'failed'")
            yield _gauge("contimg_group_failures_total", "Groups that failed", failed[0][0])
            for operation in ("backup", "archive", "retention"):
                row = store.query("products", "SELECT max(finished_epoch) FROM ops_runs"
                                              " WHERE operation = ? AND status = 'ok'", (operation,))
                yield _gauge(f"contimg_last_{operation}_timestamp_seconds",
                             f"Unix time of the last successful {operation}", row[0][0] or 0.0)
        finally:
            store.close()


def registry_for(layout: StorageLayout) -> CollectorRegistry:
    """A registry holding only contimg's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ContimgCollector(layout))
    return registry


def write_textfile(layout: StorageLayout) -> Path:
    """Write the metrics for node_exporter's textfile collector."""
    path = layout.logs_dir / "metrics" / "contimg.prom"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry_for(layout))
    return path


def serve(layout: StorageLayout, port: int, host: str = "127.0.0.1") -> None:
    """Serve /metrics on host:port until interrupted."""
    start_http_server(port, addr=host, registry=registry_for(layout))
    while True:
        time.sleep(3600)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
