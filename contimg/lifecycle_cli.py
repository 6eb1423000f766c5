"""Operator commands for the storage lifecycle: retention, archive, migrate."""

from __future__ import annotations

import argparse
import math
import sys

from contimg.layout import resolve_layout
from contimg.state import StateStore


def run_lifecycle_command(args: argparse.Namespace) -> int:
    """`contimg retention | archive | migrate ...`; dry runs print the plan."""
    layout = resolve_layout().ensure()
    if args.command == "migrate" and args.migrate_what == "state":
        return _migrate_state(args, layout)  # must not create databases at the target
    store = StateStore(layout.state_dir)
    store.migrate_all()
    if args.command == "retention":
        return _retention(args, layout, store)
    if args.command == "archive":
        from contimg.ops.archive import archive_products

        report = archive_products(layout, store)
        print(f"archived {len(report.images)} image(s), {len(report.mosaics)} mosaic(s) "
              f"to {report.remote}")
        return 0
    return _migrate_ms(args, layout, store)


def floor_gb(text: str) -> float:
    """`--min-free-gb`: a finite, non-negative number of GB."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GB") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of GB >= 0")
    return value


def _retention(args: argparse.Namespace, layout, store: StateStore) -> int:
    """Print the plan (and the free-space floor); delete only with --apply."""
    from contimg.ops.retention import RetentionPolicy, apply_retention, plan_retention

    try:
        policy = RetentionPolicy.from_env()
        if args.min_free_gb is not None:
            policy = policy.with_floor(args.min_free_gb)
        plan = plan_retention(layout, store, policy)
    except ValueError as exc:  # a bad setting or fake free-space file: say which, no traceback
        print(f"contimg retention: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(plan.lines()) or "nothing is past its retention age")
    if args.apply:
        print(f"deleted {len(apply_retention(store, plan))} file(s)")
    else:
        print(f"dry run: {len(plan.deletions)} file(s) would be deleted; --apply to do it")
    return 0


def _source_missing(args: argparse.Namespace) -> bool:
    if args.source.is_dir():
        return False
    print(f"contimg migrate: error: {args.source} is not a directory", file=sys.stderr)
    return True


def _migrate_ms(args: argparse.Namespace, layout, store: StateStore) -> int:
    from contimg.ops import migrate

    if _source_missing(args):
        return 2
    moves = migrate.plan_ms_migration(args.source, layout)
    for move in moves:
        print(f"{move.kind:12s} {move.source} -> {move.destination}  ({move.reason})")
    if args.apply:
        migrate.apply_ms_migration(moves, store)
        print(f"moved and registered {len(moves)} MS")
    else:
        print(f"dry run: {len(moves)} MS would move; --apply to do it")
    return 0


def _migrate_state(args: argparse.Namespace, layout) -> int:
    from contimg.ops import migrate
    from contimg.state.connection import configured_state_url

    if _source_missing(args):
        return 2
    if configured_state_url():
        print("contimg migrate: error: the state databases are on PostgreSQL (CONTIMG_STATE_URL): "
              "there are no files to move. Fix: to bring SQLite files into it, `contimg backup` "
              "with CONTIMG_STATE_URL unset, then `contimg restore --backup <set> --yes` with it "
              "set.", file=sys.stderr)
        return 2
    moves = migrate.plan_state_migration(args.source, layout.state_dir)
    for source, target in moves:
        print(f"database {source} -> {target}")
    if args.apply:
        try:
            link = migrate.apply_state_migration(args.source, layout.state_dir)
        except (FileExistsError, RuntimeError) as exc:
            print(f"contimg migrate: error: {exc}. Fix: move the target's databases aside "
                  "(they may be empty ones made by a platform started on the new layout).",
                  file=sys.stderr)
            return 2
        print(f"moved {len(moves)} database(s); {link} now links to {layout.state_dir}")
    else:
        print(f"dry run: {len(moves)} database(s) would move, then {args.source} becomes a "
              f"symlink to {layout.state_dir}; stop the platform and rerun with --apply")
    return 0
