"""The `contimg` command: operator tools that run outside Dagster with the same code."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from contimg import naming
from contimg.find import add_find_command, run_find_command
from contimg.image_cli import add_image_command, run_image_command
from contimg.ingest.commands import add_commands as add_ingest_commands
from contimg.ingest.commands import run_command as run_ingest_command


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `contimg` console script."""
    parser = argparse.ArgumentParser(prog="contimg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="print the layout, free space and tool versions")
    _add_simulate(commands)
    _add_convert(commands)
    add_image_command(commands)
    metrics = commands.add_parser("metrics", help="Prometheus metrics")
    metrics_what = metrics.add_subparsers(dest="metrics_command", required=True)
    serve = metrics_what.add_parser("serve", help="serve /metrics on a loopback port")
    serve.add_argument("--port", type=int, default=9108)
    serve.add_argument("--host", default="127.0.0.1")
    metrics_what.add_parser("textfile", help="write logs/metrics/contimg.prom once")
    commands.add_parser("backup", help="back the state databases up now (a set in the backups "
                        "directory, as the schedule makes; e.g. before moving them to PostgreSQL)")
    restore = commands.add_parser("restore", help="restore the state databases from a backup")
    restore.add_argument("--backup", help="backup set name or path (default: the newest)")
    restore.add_argument("--list", action="store_true", help="list backup sets and exit")
    restore.add_argument("--yes", action="store_true", help="do it (default: show the plan)")
    _add_lifecycle(commands)
    add_ingest_commands(commands)
    add_find_command(commands)
    commands.add_parser("bench", help="the performance benchmarks (`contimg bench --help`)")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # its own parser (benchmarks/__main__.py) reads the rest
        from benchmarks.__main__ import main as bench_main

        return bench_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command in ("retention", "archive", "migrate"):
        from contimg.lifecycle_cli import run_lifecycle_command

        return run_lifecycle_command(args)
    if args.command in ("groups", "requeue"):
        return run_ingest_command(args)
    if args.command == "find":
        return run_find_command(args)
    if args.command == "restore":
        return _restore(args)
    if args.command == "backup":
        return _backup()
    if args.command == "metrics":
        return _metrics(args)
    if args.command == "doctor":
        from contimg.doctor import run_doctor

        return run_doctor()
    if args.command == "convert":
        return _convert(args)
    if args.command == "image":
        return run_image_command(args)
    return _simulate(args)


def _add_lifecycle(commands: argparse._SubParsersAction) -> None:
    from contimg.lifecycle_cli import floor_gb

    ret = commands.add_parser("retention", help="show (or apply) the retention plan")
    ret.add_argument("--apply", action="store_true", help="delete what the plan allows")
    ret.add_argument("--min-free-gb", type=floor_gb, default=None, metavar="GB",
                     help="free-space floor on the fast disk: below it the oldest eligible "
                          "products go first (default: CONTIMG_MIN_FREE_GB)")
    commands.add_parser("archive", help="archive images and mosaics to the rclone remote now")
    mig = commands.add_parser("migrate", help="the seed's migration plan (dry run by default)")
    what = mig.add_subparsers(dest="migrate_what", required=True)
    ms = what.add_parser("ms", help="organise a flat MS directory into the date tree")
    ms.add_argument("--from", dest="source", type=Path, required=True, help="the flat directory")
    ms.add_argument("--apply", action="store_true")
    state = what.add_parser("state", help="move the state databases to persistent storage")
    state.add_argument("--from", dest="source", type=Path, required=True,
                       help="the old state directory (on the fast disk)")
    state.add_argument("--apply", action="store_true")


def _backup() -> int:
    from contimg.layout import resolve_layout
    from contimg.ops.backup import backup_databases

    made = backup_databases(resolve_layout().ensure())
    print(made.path)
    for name, counts in made.row_counts.items():
        print(f"  {name:15s} " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    return 0


def _restore(args: argparse.Namespace) -> int:
    from contimg.layout import resolve_layout
    from contimg.ops.backup import BackupError, list_backups, restore_databases, verify_backup
    from contimg.state.connection import StateInUseError, exclusive_state_lock

    layout = resolve_layout().ensure()
    backups = list_backups(layout)
    if args.list or (not backups and not args.backup):
        for backup in backups:
            print(backup)
        if not backups:
            print(f"no backup sets in {layout.backups_dir}", file=sys.stderr)
        return 0 if backups else 1
    chosen = Path(args.backup) if args.backup else backups[-1]
    if not chosen.is_absolute():
        chosen = layout.backups_dir / chosen
    try:
        # Verified in the dry run too: the operator learns of a bad set before stopping anything.
        manifest = verify_backup(chosen)
        print(f"restore {chosen} into {layout.state_dir} (checksums verified)")
        for name, counts in manifest["row_counts"].items():
            print(f"  {name:15s} " + ", ".join(f"{t} {n}" for t, n in counts.items()))
        if not args.yes:
            try:
                with exclusive_state_lock(layout.state_dir):
                    pass
            except StateInUseError as exc:
                print(f"note: {exc}")
            print("dry run: stop the platform, then rerun with --yes")
            return 0
        aside = restore_databases(layout, chosen)
    except (BackupError, OSError) as exc:
        print(f"contimg restore: error: {exc}", file=sys.stderr)
        return 2
    print(f"restored; the databases as they were are kept in {aside}")
    return 0


def _metrics(args: argparse.Namespace) -> int:
    from contimg.layout import resolve_layout
    from contimg.ops.metrics import serve, write_textfile

    layout = resolve_layout().ensure()
    if args.metrics_command == "textfile":
        print(write_textfile(layout))
        return 0
    print(f"serving contimg metrics on http://{args.host}:{args.port}/metrics", flush=True)
    serve(layout, args.port, args.host)
    return 0


def _add_convert(commands: argparse._SubParsersAction) -> None:
    conv = commands.add_parser("convert", help="convert one group's UVH5 files to a Measurement Set")
    conv.add_argument("files", nargs="+", type=Path, help="the group's subband files")
    conv.add_argument("--out", type=Path, required=True, help="the MS to create (PATH.ms)")
    conv.add_argument("--subbands", type=int, default=16,
                      help="subbands a group must have (0: accept any number)")
    conv.add_argument("--allow-missing", action="store_true",
                      help="convert an incomplete group, flagging the missing subbands")


def _convert(args: argparse.Namespace) -> int:
    from contimg.conversion.group_validation import GroupValidationError
    from contimg.conversion.ms_writer import convert_group

    if args.out.exists():
        print(f"contimg convert: error: {args.out} exists; choose a new path", file=sys.stderr)
        return 2
    partial = args.out.with_name(f".{args.out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    began = time.perf_counter()
    try:
        report = convert_group(args.files, partial, expected_subbands=args.subbands or None,
                               allow_missing=args.allow_missing, progress=print)
        os.rename(partial, args.out)
    except (GroupValidationError, FileNotFoundError, ValueError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        print(f"contimg convert: error: {exc}", file=sys.stderr)
        return 2
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    ra, dec = report.phase_centre_deg
    print(f"wrote {args.out}: {report.n_rows} rows x {report.n_channels} channels, phase centre "
          f"RA {ra:.4f} Dec {dec:.4f} deg, {time.perf_counter() - began:.1f} s")
    return 0


def _add_simulate(commands: argparse._SubParsersAction) -> None:
    from contimg.simulation.instrument import PRESETS

    sim = commands.add_parser("simulate", help="write simulated DSA-110 UVH5 groups")
    sim.add_argument("--out", type=Path, required=True, help="directory to write the groups into")
    sim.add_argument("--groups", type=int, default=1, help="number of consecutive groups")
    sim.add_argument("--start", help="start of the first group, YYYY-MM-DDTHH:MM:SS (UTC); "
                     "default: centred on the calibrator's transit, else 2025-10-13T13:28:03")
    sim.add_argument("--dec", type=float, help="pointing declination in degrees "
                     "(default: the calibrator's, else +55)")
    sim.add_argument("--size", choices=sorted(PRESETS), default="tiny", help="size preset")
    sim.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    sim.add_argument("--calibrator", help="VLA calibrator to put in the sky, e.g. 0834+555 or 3C286")
    sim.add_argument("--antennas", type=int, help="number of antennas (overrides the preset)")
    sim.add_argument("--sefd", type=float, default=5800.0, help="system equivalent flux density "
                     "(Jy) setting the thermal noise; 0 for none")
    sim.add_argument("--no-corruptions", action="store_true", help="unit gains and bandpasses")
    sim.add_argument("--layout", choices=("correlator", "pyuvdata"), default="correlator",
                     help="file layout: the telescope writer's (h5py, old-style UVH5; default) "
                     "or pyuvdata's write_uvh5")
    sim.add_argument("--rfi", action="store_true", help="add RFI (persistent narrow-band channels "
                     "and broadband bursts); the flagged truth goes to truth/<group>_rfi.npz")


def _simulate(args: argparse.Namespace) -> int:
    from contimg.simulation.telescope import SimulationRequest, simulate

    try:
        start = naming.parse_timestamp(args.start) if args.start else None
        request = SimulationRequest(
            out_dir=args.out, size=args.size, n_groups=args.groups, start=start,
            dec_deg=args.dec, calibrator=args.calibrator, seed=args.seed, sefd_jy=args.sefd,
            corrupt=not args.no_corruptions, n_antennas=args.antennas, layout=args.layout,
            rfi=args.rfi,
        )
        began = time.perf_counter()
        for group in simulate(request):
            print(f"wrote group {group.group_id}: {len(group.files)} files, truth {group.truth_json}")
    except (ValueError, KeyError) as exc:
        print(f"contimg simulate: error: {exc}", file=sys.stderr)
        return 2
    print(f"done in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
