"""The storage lifecycle's scheduled assets: `product_archive` (weekly) and `retention`
(daily). Incoming -> Processing -> Archive -> Purge, nothing deleted before archived."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, RetryPolicy, asset

from contimg.ops.archive import archive_products
from contimg.ops.metrics import record_ops_run
from contimg.ops.retention import RetentionPolicy, apply_retention, plan_retention
from resources import NotifierResource, StateDatabasesResource, StorageLayoutResource


@asset(group_name="ops", kinds={"rclone"}, retry_policy=RetryPolicy(max_retries=2, delay=600))
def product_archive(context: AssetExecutionContext, storage: StorageLayoutResource,
                    state: StateDatabasesResource, notifier: NotifierResource) -> MaterializeResult:
    """Images -> .fits.fz, mosaics -> .tar.gz under archive/, rclone copy (adding only,
    never deleting on the remote), rclone check, archive locations recorded. Idempotent."""
    with state.open() as store:
        report = archive_products(storage.layout(), store)
        record_ops_run(store, "archive", "ok", f"{len(report.images)} images, "
                                               f"{len(report.mosaics)} mosaics")
    notifier.notifier().notify("archive_complete",
                               f"archived {len(report.images)} image(s) and "
                               f"{len(report.mosaics)} mosaic(s) to {report.remote}",
                               remote=report.remote)
    return MaterializeResult(metadata={"remote": report.remote,
                                       "images": MetadataValue.json(report.images),
                                       "mosaics": MetadataValue.json(report.mosaics)})


@asset(group_name="ops", deps=[product_archive], kinds={"sqlite"})
def retention(context: AssetExecutionContext, storage: StorageLayoutResource,
              state: StateDatabasesResource, notifier: NotifierResource) -> MaterializeResult:
    """Apply the retention policy (CONTIMG_RETENTION_PROFILE; the seed's is keep-all) and the
    free-space floor (CONTIMG_MIN_FREE_GB) — a dry run unless CONTIMG_RETENTION_APPLY=1.
    Alerts when free space is below the floor."""
    settings = storage.settings()
    apply = bool(settings["CONTIMG_RETENTION_APPLY"])
    with state.open() as store:
        plan = plan_retention(settings.layout.ensure(), store, RetentionPolicy.from_settings(settings))
        removed = apply_retention(store, plan) if apply else []
        record_ops_run(store, "retention", "ok", f"{len(removed)} deleted, dry run: {not apply}")
    for line in plan.lines():
        context.log.info(line)
    mode = "applied" if apply else "dry run"
    alerts = notifier.notifier()
    if plan.floor is not None and plan.floor.below:
        alerts.notify("retention_floor", f"retention ({mode}): {plan.floor.line()}",
                      free_gb=round(plan.floor.free_gb, 3), floor_gb=plan.floor.floor_gb,
                      projected_gb=round(plan.floor.projected_gb, 3), met=plan.floor.met,
                      deleted=removed)
    if plan.items:
        alerts.notify("retention_run", f"retention: {len(plan.deletions)} to delete,"
                      f" {len(plan.items) - len(plan.deletions)} kept, {mode}", deleted=removed)
    return MaterializeResult(metadata={"dry_run": not apply, "deleted": len(removed),
                                       "plan": MetadataValue.md("\n".join(
                                           f"- {line}" for line in plan.lines()) or "nothing due")})
