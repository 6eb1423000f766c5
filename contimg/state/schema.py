"""Versioned schemas of the state databases, as ordered forward migrations.

Each database's `PRAGMA user_version` is the number of migrations applied. A new
migration is appended to its list; existing entries are never edited.
"""

from __future__ import annotations

MIGRATIONS: dict[str, list[str]] = {
    "ingest": [
        """
        CREATE TABLE subband_files (
            path TEXT PRIMARY KEY,
            group_id TEXT NOT NULL,
            subband INTEGER NOT NULL,
            size_bytes INTEGER NOT NULL,
            mtime REAL NOT NULL,
            state TEXT NOT NULL DEFAULT 'collecting',
            first_seen TEXT NOT NULL,
            updated TEXT NOT NULL
        );
        CREATE INDEX subband_files_group ON subband_files(group_id);
        CREATE TABLE groups (
            group_id TEXT PRIMARY KEY,
            state TEXT NOT NULL
                CHECK (state IN ('collecting','pending','in_progress','completed','failed')),
            n_subbands INTEGER NOT NULL DEFAULT 0,
            first_seen TEXT NOT NULL,
            updated TEXT NOT NULL,
            error TEXT
        );
        CREATE INDEX groups_state ON groups(state, group_id);
        """,
        """
        ALTER TABLE subband_files ADD COLUMN reason TEXT;
        ALTER TABLE groups ADD COLUMN missing_subbands TEXT;
        ALTER TABLE groups ADD COLUMN run_requested INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX subband_files_state ON subband_files(state);
        """,
        """
        DROP INDEX subband_files_state;
        DROP INDEX subband_files_group;
        CREATE INDEX subband_files_group_state ON subband_files(group_id, state, subband);
        """,
        """
        ALTER TABLE groups ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE groups ADD COLUMN run_requests INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE groups ADD COLUMN retry_after TEXT;
        ALTER TABLE groups ADD COLUMN run_id TEXT;
        UPDATE groups SET run_requests = run_requested, attempts = run_requested;
        """,
        """
        ALTER TABLE groups ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
        UPDATE groups SET failures = 1 WHERE state = 'failed';
        """,
    ],
    "cal_registry": [
        """
        CREATE TABLE caltables (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('bpcal','gpcal','2gcal','kcal')),
            group_id TEXT NOT NULL,
            source_ms TEXT NOT NULL,
            calibrator TEXT,
            valid_start_mjd REAL NOT NULL,
            valid_end_mjd REAL NOT NULL,
            status TEXT NOT NULL DEFAULT 'active',
            flagged_fraction REAL,
            created TEXT NOT NULL,
            CHECK (valid_end_mjd > valid_start_mjd)
        );
        CREATE INDEX caltables_validity ON caltables(kind, valid_start_mjd, valid_end_mjd);
        """,
        """
        ALTER TABLE caltables ADD COLUMN set_id TEXT;
        ALTER TABLE caltables ADD COLUMN refant TEXT;
        ALTER TABLE caltables ADD COLUMN quality TEXT;
        ALTER TABLE caltables ADD COLUMN apply_order INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX caltables_set ON caltables(set_id);
        CREATE INDEX caltables_status ON caltables(status, kind, valid_start_mjd);
        """,
        """
        CREATE TABLE solve_failures (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('bpcal','gpcal','2gcal','kcal')),
            group_id TEXT NOT NULL,
            valid_start_mjd REAL NOT NULL,
            valid_end_mjd REAL NOT NULL,
            reason TEXT NOT NULL,
            created TEXT NOT NULL,
            CHECK (valid_end_mjd > valid_start_mjd)
        );
        CREATE INDEX solve_failures_window ON solve_failures(kind, valid_start_mjd, valid_end_mjd);
        """,
    ],
    "products": [
        """
        CREATE TABLE storage_locations (
            name TEXT PRIMARY KEY,
            path TEXT NOT NULL,
            updated TEXT NOT NULL
        );
        CREATE TABLE ms_index (
            path TEXT PRIMARY KEY,
            group_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('calibrators','science','failed')),
            start_mjd REAL NOT NULL,
            end_mjd REAL NOT NULL,
            dec_deg REAL,
            calibrator TEXT,
            status TEXT NOT NULL,
            size_bytes INTEGER,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        );
        CREATE INDEX ms_index_time ON ms_index(start_mjd);
        CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            group_id TEXT NOT NULL,
            ms_path TEXT,
            kind TEXT NOT NULL,
            mid_mjd REAL NOT NULL,
            status TEXT NOT NULL,
            archive_path TEXT,
            created TEXT NOT NULL
        );
        CREATE INDEX images_group ON images(group_id);
        CREATE INDEX images_time ON images(mid_mjd);
        CREATE TABLE mosaics (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            path TEXT NOT NULL UNIQUE,
            start_mjd REAL NOT NULL,
            end_mjd REAL NOT NULL,
            status TEXT NOT NULL,
            archive_path TEXT,
            created TEXT NOT NULL
        );
        CREATE TABLE file_moves (
            id INTEGER PRIMARY KEY,
            moved_at TEXT NOT NULL,
            source TEXT NOT NULL,
            destination TEXT NOT NULL,
            action TEXT NOT NULL,
            reason TEXT,
            actor TEXT,
            size_bytes INTEGER
        );
        CREATE INDEX file_moves_time ON file_moves(moved_at);
        """,
        """
        CREATE TABLE ops_runs (
            id INTEGER PRIMARY KEY,
            operation TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            finished_epoch REAL NOT NULL,
            status TEXT NOT NULL,
            details TEXT
        );
        CREATE INDEX ops_runs_operation ON ops_runs(operation, finished_epoch);
        CREATE TABLE alert_state (
            alert_key TEXT PRIMARY KEY,
            level TEXT NOT NULL,
            changed_at TEXT NOT NULL
        );
        """,
        """
        ALTER TABLE images ADD COLUMN archive_staged TEXT;
        ALTER TABLE images ADD COLUMN archive_sha256 TEXT;
        ALTER TABLE mosaics ADD COLUMN archive_staged TEXT;
        ALTER TABLE mosaics ADD COLUMN archive_sha256 TEXT;
        """,
        """
        ALTER TABLE images ADD COLUMN archive_source_sha256 TEXT;
        ALTER TABLE mosaics ADD COLUMN archive_source_sha256 TEXT;
        ALTER TABLE ms_index ADD COLUMN archive_path TEXT;
        """,
        """
        ALTER TABLE ms_index ADD COLUMN calibration_status TEXT CHECK (calibration_status IN
            ('awaiting','calibrating','calibrated','failed'));
        ALTER TABLE ms_index ADD COLUMN cal_tables TEXT;
        ALTER TABLE ms_index ADD COLUMN calibration_note TEXT;
        ALTER TABLE ms_index ADD COLUMN calibration_since REAL;
        CREATE INDEX ms_index_calibration ON ms_index(calibration_status, start_mjd);
        """,
        """
        ALTER TABLE images ADD COLUMN image_set TEXT;
        ALTER TABLE images ADD COLUMN imager TEXT;
        ALTER TABLE images ADD COLUMN rms_jy REAL;
        ALTER TABLE images ADD COLUMN expected_rms_jy REAL;
        ALTER TABLE images ADD COLUMN peak_jy REAL;
        ALTER TABLE images ADD COLUMN dynamic_range REAL;
        ALTER TABLE images ADD COLUMN bmaj_arcsec REAL;
        ALTER TABLE images ADD COLUMN bmin_arcsec REAL;
        ALTER TABLE images ADD COLUMN bpa_deg REAL;
        ALTER TABLE images ADD COLUMN n_sources INTEGER;
        ALTER TABLE images ADD COLUMN flagged_fraction REAL;
        ALTER TABLE images ADD COLUMN quality TEXT;
        ALTER TABLE images ADD COLUMN provenance TEXT;
        CREATE INDEX images_set ON images(image_set);
        """,
        """
        ALTER TABLE mosaics ADD COLUMN kind TEXT CHECK (kind IN ('hourly','daily'));
        ALTER TABLE mosaics ADD COLUMN set_dir TEXT;
        ALTER TABLE mosaics ADD COLUMN noise_path TEXT;
        ALTER TABLE mosaics ADD COLUMN weight_path TEXT;
        ALTER TABLE mosaics ADD COLUMN members TEXT;
        ALTER TABLE mosaics ADD COLUMN n_members INTEGER;
        ALTER TABLE mosaics ADD COLUMN newest_member TEXT;
        ALTER TABLE mosaics ADD COLUMN min_noise_jy REAL;
        ALTER TABLE mosaics ADD COLUMN median_noise_jy REAL;
        ALTER TABLE mosaics ADD COLUMN quality TEXT;
        CREATE INDEX mosaics_window ON mosaics(kind, status, start_mjd);
        """,
        """
        CREATE TABLE image_failures (
            id INTEGER PRIMARY KEY,
            group_id TEXT NOT NULL,
            failed_at TEXT NOT NULL,
            reason TEXT NOT NULL,
            quarantine_path TEXT
        );
        CREATE INDEX image_failures_group ON image_failures(group_id);
        """,
    ],
    "master_sources": [
        """
        CREATE TABLE sources (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            ra_deg REAL NOT NULL,
            dec_deg REAL NOT NULL,
            flux_jy REAL,
            catalog TEXT NOT NULL,
            created TEXT NOT NULL
        );
        CREATE INDEX sources_position ON sources(dec_deg, ra_deg);
        """,
        """
        ALTER TABLE sources ADD COLUMN is_new INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sources ADD COLUMN first_group TEXT;
        ALTER TABLE sources ADD COLUMN first_mjd REAL;
        ALTER TABLE sources ADD COLUMN n_measurements INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sources ADD COLUMN mean_flux_jy REAL;
        ALTER TABLE sources ADD COLUMN wmean_flux_jy REAL;
        ALTER TABLE sources ADD COLUMN eta REAL;
        ALTER TABLE sources ADD COLUMN v REAL;
        ALTER TABLE sources ADD COLUMN chi2_nu REAL;
        ALTER TABLE sources ADD COLUMN vs_max REAL;
        ALTER TABLE sources ADD COLUMN m_at_vs_max REAL;
        ALTER TABLE sources ADD COLUMN is_candidate INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sources ADD COLUMN stats_until TEXT;
        ALTER TABLE sources ADD COLUMN backfilled INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE seeded_strips (
            id INTEGER PRIMARY KEY,
            catalog TEXT NOT NULL,
            dec_min REAL NOT NULL,
            dec_max REAL NOT NULL,
            added INTEGER NOT NULL,
            created TEXT NOT NULL
        );
        """,
    ],
}


def latest_version(database: str) -> int:
    """The schema version a database has once every migration is applied."""
    return len(MIGRATIONS[database])
