"""Dagster's default run launcher, with a run-worker health check.

Dagster's `DefaultRunLauncher` starts each run in its own process but cannot say whether
that process is still alive, so run monitoring never notices a run worker killed by
`kill -9`, the OOM killer or a node's service restart: the run stays STARTED for ever,
holds its slot of the queued run coordinator and its group is never redone. This launcher
answers the health check from the pid the run worker records in its own first event
("Started process for run (pid: N)"), so the monitoring daemon fails the dead run with
that reason; run retries or the platform's sensors then redo the work.

It is set in dagster.yaml (`run_launcher: {module: resources.run_launcher, class:
LocalRunLauncher}`) and serves every layout whose run workers run on the daemon's node
(the embedded default and the Celery layout, whose run workers coordinate remote steps).
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

# How far a process's start may lie before the event its worker wrote first: the worker
# records its pid once its imports are done, seconds after it started (minutes when the
# node is overloaded). A live process that started earlier is another process with the
# recycled pid, not the run's worker.
STARTED_BEFORE_EVENT_S = 600.0


class LocalRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` whose run workers are checked by pid for run monitoring."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        """RUNNING while the run's worker process lives, FAILED (with the pid) once it is
        gone; RUNNING too while no pid is recorded yet (a worker still starting)."""
        recorded = self._worker_pid(run.run_id)
        if recorded is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker pid recorded yet")
        pid, recorded_at = recorded
        if process_started_near(pid, recorded_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run worker (pid {pid}) is gone: killed or crashed without finishing the run")

    def _worker_pid(self, run_id: str) -> tuple[int, float] | None:
        """(pid, time) of the run's first engine event that names a pid."""
        events = self._instance.get_records_for_run(
            run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20).records
        for record in events:
            entry = record.event_log_entry
            data = entry.dagster_event.event_specific_data if entry.dagster_event else None
            pid = getattr(data, "metadata", {}).get("pid") if data is not None else None
            if pid is not None:
                return int(pid.value), entry.timestamp
        return None


def process_started_near(pid: int, recorded_at: float) -> bool:
    """Whether process `pid` is alive (not a zombie) and started no later than `recorded_at`
    and no earlier than STARTED_BEFORE_EVENT_S before it (so a recycled pid is not taken
    for the run's worker)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return False
    if fields[0] == "Z":  # exited, not yet reaped by its parent
        return False
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return recorded_at - STARTED_BEFORE_EVENT_S <= started <= recorded_at + 2.0

