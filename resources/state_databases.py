"""The state databases (ingest, cal_registry, products, master_sources) as a resource."""

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import ConfigurableResource

from contimg.state import StateStore
from resources.storage_layout import StorageLayoutResource


class StateDatabasesResource(ConfigurableResource):
    """Opens the SQLite state databases under the layout's state directory, migrated."""

    storage: StorageLayoutResource

    def store(self) -> StateStore:
        """A StateStore for this process (close it); each database opens, and is migrated,
        on first use, so a sensor tick touches only the databases it needs."""
        return StateStore(self.storage.layout().state_dir)

    @contextmanager
    def open(self) -> Iterator[StateStore]:
        """A migrated StateStore whose connections are closed when the block ends."""
        store = self.store()
        try:
            yield store
        finally:
            store.close()
