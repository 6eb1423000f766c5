"""`contimg bench {conversion,sensor,partitions,calibration,arrival,day,mosaic}` (or `python -m benchmarks
...`): the performance targets, measured."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse the benchmark's name and options, then run it."""
    parser = argparse.ArgumentParser(prog="contimg bench", description=__doc__)
    which = parser.add_subparsers(dest="benchmark", required=True)
    conv = which.add_parser("conversion", help="our converter vs pyuvdata on one group")
    conv.add_argument("--size", default="full", help="simulator size preset")
    conv.add_argument("--work", type=Path, default=Path("/tmp/contimg-bench"),
                      help="where to simulate (reused when present) and write")
    conv.add_argument("--layout", choices=("correlator", "pyuvdata"), default="correlator",
                      help="file layout of the simulated group (default: the correlator's)")
    sens = which.add_parser("sensor", help="one incoming-sensor tick over many files")
    sens.add_argument("--files", type=int, default=31000, help="files in the incoming directory")
    sens.add_argument("--work", type=Path, default=Path("/tmp/contimg-bench-sensor"))
    part = which.add_parser("partitions", help="a year of group partitions in Dagster")
    part.add_argument("--count", type=int, default=100_000, help="partition keys to create")
    part.add_argument("--reference", type=int, default=1000, help="the small N measured alongside")
    part.add_argument("--work", type=Path, default=Path("/tmp/contimg-bench-partitions"),
                      help="where the instances are made (replaced each run)")
    part.add_argument("--live-days", type=_live_days, default=None, metavar="DAYS",
                      help="then prune the year to its newest DAYS of keys (the live_partitions "
                           "operation) and measure again, beside an instance of only those keys")
    cal = which.add_parser("calibration", help="calibration stages beside CASA's own path")
    cal.add_argument("--size", default="full", help="simulator size preset")
    cal.add_argument("--work", type=Path, default=Path("/tmp/contimg-bench"),
                     help="where to simulate (reused when present) and write")
    cal.add_argument("--parts", nargs="*", default=None,
                     help="parts to run (default: all registered in benchmarks.calibration.PARTS)")
    arr = which.add_parser("arrival", help="one group from arrival to registered image, live")
    arr.add_argument("--size", default="full", help="simulator size preset")
    arr.add_argument("--work", type=Path, default=Path("/tmp/contimg-bench"),
                     help="where to simulate (reused when present) and run the platform")
    day = which.add_parser("day", help="a simulated day of tiny groups through the live platform")
    day.add_argument("--groups", type=int, default=279, help="groups (279 make a sidereal day)")
    day.add_argument("--speedup", type=float, default=10.0,
                     help="how many times faster than the telescope's 309 s cadence")
    day.add_argument("--work", type=Path, default=Path("/tmp/contimg-bench"),
                     help="where the platform's home is made (replaced each run)")
    day.add_argument("--timeout-min", type=float, default=None,
                     help="stop after this long and report what was done (default: 3 × the "
                          "feeding time + 15 min)")
    mos = which.add_parser("mosaic", help="an hourly mosaic of 12 images beside a per-image loop")
    mos.add_argument("--size", default="full", choices=("full", "small", "tiny"),
                     help="image side: full 2070^2, small 768^2, tiny 256^2 (a 3.5 deg field)")
    mos.add_argument("--work", type=Path, default=Path("/tmp/contimg-bench"),
                     help="where the synthesized images are written (reused when present)")
    mos.add_argument("--parts", nargs="*", default=["mosaic", "photometry", "variability"],
                     choices=("mosaic", "photometry", "variability"),
                     help="which parts to run (default: all three)")
    args = parser.parse_args(argv)
    if args.benchmark == "mosaic":
        from benchmarks.mosaic import run

        return run(args.size, args.work, tuple(args.parts))
    if args.benchmark == "arrival":
        from benchmarks.arrival import bench_arrival

        return bench_arrival(args.size, args.work)
    if args.benchmark == "day":
        from benchmarks.day import bench_day

        return bench_day(args.groups, args.speedup, args.work, args.timeout_min)
    if args.benchmark == "calibration":
        from benchmarks.calibration import bench_calibration

        return bench_calibration(args.size, args.work, args.parts)
    if args.benchmark == "conversion":
        from benchmarks.conversion import bench_conversion

        return bench_conversion(args.size, args.work, args.layout)
    if args.benchmark == "partitions":
        from benchmarks.partitions import bench_partitions

        return bench_partitions(args.count, args.reference, args.work, args.live_days)
    from benchmarks.sensor import bench_sensor

    return bench_sensor(args.files, args.work)


def _live_days(text: str) -> float:
    """`--live-days`: validated as CONTIMG_LIVE_PARTITION_DAYS is (a number >= 1)."""
    from contimg.settings import SPECS, SettingsError, parse_value

    spec = next(s for s in SPECS if s.variable == "CONTIMG_LIVE_PARTITION_DAYS")
    try:
        value = parse_value(spec, text, "--live-days")
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value is None:
        raise argparse.ArgumentTypeError("--live-days needs a number of days")
    return float(value)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
