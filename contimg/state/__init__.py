"""The SQLite state databases: ingest, cal_registry, products, master_sources."""

from contimg.state.connection import DATABASES, StateStore, connect

__all__ = ["DATABASES", "StateStore", "connect"]
