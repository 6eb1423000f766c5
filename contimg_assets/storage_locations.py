"""The `storage_locations` asset: base directories registered in products.sqlite3."""


from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from contimg.state.products_db import register_storage_locations
from resources import StateDatabasesResource, StorageLayoutResource


@asset(group_name="ops", kinds={"sqlite"})
def storage_locations(
    context: AssetExecutionContext,
    storage: StorageLayoutResource,
    state: StateDatabasesResource,
) -> MaterializeResult:
    """Register where every kind of product lives (the seed's storage_locations table)."""
    layout = storage.layout()
    locations = layout.storage_locations()
    with state.open() as store:
        register_storage_locations(store, locations)
    table = "| name | path |\n|---|---|\n" + "\n".join(f"| {k} | `{v}` |" for k, v in locations.items())
    context.log.info("registered %d storage locations", len(locations))
    return MaterializeResult(metadata={
        "locations": MetadataValue.md(table),
        "count": len(locations),
        "state_dir": MetadataValue.path(str(layout.state_dir)),
    })
