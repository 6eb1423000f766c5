"""Prometheus metrics with the seed's names plus the pipeline's own, computed per scrape.

Served on a loopback HTTP port (`contimg metrics serve`) and written as a textfile
for node_exporter's textfile collector (`logs/metrics/contimg.prom`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from contimg.layout import StorageLayout
from contimg.ops.storage_usage import volume_usage
from contimg.state import DATABASES, StateStore, cal_registry_db, ingest_db, products_db
from contimg.state.connection import DRIVER_ERRORS, StateDatabaseError, acquire_shared_state_lock

log = logging.getLogger("contimg.metrics")

GB = 1e9


def record_ops_run(store: StateStore, operation: str, status: str, details: str = "") -> None:
    """Remember that an operation (backup, archive, retention) finished."""
    products_db.record_ops_run(store, operation, status, time.time(), details)


class ContimgCollector(Collector):
    """Reads the layout and state databases on every scrape (cheap queries only).

    Each family is computed on its own: a broken (corrupt, missing) database drops only
    the families it feeds, and `contimg_state_database_ok{database}` says which one.
    """

    def __init__(self, layout: StorageLayout) -> None:
        self.layout = layout

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family that can be read now."""
        for family in (self._disk, self._tmpfs, self._incoming):
            yield from _safely(family)
        store = StateStore(self.layout.state_dir)
        try:
            yield _database_ok(store)
            for query in (_groups, _converted, _failures, _calibration_age,
                          *(_last_run(op) for op in OPERATIONS)):
                yield from _safely(lambda q=query: q(store))  # type: ignore[misc]
        finally:
            store.close()  # releases the shared state lock: restore must not see us

    def _disk(self) -> Metric:
        fast, _ = volume_usage(self.layout)
        return _gauge("contimg_stage_disk_free_gb", "Free space on the fast (stage) disk",
                      fast.free / GB)

    def _tmpfs(self) -> Metric:
        _, tmpfs = volume_usage(self.layout)
        return _gauge("contimg_tmpfs_usage_percent", "tmpfs usage percentage",
                      100.0 * tmpfs.used / tmpfs.total if tmpfs.total else 0.0)

    def _incoming(self) -> Metric:
        with os.scandir(self.layout.incoming_dir) as entries:
            incoming = sum(1 for e in entries if e.is_file() and not e.name.startswith("."))
        return _gauge("contimg_incoming_file_count", "Files in incoming/", incoming)


OPERATIONS = ("backup", "archive", "retention")


def _safely(family: Callable[[], Metric]) -> Iterator[Metric]:
    """One family, or nothing (logged) when what it reads is broken."""
    try:
        metric = family()
    except (OSError, *DRIVER_ERRORS, StateDatabaseError) as exc:
        log.warning("metric family skipped: %s", exc)
        return
    yield metric


def _database_ok(store: StateStore) -> Metric:
    ok = GaugeMetricFamily("contimg_state_database_ok",
                           "1 when the state database opens and answers a query, else 0",
                           labels=["database"])
    for name in DATABASES:
        try:
            store.probe(name)
            value = 1.0
        except (*DRIVER_ERRORS, StateDatabaseError) as exc:
            log.warning("state database %s unreadable: %s", name, exc)
            value = 0.0
        ok.add_metric([name], value)
    return ok


def _groups(store: StateStore) -> Metric:
    groups = GaugeMetricFamily("contimg_groups", "Observation groups by state", labels=["state"])
    for state, count in ingest_db.group_counts(store).items():
        groups.add_metric([state], count)
    return groups


def _converted(store: StateStore) -> Metric:
    # A counter: Prometheus exposes the family "contimg_groups_converted" as *_total.
    return CounterMetricFamily("contimg_groups_converted", "Groups converted to an MS",
                               value=products_db.conversions_total(store))


def _failures(store: StateStore) -> Metric:
    return CounterMetricFamily("contimg_group_failures", "Group conversions that failed (each "
                               "failure and retry counted once)", value=ingest_db.failures_total(store))


def _calibration_age(store: StateStore) -> Metric:
    """Age of the newest active bandpass (bpcal) and gains (2gcal) on the data's clock: the
    newest converted group's time minus the time of the group the table was solved on
    (so replayed or delayed data are judged by their own time); +Inf while groups exist
    but no such table does."""
    age = GaugeMetricFamily("contimg_calibration_age_seconds", "Age of the newest active "
                            "calibration table relative to the newest converted group", labels=["kind"])
    newest_data = products_db.newest_converted_mjd(store)
    if newest_data is None:
        return age
    for kind in ("bpcal", "2gcal"):
        solved = cal_registry_db.newest_solved_mjd(store, kind)
        age.add_metric([kind], float("inf") if solved is None else max(0.0, (newest_data - solved) * 86400.0))
    return age


def _last_run(operation: str) -> Callable[[StateStore], Metric]:
    def family(store: StateStore) -> Metric:
        return _gauge(f"contimg_last_{operation}_timestamp_seconds",
                      f"Unix time of the last successful {operation}",
                      products_db.last_ops_run_epoch(store, operation) or 0.0)
    return family


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
    """Serve /metrics on host:port until interrupted.

    The server runs for as long as the platform (the run command starts and stops it),
    so it holds the shared state lock throughout: `contimg restore` refuses meanwhile.
    """
    platform_lock = acquire_shared_state_lock(layout.state_dir)  # noqa: F841 - held to exit
    start_http_server(port, addr=host, registry=registry_for(layout))
    while True:
        time.sleep(3600)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
