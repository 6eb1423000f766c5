"""`contimg find GROUP`: everything the state databases know of one observation group.

Plain code over the state databases (no Dagster): a group whose partition key has left
Dagster's live window (`CONTIMG_LIVE_PARTITION_DAYS`) is found here exactly as a live one.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field

from contimg import naming
from contimg.layout import StorageLayout, resolve_layout
from contimg.photometry.measurements import measurements_path
from contimg.state import StateStore


@dataclass
class GroupRecord:
    """What is recorded of one group, section by section (lines ready to print)."""

    group: str
    sections: dict[str, list[str]] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        """True when any database (or the photometry tree) knows the group."""
        return any(self.sections.values())

    def lines(self) -> list[str]:
        """The printable report: a header per section, `(none)` for an empty one."""
        out = [f"group {self.group}"]
        for name, rows in self.sections.items():
            out.append(f"{name}:")
            out += [f"  {row}" for row in rows] or ["  (none)"]
        return out


def find_group(layout: StorageLayout, store: StateStore, group: str) -> GroupRecord:
    """Collect a group's raw files, MS, calibration tables, images and photometry."""
    key = naming.iso_timestamp(group)  # accepts the file-system form too; ValueError if neither
    record = GroupRecord(key)
    ingest = store.query("ingest", "SELECT state, n_subbands, error FROM groups WHERE group_id = ?",
                         (key,))
    files = store.query("ingest", "SELECT path, subband, state FROM subband_files"
                                  " WHERE group_id = ? ORDER BY subband", (key,))
    record.sections["ingest"] = [f"{r['state']} ({r['n_subbands']} subbands)"
                                 + (f" error: {r['error']}" if r["error"] else "") for r in ingest]
    record.sections["raw files"] = [f"sb{r['subband']:02d} {r['state']:10s} {r['path']}" for r in files]
    ms = store.query("products", "SELECT path, kind, status, calibration_status, cal_tables,"
                                 " archive_path FROM ms_index WHERE group_id = ?", (key,))
    record.sections["measurement set"] = [
        f"{r['kind']} {r['status']} calibration={r['calibration_status'] or '-'} {r['path']}"
        + (f" archived {r['archive_path']}" if r["archive_path"] else "") for r in ms]
    applied = [table for r in ms for table in json.loads(r["cal_tables"] or "[]")]
    solved = store.query("cal_registry", "SELECT kind, status, path FROM caltables"
                                         " WHERE group_id = ? ORDER BY apply_order, kind", (key,))
    record.sections["calibration tables"] = (
        [f"applied {path}" for path in applied]
        + [f"solved here: {r['kind']} {r['status']} {r['path']}" for r in solved])
    images = store.query("products", "SELECT kind, status, path, archive_path FROM images"
                                     " WHERE group_id = ? ORDER BY id", (key,))
    failures = store.query("products", "SELECT failed_at, reason FROM image_failures"
                                       " WHERE group_id = ? ORDER BY id", (key,))
    record.sections["images"] = (
        [f"{r['kind']} {r['status']} {r['path']}"
         + (f" archived {r['archive_path']}" if r["archive_path"] else "") for r in images]
        + [f"failed {r['failed_at']}: {r['reason'][:200]}" for r in failures])
    parquet = measurements_path(layout.photometry_dir, key)
    record.sections["photometry"] = [str(parquet)] if parquet.exists() else []
    return record


def add_find_command(commands: argparse._SubParsersAction) -> None:
    """`contimg find GROUP`."""
    find = commands.add_parser("find", help="a group's raw files, MS, calibration tables, images "
                                            "and photometry, from the state databases")
    find.add_argument("group", help="group id, YYYY-MM-DDTHH:MM:SS (or YYYY-MM-DD_HH_MM_SS)")


def run_find_command(args: argparse.Namespace) -> int:
    """Print the group's record; exit 1 when nothing knows it, 2 for a malformed id."""
    layout = resolve_layout().ensure()
    try:
        with StateStore(layout.state_dir) as store:
            record = find_group(layout, store, args.group)
    except ValueError as exc:
        print(f"contimg find: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(record.lines()))
    if not record.found:
        print(f"contimg find: no record of group {record.group}", file=sys.stderr)
        return 1
    return 0
