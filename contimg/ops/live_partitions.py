"""Which observation-group keys stay live in Dagster's partition set (plain code, no Dagster).

Dagster stores a dynamic partition set's materialisation status as a list of keys, so
its asset and partition pages grow with the number of keys (~100k a year at one group
every 309 s). The platform keeps only the newest `CONTIMG_LIVE_PARTITION_DAYS` of keys
live; `contimg_assets.live_partitions` removes the rest with Dagster's own API. This
module decides which keys go: pure functions over key texts and the state databases.

The window is measured back from the newest key, not from the clock: a telescope that
stopped for a month still has its last month of groups live, and a replayed or simulated
stream is pruned the same way as a live one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import timedelta

from contimg import naming
from contimg.state import StateStore

# Ingest states of a group whose conversion can still be requested by the incoming sensor.
UNSETTLED_INGEST = ("collecting", "pending", "in_progress")
# Calibration states the calibration sensor still acts on (an apply it will request).
UNSETTLED_CALIBRATION = ("awaiting", "calibrating")


def cutoff_key(newest_key: str, days: float) -> str:
    """The oldest key that stays live: `days` before `newest_key` (both ISO group keys)."""
    newest = naming.parse_timestamp(newest_key)
    return naming.iso_timestamp(newest - timedelta(days=days))


def keys_to_prune(keys: Iterable[str], days: float | None,
                  keep: Collection[str] = ()) -> list[str]:
    """Keys older than the live window (oldest first), except those in `keep`.

    `days` None keeps every key. Keys are ISO timestamps, so text order is time order.
    """
    ordered = sorted(keys)
    if days is None or not ordered:
        return []
    cutoff = cutoff_key(ordered[-1], days)
    return [key for key in ordered if key < cutoff and key not in keep]


def unsettled_groups(store: StateStore, before_key: str) -> set[str]:
    """Groups older than `before_key` that a sensor may still request a run for: not yet
    converted, awaiting or under calibration, or calibrated with no image yet. Their keys
    stay live, because only the incoming sensor re-adds a missing key; the calibration
    sensor requests runs for keys it expects to exist."""
    ingest = store.query(
        "ingest", f"SELECT group_id FROM groups WHERE group_id < ? AND state IN "
                  f"({', '.join('?' * len(UNSETTLED_INGEST))})", (before_key, *UNSETTLED_INGEST))
    calibration = store.query(
        "products", f"SELECT group_id FROM ms_index WHERE group_id < ? AND status = 'converted'"
                    f" AND calibration_status IN ({', '.join('?' * len(UNSETTLED_CALIBRATION))})",
        (before_key, *UNSETTLED_CALIBRATION))
    unimaged = store.query(
        "products", "SELECT m.group_id FROM ms_index m WHERE m.group_id < ?"
                    " AND m.status = 'converted' AND m.calibration_status = 'calibrated'"
                    " AND NOT EXISTS (SELECT 1 FROM images i WHERE i.group_id = m.group_id)",
        (before_key,))
    return {row[0] for row in (*ingest, *calibration, *unimaged)}
