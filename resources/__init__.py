"""Dagster resources: thin ConfigurableResource wrappers around the contimg package."""

from resources.notifier import NotifierResource
from resources.state_databases import StateDatabasesResource
from resources.storage_layout import StorageLayoutResource

__all__ = ["NotifierResource", "StateDatabasesResource", "StorageLayoutResource"]
