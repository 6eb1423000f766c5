"""File discovery: ask the products database first, fall back to a glob of the tree.

The seed's API section: query products.sqlite3 for fast lookups (preferred), walk
the organised directories only when the database has no answer. Every value is a
bound parameter; nothing is formatted into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from contimg import naming
from contimg.layout import MS_KINDS, StorageLayout
from contimg.state.connection import StateStore
from contimg.timeutil import datetime_to_mjd

PRODUCT_KINDS = ("ms", "image", "caltable")


@dataclass(frozen=True)
class FoundProduct:
    """One product file: where it is, which group it belongs to, and who found it."""

    path: Path
    group_id: str
    kind: str
    found_by: str  # "database" or "filesystem"


def find_products(
    store: StateStore,
    layout: StorageLayout,
    product: str,
    *,
    group: str | None = None,
    kind: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[FoundProduct]:
    """Find products of one type by group (or timestamp), kind and time range.

    `product` is "ms", "image" or "caltable"; `group` accepts either timestamp form;
    `kind` is an MS kind (calibrators/science/failed), image kind or caltable kind.
    """
    if product not in PRODUCT_KINDS:
        raise ValueError(f"unknown product {product!r}; expected one of {PRODUCT_KINDS}")
    group_iso = naming.iso_timestamp(group) if group else None
    start, end = (_utc(t) for t in (start, end))
    found = _from_database(store, product, group_iso, kind, start, end)
    if found:
        return found
    return _from_filesystem(layout, product, group_iso, kind, start, end)


def _from_database(store: StateStore, product: str, group_iso: str | None, kind: str | None,
                   start: datetime | None, end: datetime | None) -> list[FoundProduct]:
    table, database, time_column = {
        "ms": ("ms_index", "products", "start_mjd"),
        "image": ("images", "products", "mid_mjd"),
        "caltable": ("caltables", "cal_registry", "valid_start_mjd"),
    }[product]
    # A re-imaged group's earlier set stays registered (superseded) but is not "the" image.
    clauses: list[str] = ["status != 'superseded'"] if product == "image" else []
    params: list[object] = []
    if group_iso:
        clauses.append("group_id = ?")
        params.append(group_iso)
    if kind:
        clauses.append("kind = ?")
        params.append(kind)
    if start:
        clauses.append(f"{time_column} >= ?")
        params.append(datetime_to_mjd(start))
    if end:
        clauses.append(f"{time_column} < ?")
        params.append(datetime_to_mjd(end))
    where = " AND ".join(clauses) or "1 = 1"
    rows = store.query(
        database,
        f"SELECT path, group_id, kind FROM {table} WHERE {where} ORDER BY {time_column}",
        params,
    )
    return [FoundProduct(Path(r["path"]), r["group_id"], r["kind"], "database") for r in rows]


def _from_filesystem(layout: StorageLayout, product: str, group_iso: str | None,
                     kind: str | None, start: datetime | None,
                     end: datetime | None) -> list[FoundProduct]:
    stem = group_iso or "*"
    date = naming.date_dir(group_iso) if group_iso else "*"
    if product == "ms":
        kinds = [kind] if kind else list(MS_KINDS)
        candidates = [(p, k) for k in kinds for p in layout.ms_dir.glob(f"{k}/{date}/{stem}.ms")]
    elif product == "caltable":
        suffix = kind or "*cal"
        candidates = [(p, p.name.rsplit("_", 1)[-1])
                      for p in layout.ms_dir.glob(f"calibrators/{date}/{stem}_{suffix}")]
    else:  # images/YYYY-MM-DD/<ts>.img/<ts>.img-<kind>.fits
        candidates = [(p, p.name[len(p.parent.name) + 1:].removesuffix(".fits"))
                      for p in layout.images_dir.glob(f"{date}/{stem}.img/{stem}.img-*.fits")]
        candidates = [(p, k) for p, k in candidates if kind is None or k == kind]
    found = []
    for path, found_kind in sorted(candidates):
        moment = _timestamp_of(path.name)
        if moment is None or (start and moment < start) or (end and moment >= end):
            continue
        found.append(FoundProduct(path, naming.iso_timestamp(moment), found_kind, "filesystem"))
    return found


def _timestamp_of(name: str) -> datetime | None:
    try:
        return naming.parse_timestamp(name[:19])
    except ValueError:
        return None


def _utc(moment: datetime | None) -> datetime | None:
    # Naive datetimes are UTC, like every timestamp in the platform.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
