"""Benchmarks (not tests): each prints its figures and, last, one JSON line."""

from __future__ import annotations

import argparse


def run_benchmark(args: argparse.Namespace) -> int:
    """Dispatch `contimg bench <name>`."""
    if args.benchmark == "conversion":
        from contimg.benchmarks.conversion import bench_conversion

        return bench_conversion(args.size, args.work)
    if args.benchmark == "partitions":
        from contimg.benchmarks.partitions import bench_partitions

        return bench_partitions(args.count)
    from contimg.benchmarks.sensor import bench_sensor

    return bench_sensor(args.files, args.work)
