"""The daily variability pass (plain Python; the `variability` asset calls it).

1. Backfill: a source first found by blind detection has no measurements before it was
   found — exactly the epochs that show a transient appearing. Its position is measured
   (forced) in the earlier images that cover it, `backfill_days` back, and the rows are
   added to those images' Parquet files.
2. Statistics over every measurement up to the day's end (`variability.py`, DuckDB),
   written to master_sources; the sources that became candidates now are returned for
   alerting.
3. A light-curve picture per candidate under `photometry/lightcurves/YYYY-MM-DD/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import duckdb
import numpy as np
from astropy.io import fits

from contimg import naming
from contimg.celestial import celestial_wcs
from contimg.ingest.group_lock import waiting_group_lock
from contimg.layout import StorageLayout
from contimg.photometry.measurements import (
    measurements_glob,
    measurements_path,
    quarantine_unreadable,
    read_measurements,
    write_measurements,
)
from contimg.photometry.plots import light_curve_png
from contimg.photometry.stage import (
    PhotometryOptions,
    measure_positions,
    measurement_columns,
    read_group_image,
)
from contimg.photometry.variability import Thresholds, light_curve, variability_statistics
from contimg.state import StateStore, master_sources_db, products_db
from contimg.timeutil import datetime_to_mjd

MAX_PICTURES = 25  # light curves drawn per day (the candidates' list holds them all)


@dataclass
class DailyOutcome:
    """What the day's pass found."""

    day: str
    n_sources: int
    candidates: list[dict]  # master rows (as dicts) of every candidate
    new_candidate_ids: list[int]
    backfilled: dict[str, int]  # source name -> earlier images measured
    eta_threshold: float
    v_threshold: float
    pictures: dict[str, Path] = field(default_factory=dict)


def judge_day(layout: StorageLayout, store: StateStore, day: date, options: PhotometryOptions,
              thresholds: Thresholds, backfill_days: float = 7.0) -> DailyOutcome:
    """Backfill, statistics and pictures for `day` (UTC); see the module doc."""
    end_mjd = datetime_to_mjd(datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC))
    backfilled = backfill_new_sources(layout, store, end_mjd, options, backfill_days)
    glob = measurements_glob(layout.photometry_dir)
    if not any(layout.photometry_dir.glob("measurements/date=*/*.parquet")):
        return DailyOutcome(day.isoformat(), 0, [], [], backfilled, float("inf"), float("inf"))
    table = _statistics(layout, store, glob, end_mjd, thresholds)
    newly = master_sources_db.record_statistics(store, table.rows(), until=day.isoformat())
    candidates = [dict(r) for r in master_sources_db.source_rows(store, table.source_id[table.candidate])]
    candidates.sort(key=lambda r: -abs(r["vs_max"] or 0.0))
    outcome = DailyOutcome(day.isoformat(), int(table.source_id.size), candidates, newly, backfilled,
                           table.eta_threshold, table.v_threshold)
    folder = layout.photometry_dir / "lightcurves" / day.isoformat()
    for row in candidates[:MAX_PICTURES]:
        curve = light_curve(glob, row["id"])
        title = (f"{row['name']}  Vs {row['vs_max']:.1f}  m {row['m_at_vs_max']:.2f}  "
                 f"eta {row['eta']:.3g}  V {row['v']:.3f}")
        outcome.pictures[row["name"]] = _write_png(folder / naming.light_curve_name(row["name"]),
                                                   light_curve_png(curve["mid_mjd"], curve["flux_jy"],
                                                                   curve["flux_err_jy"], title))
    return outcome


def _statistics(layout: StorageLayout, store: StateStore, glob: str, end_mjd: float,
                thresholds: Thresholds):
    """The figures; an unreadable measurements file is quarantined (its move logged with the
    reason) and the query run again over the rest: one bad file never stops the pass."""
    try:
        return variability_statistics(glob, end_mjd, thresholds)
    except duckdb.Error as exc:
        moved = quarantine_unreadable(layout.photometry_dir)
        if not moved:
            raise
        for source, target, reason in moved:
            products_db.log_move(store, source, target, action="quarantine", actor="variability",
                                 reason=f"{reason[:500]}; re-measure the group (materialise "
                                        f"`photometry` for it) to write it again")
        if not any(layout.photometry_dir.glob("measurements/date=*/*.parquet")):
            raise RuntimeError(f"every measurements file was unreadable ({exc})") from exc
        return variability_statistics(glob, end_mjd, thresholds)


def backfill_new_sources(layout: StorageLayout, store: StateStore, until_mjd: float,
                         options: PhotometryOptions, backfill_days: float) -> dict[str, int]:
    """Measure every not-yet-backfilled new source in the images before its discovery."""
    sources = master_sources_db.new_sources_to_backfill(store, until_mjd)
    done: dict[str, int] = {}
    if not sources:
        return done
    first = min(s["first_mjd"] for s in sources)
    for image in products_db.images_between(store, first - backfill_days, until_mjd):
        wanted = [s for s in sources if image["mid_mjd"] < s["first_mjd"]
                  and s["first_mjd"] - image["mid_mjd"] <= backfill_days
                  and _covers(Path(image["image_path"]), s["ra_deg"], s["dec_deg"])]
        if wanted:
            _add_measurements(layout, store, image["group_id"], wanted, options)
            for s in wanted:
                done[s["name"]] = done.get(s["name"], 0) + 1
    master_sources_db.mark_backfilled(store, [s["id"] for s in sources])
    return done


def _covers(image_path: Path, ra_deg: float, dec_deg: float) -> bool:
    """Whether the position falls on the image's pixels (the header alone is read)."""
    try:
        header = fits.getheader(image_path)
    except OSError:
        return False
    x, y = celestial_wcs(header).world_to_pixel_values(ra_deg, dec_deg)
    return bool(0 <= x < header["NAXIS1"] and 0 <= y < header["NAXIS2"])


def _add_measurements(layout: StorageLayout, store: StateStore, group_id: str, sources: list,
                      options: PhotometryOptions) -> None:
    """Forced photometry of those sources in one group's image, added to its Parquet file
    (rows of the same sources measured before are replaced)."""
    with waiting_group_lock(layout, group_id):
        measured = read_group_image(store, group_id, options)
        ra = np.array([s["ra_deg"] for s in sources])
        dec = np.array([s["dec_deg"] for s in sources])
        fluxes = measure_positions(measured, ra, dec)
        added = measurement_columns(measured, [s["id"] for s in sources], [s["name"] for s in sources],
                                    ra, dec, np.ones(len(sources), bool), fluxes)
        path = measurements_path(layout.photometry_dir, group_id)
        existing = read_measurements(path)
        keep = ~np.isin(existing["source_id"].astype(np.int64), added["source_id"])
        merged = {k: np.concatenate([np.asarray(existing[k])[keep], np.asarray(v)]) for k, v in added.items()}
        write_measurements(path, merged)


def _write_png(path: Path, png: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(png)
    partial.replace(path)
    return path
