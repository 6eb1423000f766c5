"""The SQL of master_sources.sqlite3, in one place: the catalogue of every source the
platform measures (seeded from NVSS along the surveyed strip, grown by blind detections),
with each source's running measurement count, mean fluxes and variability figures."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from contimg.state.connection import StateStore, utc_now, write_transaction

DB = "master_sources"


@dataclass(frozen=True)
class SourceSet:
    """Sources as arrays (thousands per image: rows would cost more than they carry)."""

    ids: np.ndarray
    names: list[str]
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    catalog_flux_jy: np.ndarray
    is_new: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.size)


def seed_strip(store: StateStore, *, catalog: str, names: list[str], ra_deg: np.ndarray,
               dec_deg: np.ndarray, flux_jy: np.ndarray, dec_min: float, dec_max: float) -> int:
    """Insert catalogue sources of one declination strip (names already present are kept
    as they are); the strip is remembered so it is seeded once. Returns how many were added."""
    conn = store.connection(DB)
    now = utc_now()
    with write_transaction(conn):
        before = conn.execute("SELECT count(*) FROM sources").fetchone()[0]
        conn.executemany(
            "INSERT OR IGNORE INTO sources (name, ra_deg, dec_deg, flux_jy, catalog, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(n, float(r), float(d), float(f), catalog, now)
             for n, r, d, f in zip(names, ra_deg, dec_deg, flux_jy, strict=True)])
        added = conn.execute("SELECT count(*) FROM sources").fetchone()[0] - before
        conn.execute("INSERT INTO seeded_strips (catalog, dec_min, dec_max, added, created)"
                     " VALUES (?, ?, ?, ?, ?)", (catalog, dec_min, dec_max, added, now))
    return int(added)


def strip_seeded(store: StateStore, catalog: str, dec_min: float, dec_max: float) -> bool:
    """Whether a seeded strip of that catalogue already covers [dec_min, dec_max]."""
    rows = store.query(DB, "SELECT 1 FROM seeded_strips WHERE catalog = ? AND dec_min <= ?"
                           " AND dec_max >= ? LIMIT 1", (catalog, dec_min, dec_max))
    return bool(rows)


def sources_in_box(store: StateStore, ra_min: float, ra_max: float, dec_min: float,
                   dec_max: float) -> SourceSet:
    """Sources inside an RA/Dec box (degrees; ra_min > ra_max wraps through 0)."""
    wrap = ra_min > ra_max
    rows = store.query(
        DB, "SELECT id, name, ra_deg, dec_deg, flux_jy, is_new FROM sources"
            " WHERE dec_deg BETWEEN ? AND ? AND "
            + ("(ra_deg >= ? OR ra_deg <= ?)" if wrap else "ra_deg BETWEEN ? AND ?")
            + " ORDER BY id", (dec_min, dec_max, ra_min, ra_max))
    return SourceSet(np.array([r["id"] for r in rows], np.int64), [r["name"] for r in rows],
                     np.array([r["ra_deg"] for r in rows], float),
                     np.array([r["dec_deg"] for r in rows], float),
                     np.array([r["flux_jy"] if r["flux_jy"] is not None else np.nan for r in rows]),
                     np.array([bool(r["is_new"]) for r in rows], bool))


def add_new_source(store: StateStore, *, name: str, ra_deg: float, dec_deg: float, flux_jy: float,
                   group_id: str, mid_mjd: float) -> int:
    """A blind detection with no catalogued counterpart becomes a master source (is_new);
    a name already taken (the same detection seen twice) returns the existing id."""
    conn = store.connection(DB)
    with write_transaction(conn):
        conn.execute("INSERT OR IGNORE INTO sources (name, ra_deg, dec_deg, flux_jy, catalog,"
                     " created, is_new, first_group, first_mjd) VALUES (?, ?, ?, ?, 'contimg', ?,"
                     " 1, ?, ?)", (name, ra_deg, dec_deg, flux_jy, utc_now(), group_id, mid_mjd))
        return int(conn.execute("SELECT id FROM sources WHERE name = ?", (name,)).fetchone()[0])


def new_sources_to_backfill(store: StateStore, until_mjd: float) -> list[sqlite3.Row]:
    """Sources found by blind detection up to `until_mjd` whose earlier images have not
    been measured at their position yet."""
    return store.query(DB, "SELECT * FROM sources WHERE is_new = 1 AND backfilled = 0"
                           " AND first_mjd <= ? ORDER BY first_mjd", (until_mjd,))


def mark_backfilled(store: StateStore, ids: Iterable[int]) -> None:
    """Those new sources have been measured in their earlier images."""
    conn = store.connection(DB)
    with write_transaction(conn):
        conn.executemany("UPDATE sources SET backfilled = 1 WHERE id = ?", [(int(i),) for i in ids])


STATISTICS = ("n_measurements", "mean_flux_jy", "wmean_flux_jy", "eta", "v", "chi2_nu",
              "vs_max", "m_at_vs_max", "is_candidate")


def record_statistics(store: StateStore, rows: Iterable[dict], until: str) -> list[int]:
    """Store each source's figures (keys: id and STATISTICS); returns the ids that became
    candidates now (were not before): the ones an alert is due for."""
    conn = store.connection(DB)
    rows = list(rows)
    with write_transaction(conn):
        before = {r[0] for r in conn.execute("SELECT id FROM sources WHERE is_candidate = 1")}
        conn.executemany(
            "UPDATE sources SET " + ", ".join(f"{k} = ?" for k in STATISTICS) + ", stats_until = ?"
            " WHERE id = ?", [(*(row[k] for k in STATISTICS), until, row["id"]) for row in rows])
    return [row["id"] for row in rows if row["is_candidate"] and row["id"] not in before]


def source_rows(store: StateStore, ids: Iterable[int]) -> list[sqlite3.Row]:
    """The master rows of those ids."""
    ids = [int(i) for i in ids]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return store.query(DB, f"SELECT * FROM sources WHERE id IN ({marks}) ORDER BY id", ids)
