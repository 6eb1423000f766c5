"""`contimg bench day`: a simulated day through the running platform.

Untimed: the demo observation's N tiny groups (≈ 279 make a sidereal day; the calibrator
transits mid-day, so its bandpass, valid ±12 h, serves every group) are simulated once
and kept in the work directory. Timed: a fresh home; `dagster-daemon` runs the code
location with its sensors on, as `scripts/run.sh` does, and a feeder thread in this
process delivers the groups into incoming/ as the correlator does (each file written
under a temporary name, then renamed) at an accelerated cadence: the real 309 s divided
by --speedup. The telescope stays outside the platform, as on site (the demo's own feeder
would queue its runs among the platform's). Every group must then be converted,
calibrated and imaged exactly once by the platform's own sensors and runs. The clock
stops when every group's PB-corrected image is registered and no run is left in flight;
then the audit compares the ingest database, `ms_index`, `images`, the files on disk and
Dagster's run records, and prints the figures: throughput (groups per hour, and as a
multiple of the telescope's real rate), each group's latency from its last file's
arrival to its registered image (median, slowest), and the platform's peak memory.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import statistics
import sys
import threading
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.live_platform import (
    create_instance,
    free_port,
    kill_group,
    platform_environment,
    start_daemon,
    start_webserver,
    stop_daemon,
    tree_rss,
    wait_for_sensor,
    wait_for_webserver,
)
from contimg.calibration.sky_model import resolve_catalog_path
from contimg.instrument import GROUP_DURATION_S
from contimg.layout import StorageLayout, resolve_layout
from contimg.settings import load_settings
from contimg.simulation.demo import DemoObservation

POLL_S = 2.0
SOLVE_JOBS = ("bandpass_solution_job", "gain_solution_job")


@dataclass
class DayAudit:
    """What the state databases, the disk and Dagster say of the day's groups."""

    expected: int
    ingest_completed: int = 0
    ingest_other: dict[str, int] = field(default_factory=dict)
    ms_rows: int = 0
    ms_on_disk: int = 0
    calibrated: int = 0
    images_ready: int = 0
    images_on_disk: int = 0
    groups_imaged_more_than_once: list[str] = field(default_factory=list)
    converted_once: int = 0  # groups with exactly one conversion in the file_moves audit
    groups_converted_more_than_once: list[str] = field(default_factory=list)
    # successful conversion runs (a run killed after its conversion registered the MS
    # counts as failed here, yet its group is converted: converted_once is the test)
    convert_runs_succeeded: int = 0
    groups_with_more_than_one_run: list[str] = field(default_factory=list)
    runs_by_status: dict[str, int] = field(default_factory=dict)
    failed_runs: list[str] = field(default_factory=list)
    killed_runs: list[str] = field(default_factory=list)
    # runs stopped by a blocking ERROR check on a group's data (its flagging, its image)
    quality_failed_runs: list[str] = field(default_factory=list)
    # solves that ran and whose set failed its quality check (a gain solve on a field too
    # faint for six antennas): no failed run, never applied, listed here, never hidden
    failed_solution_checks: list[str] = field(default_factory=list)
    # runs whose worker was killed are expected only when the bench killed them
    killing_expected: bool = False

    @property
    def consistent(self) -> bool:
        """Every group converted, calibrated and imaged exactly once, and no run failed
        (but those whose worker the bench killed on purpose)."""
        n = self.expected
        return (self.ingest_completed == self.ms_rows == self.ms_on_disk == self.calibrated
                == self.images_ready == self.images_on_disk == self.converted_once == n
                and not self.ingest_other and not self.groups_imaged_more_than_once
                and not self.groups_converted_more_than_once
                and not self.groups_with_more_than_one_run and not self.failed_runs
                and not self.quality_failed_runs
                and (self.killing_expected or not self.killed_runs))


def run_day(groups: int, speedup: float, work: Path, timeout_s: float | None = None,
            restart_after_images: int | None = None) -> dict:
    """Push `groups` tiny groups through a live platform at `speedup` × the real cadence;
    the figures and the audit as one dict (its "consistent" says whether the day passed).
    With `restart_after_images`, the daemon and a webserver are killed (SIGKILL to their
    process groups, run workers included) once that many images exist, and started again."""
    observation, day = simulated_day(groups, work)
    home = work / "day-home"
    shutil.rmtree(home, ignore_errors=True)
    cadence = GROUP_DURATION_S / speedup
    # six antennas: a 60 s gain solve away from the calibrator has SNR ≈ 3.4 and fails its
    # limits; the whole group's 309 s does not
    env = platform_environment(home, CONTIMG_CAL_GAIN_SOLINT="inf")
    layout = resolve_layout(env).ensure()
    observation.write_catalogue(resolve_catalog_path(
        str(load_settings(env)["CONTIMG_NVSS_CATALOG"]), layout.static_dir))
    create_instance(env)
    figures: dict = {"groups": groups, "speedup": speedup, "cadence_s": round(cadence, 1)}
    deadline = time.time() + (timeout_s or groups * cadence * 3 + 900)
    daemon = start_daemon(env, home / "daemon.log")
    webserver = None
    feeder = Feeder(day, layout.incoming_dir, cadence)
    peak = peak_after = 0
    finished = False
    try:
        wait_for_sensor(env)
        feeder.start()
        if restart_after_images:
            port = free_port()
            webserver = start_webserver(env, home / "webserver.log", port)
            _, peak = _wait_for_the_day(layout, restart_after_images, home / "dagster", daemon.pid,
                                        deadline, until_idle=False)
            figures["restarted_at_images"] = _images_ready(layout)
            kill_group(daemon)
            kill_group(webserver)
            daemon = start_daemon(env, home / "daemon-after-restart.log")
            webserver = start_webserver(env, home / "webserver.log", port)
            figures["webserver_back_s"] = round(wait_for_webserver(port), 1)
        finished, peak_after = _wait_for_the_day(layout, groups, home / "dagster", daemon.pid,
                                                 deadline)
    finally:
        feeder.stop()
        stop_daemon(daemon)
        if webserver is not None:
            stop_daemon(webserver)
        shutil.rmtree(env["CONTIMG_TMPFS_DIR"], ignore_errors=True)
    audit = audit_day(layout, home / "dagster", groups, killing_expected=bool(restart_after_images))
    figures |= {"finished": finished, "consistent": audit.consistent,
                "delivered": feeder.delivered, "feeder_late_s": round(feeder.late_s, 1)}
    figures |= _timing(layout, groups, cadence)
    figures["peak_gb"] = round(max(peak, peak_after) / 1e9, 2)
    figures["audit"] = asdict(audit)
    return figures


def simulated_day(groups: int, work: Path) -> tuple[DemoObservation, list[list[Path]]]:
    """The demo observation of `groups` tiny groups, its calibrator transit mid-way, and
    each group's files: simulated once into `work/day-<groups>/`, then reused."""
    out = work / f"day-{groups}"
    observation = DemoObservation.plan(out / "files", n_groups=groups, transit_index=groups // 2,
                                       size="tiny", truth_dir=out / "truth")
    listing = out / "groups.json"
    if not listing.exists():
        shutil.rmtree(out, ignore_errors=True)
        (out / "files").mkdir(parents=True)
        print(f"simulating {groups} tiny groups into {out} (once; reused) ...", flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            files = [[str(f) for f in observation.write_group(i).files] for i in range(groups)]
        listing.write_text(json.dumps(files))
    return observation, [[Path(f) for f in group] for group in json.loads(listing.read_text())]


class Feeder(threading.Thread):
    """Delivers group i's files into incoming/ at start + i × cadence, each as the correlator
    writes it: copied under `<stem>_incomplete.hdf5`, then renamed to its own name."""

    def __init__(self, day: list[list[Path]], incoming: Path, cadence_s: float) -> None:
        super().__init__(daemon=True)
        self.day, self.incoming, self.cadence_s = day, incoming, cadence_s
        self.delivered = 0
        self.late_s = 0.0  # the most a delivery started behind its schedule
        self._stopping = threading.Event()

    def run(self) -> None:
        began = time.monotonic()
        for index, files in enumerate(self.day):
            due = began + index * self.cadence_s
            if self._stopping.wait(max(0.0, due - time.monotonic())):
                return
            self.late_s = max(self.late_s, time.monotonic() - due)
            for source in files:
                writing = self.incoming / f"{source.stem}_incomplete.hdf5"
                shutil.copyfile(source, writing)
                writing.rename(self.incoming / source.name)
            self.delivered += 1

    def stop(self) -> None:
        """Stop delivering (a delivery under way finishes its group)."""
        self._stopping.set()
        if self.is_alive():
            self.join()


def bench_day(groups: int, speedup: float, work: Path, timeout_min: float | None = None) -> int:
    """Run the day and print its figures as one JSON line; 0 when the audit passed. After
    `timeout_min` the platform is stopped and what it did so far is audited and printed."""
    # SIGTERM (a `kill`, a CI timeout) unwinds like Ctrl-C, so the daemon and its run
    # workers are stopped with the bench rather than left running on a removed home.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"a day of {groups} tiny groups at {speedup:g}x the real cadence "
          f"(one every {GROUP_DURATION_S / speedup:.1f} s) into {work / 'day-home'} ...", flush=True)
    figures = run_day(groups, speedup, work, timeout_s=timeout_min * 60 if timeout_min else None)
    print(json.dumps(figures))
    return 0 if figures["consistent"] else 1


def _wait_for_the_day(layout: StorageLayout, images: int, dagster_home: Path, root_pid: int,
                      deadline: float, *, until_idle: bool = True) -> tuple[bool, int]:
    """Until `images` groups have their PB-corrected image and (`until_idle`) no run is in
    flight, or the deadline; (whether it got there, peak summed RSS bytes of the daemon's
    process tree)."""
    peak = 0
    while time.time() < deadline:
        peak = max(peak, tree_rss(root_pid))
        if _images_ready(layout) >= images and not (until_idle and _runs_in_flight(dagster_home)):
            return True, peak
        time.sleep(POLL_S)
    return False, peak


def _images_ready(layout: StorageLayout) -> int:
    rows = _query(layout, "products", "SELECT count(DISTINCT group_id) FROM images"
                                      " WHERE kind = 'image-pb' AND status = 'ready'")
    return rows[0][0] if rows else 0


def _query(layout: StorageLayout, database: str, sql: str) -> list[tuple]:
    """Rows of a read-only query; none while the database does not exist yet."""
    path = layout.database_path(database)
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []


def _instance(dagster_home: Path):
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    return DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home)))


def _runs_in_flight(dagster_home: Path) -> int:
    from dagster import RunsFilter

    from contimg_assets.partitions import LIVE_RUN_STATUSES

    with _instance(dagster_home) as instance:
        return instance.get_runs_count(RunsFilter(statuses=LIVE_RUN_STATUSES))


def audit_day(layout: StorageLayout, dagster_home: Path, expected: int, *,
              killing_expected: bool = False) -> DayAudit:
    """Compare the ingest database, ms_index, images, the files on disk and Dagster's runs."""
    audit = DayAudit(expected=expected, killing_expected=killing_expected)
    states = Counter(dict(_query(layout, "ingest", "SELECT state, count(*) FROM groups GROUP BY state")))
    audit.ingest_completed = states.pop("completed", 0)
    audit.ingest_other = dict(states)
    ms = _query(layout, "products", "SELECT path, calibration_status FROM ms_index")
    audit.ms_rows = len(ms)
    audit.ms_on_disk = sum(Path(path).is_dir() for path, _ in ms)
    audit.calibrated = sum(status == "calibrated" for _, status in ms)
    images = _query(layout, "products", "SELECT group_id, path FROM images"
                                        " WHERE kind = 'image-pb' AND status = 'ready'")
    audit.images_ready = len({group for group, _ in images})
    audit.images_on_disk = sum(Path(path).exists() for _, path in images)
    audit.groups_imaged_more_than_once = sorted(
        group for group, n in Counter(g for g, _ in _query(
            layout, "products", "SELECT group_id, image_set FROM images WHERE kind = 'image-pb'"
            " GROUP BY group_id, image_set")).items() if n > 1)
    conversions = Counter(Path(destination).name.removesuffix(".ms") for (destination,) in _query(
        layout, "products", "SELECT destination FROM file_moves WHERE actor = 'measurement_set'"
        " AND reason LIKE 'converted%'"))
    audit.converted_once = sum(n == 1 for n in conversions.values())
    audit.groups_converted_more_than_once = sorted(g for g, n in conversions.items() if n > 1)
    _audit_runs(audit, dagster_home)
    return audit


def _audit_runs(audit: DayAudit, dagster_home: Path) -> None:
    """Run counts by status, failed runs by job and partition, failed solution checks, and
    conversion runs per group."""
    with _instance(dagster_home) as instance:
        runs = instance.get_runs()
        audit.runs_by_status = dict(Counter(run.status.value for run in runs))
        for run in runs:
            name = f"{run.job_name} {run.tags.get('dagster/partition', '')}".strip()
            if run.status.value == "FAILURE":
                kind = _failure_kind(instance, run.run_id)
                {"killed": audit.killed_runs, "quality": audit.quality_failed_runs}.get(
                    kind, audit.failed_runs).append(name)
            elif run.job_name in SOLVE_JOBS:
                audit.failed_solution_checks += [
                    f"{check} {run.tags.get('dagster/partition', '')}"
                    for check in failed_checks(instance, run.run_id)]
    converted = Counter(run.tags.get("dagster/partition") for run in runs
                        if run.job_name == "convert_group_job" and run.status.value == "SUCCESS")
    audit.convert_runs_succeeded = len(converted)
    audit.groups_with_more_than_one_run = sorted(g for g, n in converted.items() if n > 1)


def failed_checks(instance, run_id: str) -> list[str]:
    """Names of the asset checks that a run evaluated as failed."""
    from dagster import DagsterEventType

    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in records]
    return [e.check_name for e in evaluations if not e.passed]


def _failure_kind(instance, run_id: str) -> str:
    """"killed" when run monitoring failed the run because its worker was gone (or never
    started), as a killed node leaves it; "quality" when a blocking asset check with ERROR
    severity stopped it; "error" for anything else."""
    from dagster import DagsterEventType

    failures = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_FAILURE).records
    text = " ".join(r.event_log_entry.message or "" for r in failures)
    if "is gone: killed or crashed" in text or "to start" in text:
        return "killed"
    steps = instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_FAILURE).records
    errors = [r.event_log_entry.dagster_event.event_specific_data.error for r in steps]
    if errors and all(e is not None and e.cls_name == "DagsterAssetCheckFailedError" for e in errors):
        return "quality"
    return "error"


def _timing(layout: StorageLayout, groups: int, cadence: float) -> dict:
    """Throughput and per-group latency: last file's arrival (its mtime, from the ingest
    database) to the registration of the group's PB-corrected image."""
    arrived = dict(_query(layout, "ingest", "SELECT group_id, max(mtime) FROM subband_files"
                                            " GROUP BY group_id"))
    imaged = {group: _epoch(created) for group, created in _query(
        layout, "products", "SELECT group_id, min(created) FROM images"
                            " WHERE kind = 'image-pb' GROUP BY group_id")}
    latency = sorted((imaged[g] - arrived[g], g) for g in imaged if g in arrived)
    if not latency:
        return {"images": 0}
    span = max(imaged.values()) - min(arrived.values())
    per_hour = len(imaged) / span * 3600 if span > 0 else float("nan")
    return {
        "images": len(imaged),
        "span_s": round(span, 1),
        "throughput_groups_per_h": round(per_hour, 1),
        # the telescope's own rate is 3600/309 ≈ 11.6 groups an hour; the stream's, 3600/cadence
        "throughput_vs_telescope": round(per_hour * GROUP_DURATION_S / 3600, 2),
        "throughput_vs_stream": round(per_hour * cadence / 3600, 2),
        "latency_median_s": round(statistics.median(s for s, _ in latency), 1),
        "latency_max_s": round(latency[-1][0], 1),
        "slowest_group": latency[-1][1],
    }


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()
