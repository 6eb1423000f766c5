"""The SQL of products.sqlite3, in one place: the audit table, ms_index, images, mosaics,
operations runs and alert levels. Callers pass a connection (inside their own
transaction when several statements must commit together) or a StateStore."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

from contimg.state.connection import StateStore, utc_now, write_transaction


def record_move(conn: sqlite3.Connection, source: Path | str, destination: Path | str, *,
                action: str, reason: str = "", actor: str = "",
                size_bytes: int | None = None) -> None:
    """One row of the audit table `file_moves` (move, copy, delete, quarantine, archive)."""
    conn.execute(
        "INSERT INTO file_moves (moved_at, source, destination, action, reason, actor,"
        " size_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (utc_now(), str(source), str(destination), action, reason, actor, size_bytes))


def log_move(store: StateStore, source: Path | str, destination: Path | str, *, action: str,
             reason: str = "", actor: str = "", size_bytes: int | None = None) -> None:
    """`record_move` in a transaction of its own."""
    conn = store.connection("products")
    with write_transaction(conn):
        record_move(conn, source, destination, action=action, reason=reason, actor=actor,
                    size_bytes=size_bytes)


# -- archive and retention (images, mosaics, MS) -------------------------------------

ARCHIVED_TABLES = ("images", "mosaics")


def _archived_table(table: str) -> str:
    """Guard the table names interpolated into SQL below."""
    if table not in ARCHIVED_TABLES:
        raise ValueError(f"unknown archived product table {table!r}; expected {ARCHIVED_TABLES}")
    return table


def products_to_archive(store: StateStore, table: str) -> list[sqlite3.Row]:
    """Rows (id, path, archive_staged) of live products not (or no longer) archived;
    `archive_staged` still holds the previous name of one marked for re-archive."""
    return store.query("products", f"SELECT id, path, archive_staged FROM {_archived_table(table)}"
                                   " WHERE archive_path IS NULL AND status != 'purged' ORDER BY id")


def record_archived(conn: sqlite3.Connection, table: str, row_id: int, *, archive_path: str,
                    staged: str, sha256: str, source_sha256: str) -> None:
    """Where a product's archive copy is, its checksum, and the checksum of the source
    file as it was when archived (retention deletes the file only if it still matches)."""
    conn.execute(f"UPDATE {_archived_table(table)} SET archive_path = ?, archive_staged = ?,"
                 " archive_sha256 = ?, archive_source_sha256 = ? WHERE id = ?",
                 (archive_path, staged, sha256, source_sha256, row_id))


def live_products(store: StateStore, table: str) -> list[sqlite3.Row]:
    """Rows (path, archive_path, archive_staged, archive_sha256, archive_source_sha256)
    not yet purged."""
    return store.query("products", "SELECT path, archive_path, archive_staged, archive_sha256,"
                                   f" archive_source_sha256 FROM {_archived_table(table)}"
                                   " WHERE status != 'purged' ORDER BY path")


def archived_product(store: StateStore, table: str, path: str) -> sqlite3.Row | None:
    """The archive record (archive_path, archive_sha256, archive_source_sha256) of one product."""
    rows = store.query("products", "SELECT archive_path, archive_sha256, archive_source_sha256"
                                   f" FROM {_archived_table(table)} WHERE path = ?", (path,))
    return rows[0] if rows else None


def mark_for_rearchive(conn: sqlite3.Connection, table: str, path: str) -> None:
    """Forget a product's archive record so the next archive run stages it anew (the
    old remote copy stays; `archive_staged` keeps its name so the new one gets another)."""
    conn.execute(f"UPDATE {_archived_table(table)} SET archive_path = NULL, archive_sha256 = NULL,"
                 " archive_source_sha256 = NULL WHERE path = ?", (path,))


def mark_product_purged(conn: sqlite3.Connection, table: str, path: str) -> None:
    """Record that a product's local file is (about to be) deleted; its archive record stays."""
    conn.execute(f"UPDATE {_archived_table(table)} SET status = 'purged' WHERE path = ?", (path,))


def ms_for_retention(store: StateStore) -> list[sqlite3.Row]:
    """ms_index rows (path, group_id, kind, status, size_bytes) not yet purged."""
    return store.query("products", "SELECT path, group_id, kind, status, size_bytes FROM ms_index"
                                   " WHERE status != 'purged' ORDER BY start_mjd")


def converted_ms_by_group(store: StateStore) -> dict[str, str]:
    """group_id -> MS path for every group whose MS is registered as converted."""
    rows = store.query("products", "SELECT group_id, path FROM ms_index WHERE status = 'converted'")
    return {row["group_id"]: row["path"] for row in rows}


def mark_ms_purged(conn: sqlite3.Connection, path: str, archive_path: str | None = None) -> None:
    """Record that an MS is (about to be) deleted, and where its archive copy is, if any."""
    conn.execute("UPDATE ms_index SET status = 'purged', archive_path = COALESCE(?, archive_path),"
                 " updated = ? WHERE path = ?", (archive_path, utc_now(), path))


_MS_UPSERT = (
    "INSERT INTO ms_index (path, group_id, kind, start_mjd, end_mjd, dec_deg, calibrator,"
    " status, size_bytes, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(group_id) DO UPDATE SET path = excluded.path, kind = excluded.kind,"
    " start_mjd = excluded.start_mjd, end_mjd = excluded.end_mjd,"
    " dec_deg = coalesce(excluded.dec_deg, ms_index.dec_deg),"
    " calibrator = coalesce(excluded.calibrator, ms_index.calibrator),"
    " status = excluded.status, size_bytes = coalesce(excluded.size_bytes, ms_index.size_bytes),"
    " updated = excluded.updated"
)


def upsert_ms(conn: sqlite3.Connection, *, path: Path | str, group_id: str, kind: str,
              start_mjd: float, end_mjd: float, status: str, dec_deg: float | None = None,
              calibrator: str | None = None, size_bytes: int | None = None) -> None:
    """Insert or update the one ms_index row of a group (converted, failed, migrated...)."""
    now = utc_now()
    conn.execute(_MS_UPSERT, (str(path), group_id, kind, start_mjd, end_mjd, dec_deg, calibrator,
                              status, size_bytes, now, now))


def registered_ms(store: StateStore, group_id: str) -> sqlite3.Row | None:
    """The ms_index row of a group (path, kind, status), or None."""
    rows = store.query("products", "SELECT path, kind, status FROM ms_index WHERE group_id = ?",
                       (group_id,))
    return rows[0] if rows else None


def archive_name_taken(store: StateStore, table: str, staged: str, row_id: int) -> bool:
    """True when another product already recorded this staged archive name."""
    rows = store.query("products", f"SELECT 1 FROM {_archived_table(table)}"
                                   " WHERE archive_staged = ? AND id != ? LIMIT 1", (staged, row_id))
    return bool(rows)


def conversions_total(store: StateStore) -> int:
    """Every MS ever moved into the tree by a conversion (the audit table only grows)."""
    return int(store.query("products", "SELECT count(*) FROM file_moves WHERE action = 'move'"
                                       " AND actor = 'measurement_set'")[0][0])


def register_storage_locations(store: StateStore, locations: dict[str, Path]) -> None:
    """Upsert the base directory of each kind of product (seed: storage_locations)."""
    conn = store.connection("products")
    now = utc_now()
    with write_transaction(conn):
        conn.executemany(
            "INSERT INTO storage_locations (name, path, updated) VALUES (?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET path = excluded.path, updated = excluded.updated",
            [(name, str(path), now) for name, path in locations.items()])


def swap_alert_level(store: StateStore, key: str, level: str) -> str | None:
    """Store the level of a watched quantity; return the stored one before (None if the
    key is new), in one transaction so two processes never both see the crossing."""
    conn = store.connection("products")
    with write_transaction(conn):
        row = conn.execute("SELECT level FROM alert_state WHERE alert_key = ?", (key,)).fetchone()
        if row is None or row[0] != level:
            conn.execute("INSERT INTO alert_state (alert_key, level, changed_at) VALUES (?, ?, ?)"
                         " ON CONFLICT(alert_key) DO UPDATE SET level = excluded.level,"
                         " changed_at = excluded.changed_at", (key, level, utc_now()))
    return row[0] if row else None


def record_ops_run(store: StateStore, operation: str, status: str, finished_epoch: float,
                   details: str = "") -> None:
    """Remember that an operation (backup, archive, retention) finished."""
    store.execute("products",
                  "INSERT INTO ops_runs (operation, finished_at, finished_epoch, status, details)"
                  " VALUES (?, strftime('%Y-%m-%dT%H:%M:%S', 'now'), ?, ?, ?)",
                  (operation, finished_epoch, status, details))


def last_ops_run_epoch(store: StateStore, operation: str) -> float | None:
    """Unix time of the last successful run of an operation, or None."""
    row = store.query("products", "SELECT max(finished_epoch) FROM ops_runs"
                                  " WHERE operation = ? AND status = 'ok'", (operation,))
    return row[0][0]


# -- calibration state of each group (ms_index.calibration_status) ------------------
# NULL: not looked at yet; 'awaiting': no valid tables; 'calibrating': an apply started
# (a killed apply leaves it so, and it is redone); 'calibrated': CORRECTED_DATA complete
# with `cal_tables`; 'failed': the apply itself failed. Downstream trusts 'calibrated' only.

CALIBRATION_STATES = ("awaiting", "calibrating", "calibrated", "failed")


def set_calibration_status(store: StateStore, group_id: str, status: str, *,
                           tables: list[str] | None = None, note: str = "") -> None:
    """Record a group's calibration state (and the tables used), with the time it was set;
    'awaiting' keeps the time it first started waiting, so waits can be measured."""
    if status not in CALIBRATION_STATES:
        raise ValueError(f"unknown calibration status {status!r}; expected {CALIBRATION_STATES}")
    import json
    import time

    store.execute("products",
                  "UPDATE ms_index SET calibration_status = ?, cal_tables = ?, calibration_note = ?,"
                  " calibration_since = CASE WHEN calibration_status = 'awaiting' AND ? = 'awaiting'"
                  " THEN calibration_since ELSE ? END, updated = ? WHERE group_id = ?",
                  (status, json.dumps(tables) if tables is not None else None, note, status,
                   time.time(), utc_now(), group_id))


def ms_record(store: StateStore, group_id: str) -> sqlite3.Row | None:
    """The whole ms_index row of a group (calibration columns included), or None."""
    rows = store.query("products", "SELECT rowid, * FROM ms_index WHERE group_id = ?", (group_id,))
    return rows[0] if rows else None


def groups_in_calibration_state(store: StateStore, statuses: tuple[str, ...]) -> list[sqlite3.Row]:
    """Converted groups in any of `statuses`, oldest first (indexed: stays cheap)."""
    marks = ",".join("?" * len(statuses))
    return store.query("products", "SELECT group_id, path, kind, start_mjd, end_mjd,"
                                   " calibration_status, calibration_since FROM ms_index"
                                   f" WHERE calibration_status IN ({marks}) AND status = 'converted'"
                                   " ORDER BY start_mjd", statuses)


def converted_after(store: StateStore, rowid: int, limit: int = 500) -> list[sqlite3.Row]:
    """Converted groups registered after `rowid` (a sensor's cursor), in rowid order."""
    return store.query("products", "SELECT rowid, group_id, kind, calibrator, start_mjd, end_mjd"
                                   " FROM ms_index WHERE rowid > ? AND status = 'converted'"
                                   " ORDER BY rowid LIMIT ?", (rowid, limit))


def converted_between(store: StateStore, start_mjd: float, end_mjd: float,
                      kind: str | None = None) -> list[sqlite3.Row]:
    """Converted groups starting in [start_mjd, end_mjd), of one kind when given."""
    return store.query("products", "SELECT group_id, path, kind, calibrator, start_mjd, end_mjd"
                                   " FROM ms_index WHERE status = 'converted' AND start_mjd >= ?"
                                   " AND start_mjd < ? AND (? IS NULL OR kind = ?) ORDER BY start_mjd",
                       (start_mjd, end_mjd, kind, kind))


def newest_converted_mjd(store: StateStore) -> float | None:
    """Mid-time (MJD) of the newest converted group: the data's own clock."""
    row = store.query("products", "SELECT max((start_mjd + end_mjd) / 2) FROM ms_index"
                                  " WHERE status = 'converted'")
    return row[0][0]


# -- images (contimg.imaging.stage) --------------------------------------------------

IMAGE_FIGURES = ("rms_jy", "expected_rms_jy", "peak_jy", "dynamic_range", "bmaj_arcsec",
                 "bmin_arcsec", "bpa_deg", "flagged_fraction")


def record_image_set(store: StateStore, *, group_id: str, ms_path: Path | str, mid_mjd: float,
                     image_set: Path, products: dict[str, Path], imager: str,
                     quality: dict[str, object], provenance_json: str,
                     superseded: tuple[Path, Path] | None = None) -> None:
    """One row per FITS product of a group image (kind = image, image-pb, residual, beam),
    all written in one transaction; the rows of a set moved aside follow it (superseded)."""
    conn = store.connection("products")
    figures = [quality.get(name) for name in IMAGE_FIGURES]
    # JSON has no inf/NaN (a blank image's dynamic range): those become null.
    quality_json = json.dumps({k: v if not isinstance(v, float) or math.isfinite(v) else None
                               for k, v in quality.items()})
    with write_transaction(conn):
        if superseded is not None:
            old, aside = (str(p) for p in superseded)
            conn.execute("UPDATE images SET status = 'superseded', image_set = ?,"
                         " path = ? || substr(path, length(?) + 1) WHERE image_set = ?",
                         (aside, aside, old, old))
            record_move(conn, old, aside, action="supersede", actor="imaging", reason="re-imaged")
        record_move(conn, "(workspace)", image_set, action="move", actor="imaging",
                    reason="group image")
        for kind, path in products.items():
            conn.execute(
                "INSERT INTO images (path, group_id, ms_path, kind, mid_mjd, status, created,"
                " image_set, imager, rms_jy, expected_rms_jy, peak_jy, dynamic_range, bmaj_arcsec,"
                " bmin_arcsec, bpa_deg, flagged_fraction, n_sources, quality, provenance)"
                " VALUES (?, ?, ?, ?, ?, 'ready', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (str(path), group_id, str(ms_path), kind, mid_mjd, utc_now(), str(image_set),
                 imager, *figures, quality.get("n_sources_5sigma"), quality_json, provenance_json))


def image_rows(store: StateStore, group_id: str, *, status: str = "ready") -> list[sqlite3.Row]:
    """A group's image products (by default the current ones)."""
    return store.query("products", "SELECT * FROM images WHERE group_id = ? AND status = ?"
                                   " ORDER BY kind", (group_id, status))


def record_image_failure(store: StateStore, group_id: str, reason: str,
                         quarantined: Path | None) -> None:
    """A failed imaging of the group: its reason, and where its workspace was kept (the
    move logged in file_moves). Until an image is made again, the group is not re-imaged
    automatically: the same data would fail the same way."""
    conn = store.connection("products")
    with write_transaction(conn):
        conn.execute("INSERT INTO image_failures (group_id, failed_at, reason, quarantine_path)"
                     " VALUES (?, ?, ?, ?)", (group_id, utc_now(), reason[:4000],
                                              str(quarantined) if quarantined else None))
        if quarantined is not None:
            record_move(conn, "(workspace)", quarantined, action="quarantine", actor="imaging",
                        reason=reason[:2000])


def calibrated_without_image(store: StateStore) -> list[sqlite3.Row]:
    """Calibrated groups with no current image and no imaging failure recorded since their
    calibration (a run killed while imaging leaves one), oldest first."""
    return store.query(
        "products",
        "SELECT m.group_id, m.calibration_since FROM ms_index m WHERE m.status = 'converted'"
        " AND m.calibration_status = 'calibrated'"
        " AND NOT EXISTS (SELECT 1 FROM images i WHERE i.group_id = m.group_id AND i.status = 'ready')"
        " AND NOT EXISTS (SELECT 1 FROM image_failures f WHERE f.group_id = m.group_id"
        " AND f.failed_at >= strftime('%Y-%m-%dT%H:%M:%S', m.calibration_since, 'unixepoch'))"
        " ORDER BY m.start_mjd")


def newest_created(store: StateStore) -> tuple[str | None, str | None]:
    """(newest ms_index creation, newest current image creation), ISO texts or None."""
    ms = store.query("products", "SELECT max(created) FROM ms_index WHERE status = 'converted'")
    image = store.query("products", "SELECT max(created) FROM images WHERE status = 'ready'")
    return ms[0][0], image[0][0]


# -- mosaics (contimg.mosaics.stage) ---------------------------------------------------


def images_between(store: StateStore, start_mjd: float, end_mjd: float) -> list[sqlite3.Row]:
    """Current group images whose mid time is in [start_mjd, end_mjd), oldest first: per
    group the apparent image's path, its drift-averaged beam and residual beside it, the
    robust rms and restoring beam, and when the set was made."""
    return store.query(
        "products",
        "SELECT i.group_id, i.image_set, i.path AS image_path, b.path AS beam_path,"
        " r.path AS residual_path, i.mid_mjd, i.rms_jy, i.bmaj_arcsec, i.bmin_arcsec, i.bpa_deg,"
        " i.created FROM images i"
        " JOIN images b ON b.image_set = i.image_set AND b.kind = 'beam' AND b.status = 'ready'"
        " LEFT JOIN images r ON r.image_set = i.image_set AND r.kind = 'residual'"
        " AND r.status = 'ready'"
        " WHERE i.kind = 'image' AND i.status = 'ready' AND i.mid_mjd >= ? AND i.mid_mjd < ?"
        " ORDER BY i.mid_mjd", (start_mjd, end_mjd))


def image_times_since(store: StateStore, start_mjd: float) -> list[sqlite3.Row]:
    """(mid_mjd, created) of every current group image from `start_mjd` on (indexed by
    time): what the mosaic sensor groups into hours and days."""
    return store.query("products", "SELECT mid_mjd, created FROM images WHERE kind = 'image'"
                                    " AND status = 'ready' AND mid_mjd >= ? ORDER BY mid_mjd",
                       (start_mjd,))


def newest_image_mjd(store: StateStore) -> float | None:
    """Mid time (MJD) of the newest current group image: the mosaics' data clock."""
    return store.query("products", "SELECT max(mid_mjd) FROM images WHERE kind = 'image'"
                                   " AND status = 'ready'")[0][0]


def record_mosaic(store: StateStore, *, name: str, kind: str, set_dir: Path, image: Path,
                  noise: Path, weight: Path, start_mjd: float, end_mjd: float,
                  members: list[dict], quality: dict[str, object],
                  superseded: tuple[Path, Path] | None = None) -> None:
    """The row of one mosaic (its image's path; noise and weight beside it; the members
    as JSON), in one transaction with the audit rows; the row of a mosaic set aside by a
    re-make follows it (status superseded, its name suffixed: names are unique)."""
    conn = store.connection("products")
    quality_json = json.dumps({k: v if not isinstance(v, float) or math.isfinite(v) else None
                               for k, v in quality.items()})
    newest = max((str(m.get("created") or "") for m in members), default="")
    with write_transaction(conn):
        if superseded is not None:
            old, aside = (str(p) for p in superseded)
            conn.execute("UPDATE mosaics SET status = 'superseded', name = name || ? || id,"
                         " set_dir = ?, path = ? || substr(path, length(?) + 1),"
                         " noise_path = ? || substr(noise_path, length(?) + 1),"
                         " weight_path = ? || substr(weight_path, length(?) + 1)"
                         " WHERE set_dir = ? AND status = 'ready'",
                         ("@superseded-", aside, aside, old, aside, old, aside, old, old))
            record_move(conn, old, aside, action="supersede", actor="mosaics", reason="re-made")
        record_move(conn, "(workspace)", set_dir, action="move", actor="mosaics",
                    reason=f"{kind} mosaic")
        conn.execute(
            "INSERT INTO mosaics (name, path, start_mjd, end_mjd, status, created, kind, set_dir,"
            " noise_path, weight_path, members, n_members, newest_member, min_noise_jy,"
            " median_noise_jy, quality) VALUES (?, ?, ?, ?, 'ready', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, str(image), start_mjd, end_mjd, utc_now(), kind, str(set_dir), str(noise),
             str(weight), json.dumps(members), len(members), newest, quality.get("min_noise_jy"),
             quality.get("median_noise_jy"), quality_json))


def mosaics_between(store: StateStore, kind: str, start_mjd: float,
                    end_mjd: float) -> list[sqlite3.Row]:
    """Current mosaics of a kind whose window starts in [start_mjd, end_mjd), oldest first."""
    return store.query("products", "SELECT * FROM mosaics WHERE kind = ? AND status = 'ready'"
                                   " AND start_mjd >= ? AND start_mjd < ? ORDER BY start_mjd",
                       (kind, start_mjd, end_mjd))


def mosaic_record(store: StateStore, name: str) -> sqlite3.Row | None:
    """The current row of a mosaic by name (`YYYY-MM-DDTHH` or `YYYY-MM-DD`), or None."""
    rows = store.query("products", "SELECT * FROM mosaics WHERE name = ? AND status = 'ready'",
                       (name,))
    return rows[0] if rows else None
