"""The `live_partitions` asset (daily): keep only the newest CONTIMG_LIVE_PARTITION_DAYS of
observation-group keys in Dagster's dynamic partition set.

Why: Dagster keeps a dynamic partition set's status as a list of keys, and its asset and
partition pages slow down with the number of keys (`contimg bench partitions`, README
"A year of partitions"). A 30-day window is ~8.7k keys instead of ~100k a year.

What stays: every materialisation of a pruned key stays in Dagster's event log (asset
history, runs), and every group stays findable in the state databases (`contimg find
GROUP`, `contimg groups`). Groups a sensor may still request a run for are kept live
(contimg.ops.live_partitions.unsettled_groups).

How a pruned group comes back: `contimg requeue GROUP` (with `--force` for a completed
one) puts it back in line; the incoming sensor's next tick requests its run together with
a `dynamic_partitions_requests` add of its key, which the daemon applies before launching
the run (tests/test_live_partitions.py checks the request).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from dagster import AssetExecutionContext, DagsterInstance, MaterializeResult, asset

from contimg.ops.live_partitions import cutoff_key, keys_to_prune, unsettled_groups
from contimg.ops.metrics import record_ops_run
from contimg.state import StateStore
from contimg_assets.partitions import observation_groups
from resources import StateDatabasesResource, StorageLayoutResource

# Keys removed between progress lines; Dagster deletes one key per call (one transaction
# each), so a batch is what the log and the benchmark can time.
BATCH = 2000


@dataclass(frozen=True)
class PruneReport:
    """What one pass did: keys before and after, removed, kept for a sensor, and time."""

    days: float | None
    keys_before: int
    removed: int
    kept_unsettled: int
    cutoff: str | None
    oldest_live: str | None
    newest_live: str | None
    seconds: float

    @property
    def live(self) -> int:
        """Keys live after the pass."""
        return self.keys_before - self.removed

    def line(self) -> str:
        """One log line."""
        if self.days is None:
            return f"live window off (CONTIMG_LIVE_PARTITION_DAYS=none): {self.keys_before} keys kept"
        return (f"{self.removed} of {self.keys_before} observation_groups keys older than "
                f"{self.cutoff} removed in {self.seconds:.1f} s; {self.live} live "
                f"({self.oldest_live} .. {self.newest_live}); {self.kept_unsettled} older kept "
                "for a sensor")


def prune_live_partitions(instance: DagsterInstance, store: StateStore, days: float | None,
                          log: Callable[[str], None] = print) -> PruneReport:
    """Remove observation_groups keys older than `days` before the newest key, in batches
    of BATCH, with `instance.delete_dynamic_partition`. Idempotent: a second pass finds
    nothing to remove."""
    began = time.perf_counter()
    name = observation_groups.name
    keys = sorted(instance.get_dynamic_partitions(name))
    cutoff = cutoff_key(keys[-1], days) if keys and days is not None else None
    keep = unsettled_groups(store, cutoff) if cutoff else set()
    doomed = keys_to_prune(keys, days, keep)
    for start in range(0, len(doomed), BATCH):
        batch = doomed[start:start + BATCH]
        for key in batch:
            instance.delete_dynamic_partition(name, key)
        log(f"removed {start + len(batch)}/{len(doomed)} keys (through {batch[-1]}), "
            f"{time.perf_counter() - began:.1f} s")
    gone, present = set(doomed), set(keys)
    live = [key for key in keys if key not in gone]
    return PruneReport(days=days, keys_before=len(keys), removed=len(doomed),
                       kept_unsettled=len(keep & present), cutoff=cutoff,
                       oldest_live=live[0] if live else None, newest_live=live[-1] if live else None,
                       seconds=time.perf_counter() - began)


@asset(group_name="ops", kinds={"dagster"})
def live_partitions(context: AssetExecutionContext, storage: StorageLayoutResource,
                    state: StateDatabasesResource) -> MaterializeResult:
    """Keep the newest CONTIMG_LIVE_PARTITION_DAYS (default 30) of observation_groups keys
    live; older keys leave the partition set (their history stays in the event log, their
    products in the state databases: `contimg find GROUP`)."""
    days = storage.settings()["CONTIMG_LIVE_PARTITION_DAYS"]
    with state.open() as store:
        report = prune_live_partitions(context.instance, store, days,  # type: ignore[arg-type]
                                       log=context.log.info)
        record_ops_run(store, "live_partitions", "ok", report.line())
    context.log.info(report.line())
    return MaterializeResult(metadata={
        "live_days": days if days is not None else "none", "keys_before": report.keys_before,
        "removed": report.removed, "live": report.live, "kept_unsettled": report.kept_unsettled,
        "cutoff": report.cutoff or "", "oldest_live": report.oldest_live or "",
        "newest_live": report.newest_live or "", "seconds": round(report.seconds, 2)})
