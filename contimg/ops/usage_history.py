"""Storage-usage history as Parquet, queried with DuckDB: growth rates, days until full,
and a plot. One small Parquet file per observation, under date directories."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from contimg.ops.storage_usage import StorageObservation

FAST_DISK_FREE = "fast_disk_free"
TMPFS_USED = "tmpfs_used"


def append_observation(history_dir: Path, observation: StorageObservation) -> Path:
    """Write one observation (long format: one row per metric) atomically."""
    moment = datetime.strptime(observation.observed_at, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    rows = [(FAST_DISK_FREE, observation.fast_disk_free_bytes, None, None),
            (TMPFS_USED, observation.tmpfs_used_bytes, None, None)]
    rows += [(a.area, a.bytes, a.file_count, a.oldest_age_s) for a in observation.areas]
    table = pa.table({
        "observed_at": pa.array([moment] * len(rows), pa.timestamp("s", tz="UTC")),
        "metric": [r[0] for r in rows],
        "bytes": pa.array([r[1] for r in rows], pa.int64()),
        "file_count": pa.array([r[2] for r in rows], pa.int64()),
        "oldest_age_s": pa.array([r[3] for r in rows], pa.float64()),
    })
    day_dir = history_dir / moment.strftime("%Y-%m-%d")
    day_dir.mkdir(parents=True, exist_ok=True)
    path = day_dir / f"{moment.strftime('%H%M%S')}.parquet"
    partial = path.with_name(f".{path.name}.partial")
    pq.write_table(table, partial)
    os.replace(partial, path)
    return path


def compact_past_days(history_dir: Path, today: str) -> list[Path]:
    """Merge each earlier day's per-observation files into one `day.parquet` (DuckDB),
    so a year of 5-minute observations is ~365 files, not ~105k. Returns merged days."""
    merged = []
    for day_dir in sorted(p for p in history_dir.iterdir() if p.is_dir() and p.name < today):
        parts = sorted(day_dir.glob("[0-9]*.parquet"))
        if len(parts) < 2 and (day_dir / "day.parquet").exists():
            continue
        if not parts:
            continue
        target = day_dir / "day.parquet"
        partial = day_dir / ".day.parquet.partial"
        sources = [str(p) for p in parts] + ([str(target)] if target.exists() else [])
        if any("'" in source for source in sources):
            raise ValueError(f"history path may not contain a quote: {day_dir}")
        listing = ", ".join(f"'{source}'" for source in sources)
        duckdb.execute(f"COPY (SELECT * FROM read_parquet([{listing}]) ORDER BY observed_at, "
                       f"metric) TO '{partial}' (FORMAT parquet)")
        os.replace(partial, target)  # the merged file first, then the parts go
        for part in parts:
            part.unlink()
        merged.append(day_dir)
    return merged


def growth_per_day(history_dir: Path, days: float = 7.0) -> dict[str, float]:
    """Bytes per day of every metric over the last `days`, by least-squares slope."""
    glob = _glob(history_dir)
    if glob is None:
        return {}
    rows = duckdb.execute(
        f"""SELECT metric, regr_slope(bytes, epoch(observed_at) / 86400.0)
            FROM read_parquet('{glob}')
            WHERE epoch(observed_at) >= (SELECT max(epoch(observed_at)) FROM read_parquet('{glob}'))
                                        - ? * 86400
            GROUP BY metric""", [days]).fetchall()
    return {metric: float(slope) for metric, slope in rows if slope is not None}


def days_until_full(free_bytes: float, growth: dict[str, float]) -> float | None:
    """Days until the fast disk fills at the current rate (None when it is not shrinking)."""
    shrink = -growth.get(FAST_DISK_FREE, 0.0)
    return free_bytes / shrink if shrink > 0 else None


@dataclass(frozen=True)
class GrowthEstimate:
    """Growth per metric, or none when the history is too short to mean anything.

    Minutes of history on a shared disk measure someone else's copy, not a trend (ten
    minutes once gave "full in 0.6 days"), so rates are only given over `min_span_h`."""

    span_h: float  # hours between the first and last observation used
    min_span_h: float  # the span required (CONTIMG_GROWTH_MIN_SPAN_H)
    per_day: dict[str, float] = field(default_factory=dict)  # bytes/day; empty when too short

    @property
    def enough_history(self) -> bool:
        """Whether the history covers the required span."""
        return self.span_h >= self.min_span_h

    def days_until_full(self, free_bytes: float) -> float | None:
        """Days until the fast disk fills (None: too little history, or not shrinking)."""
        return days_until_full(free_bytes, self.per_day) if self.enough_history else None

    def describe_days_until_full(self, free_bytes: float) -> float | str:
        """Days until full, or for the operator the reason there is no number."""
        if not self.enough_history:
            return f"not enough history ({_duration(self.span_h)} of {_duration(self.min_span_h)})"
        until_full = self.days_until_full(free_bytes)
        return round(until_full, 1) if until_full is not None else "not filling"


def history_span_h(history_dir: Path, days: float = 7.0) -> float:
    """Hours between the first and the last observation within the last `days`."""
    glob = _glob(history_dir)
    if glob is None:
        return 0.0
    (span_s,) = duckdb.execute(
        f"""WITH t AS (SELECT epoch(observed_at) AS s FROM read_parquet('{glob}'))
            SELECT coalesce(max(s) - min(s), 0) FROM t
            WHERE s >= (SELECT max(s) FROM t) - ? * 86400""", [days]).fetchone()
    return float(span_s) / 3600.0


def estimate_growth(history_dir: Path, min_span_h: float, days: float = 7.0) -> GrowthEstimate:
    """Growth per day over the last `days`, given only when the history spans `min_span_h`."""
    span_h = history_span_h(history_dir, days)
    if span_h < min_span_h:
        return GrowthEstimate(span_h=span_h, min_span_h=min_span_h)
    return GrowthEstimate(span_h=span_h, min_span_h=min_span_h,
                          per_day=growth_per_day(history_dir, days))


def _duration(hours: float) -> str:
    """'10 min' below two hours, else '8.0 h' ('6 h' for whole hours)."""
    if hours < 2:
        return f"{hours * 60:.0f} min"
    return f"{hours:g} h" if float(hours).is_integer() else f"{hours:.1f} h"


def history_png(history_dir: Path, days: float = 7.0) -> bytes | None:
    """A PNG of fast-disk free space and the largest areas over the last `days`."""
    glob = _glob(history_dir)
    if glob is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = duckdb.execute(
        f"""SELECT observed_at, metric, bytes / 1e9 AS gb FROM read_parquet('{glob}')
            WHERE epoch(observed_at) >= (SELECT max(epoch(observed_at)) FROM read_parquet('{glob}'))
                                        - ? * 86400
            ORDER BY observed_at""", [days]).fetchall()
    series: dict[str, tuple[list, list]] = {}
    for moment, metric, gb in frame:
        times, values = series.setdefault(metric, ([], []))
        times.append(moment)
        values.append(gb)
    figure, axis = plt.subplots(figsize=(7, 3.2), dpi=90)
    for metric, (times, values) in sorted(series.items(), key=lambda kv: -max(kv[1][1])):
        if metric == TMPFS_USED:
            continue
        axis.plot(times, values, label=metric, lw=2 if metric == FAST_DISK_FREE else 1)
    axis.set_ylabel("GB")
    axis.set_title("contimg storage (fast disk free and areas)")
    axis.legend(fontsize=6, ncol=3)
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _glob(history_dir: Path) -> str | None:
    if not any(history_dir.glob("*/*.parquet")):
        return None
    # The path is ours (the layout), not user input; quotes would break the literal.
    text = str(history_dir / "*" / "*.parquet")
    if "'" in text:
        raise ValueError(f"history path may not contain a quote: {text}")
    return text
