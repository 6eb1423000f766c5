"""Astropy set up for an observatory with no network: no IERS downloads, fast start.

Astropy would try to download a fresh IERS-A table once its bundled copy is older
than 30 days; here that must never happen. Parsing the bundled ASCII table also
costs ~2 s per process, so the parsed table is cached as a pickle keyed by the
astropy-iers-data version (each Dagster run is a new process).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

_CONFIGURED = False


def configure_offline_astropy(cache_dir: Path | None = None) -> None:
    """Disable IERS downloads and load the IERS-A table from a cached pickle."""
    global _CONFIGURED
    if _CONFIGURED:
        return
    from astropy.utils import iers

    iers.conf.auto_download = False
    iers.conf.iers_degraded_accuracy = "warn"
    cache = Path(cache_dir or os.environ.get("CONTIMG_CACHE_DIR") or tempfile.gettempdir())
    try:
        import astropy_iers_data

        version = getattr(astropy_iers_data, "__version__", "unknown")
        path = cache / f"contimg-iers-a-{version}.pkl"
        if path.exists():
            with open(path, "rb") as handle:
                table = pickle.load(handle)
        else:
            table = iers.IERS_Auto.open()
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            with open(partial, "wb") as handle:
                pickle.dump(table, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(partial, path)
        iers.earth_orientation_table.set(table)
    except (OSError, pickle.PickleError, ImportError, AttributeError, EOFError):
        pass  # astropy falls back to parsing its bundled table: slower, still offline
    _CONFIGURED = True
