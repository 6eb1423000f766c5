"""The `state_backup` asset: daily online backups of the state databases."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, RetryPolicy, asset

from contimg.ops.backup import backup_databases, prune_local_backups, ship_backup
from contimg.ops.metrics import record_ops_run
from contimg.secrets import redact_remote
from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource


@asset(group_name="ops", kinds={"sqlite"}, retry_policy=RetryPolicy(max_retries=2, delay=300))
def state_backup(context: AssetExecutionContext, storage: StorageLayoutResource,
                 state: StateDatabasesResource, notifier: NotifierResource) -> MaterializeResult:
    """Back up every state database (SQLite online backup, integrity-checked), ship the set
    to the rclone remote and verify it, then drop local sets older than 14 days that are
    safely on the remote."""
    layout = storage.layout()
    with state.open() as store:
        store.migrate_all()  # creates (migrates) any database not yet there, so all are backed up
        backup = backup_databases(layout)
        destination = ship_backup(layout, backup.path)
        pruned = prune_local_backups(layout)
        record_ops_run(store, "backup", "ok", str(backup.path))
    context.log.info("backup %s shipped to %s; pruned %d old set(s)", backup.path,
                     redact_remote(destination),
                     len(pruned))
    return MaterializeResult(metadata={
        "backup": MetadataValue.path(str(backup.path)),
        "remote": redact_remote(destination),
        "row_counts": MetadataValue.json(backup.row_counts),
        "pruned": MetadataValue.json([p.name for p in pruned]),
    })
