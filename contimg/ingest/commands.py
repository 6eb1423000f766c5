"""Operator commands on the ingest registry: list groups, put a group back in line."""

from __future__ import annotations

import argparse
import sys

from contimg import naming
from contimg.ingest.registry import IngestRegistry
from contimg.ingest.settings import IngestSettings
from contimg.settings import load_settings
from contimg.state import StateStore


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`contimg groups` and `contimg requeue GROUP`."""
    groups = commands.add_parser("groups", help="list observation groups and their state")
    groups.add_argument("--state", help="only groups in this state (e.g. failed)")
    groups.add_argument("--limit", type=int, default=50, help="newest N groups (default 50)")
    requeue = commands.add_parser("requeue", help="convert a group again (new run key)")
    requeue.add_argument("groups", nargs="+", help="group id(s), YYYY-MM-DDTHH:MM:SS")
    requeue.add_argument("--reason", default="requested by an operator")
    requeue.add_argument("--force", action="store_true",
                         help="also a completed group (move its MS aside first)")


def run_command(args: argparse.Namespace) -> int:
    """Run `groups` or `requeue`; the sensor requests the runs on its next tick."""
    settings = load_settings()
    store = StateStore(settings.layout.ensure().state_dir)
    try:
        registry = IngestRegistry(store, IngestSettings.from_settings(settings))
        if args.command == "groups":
            for row in registry.list_groups(args.state, args.limit):
                print(f"{row[0]}  {row[1]:11s} {row[2]:2d} subbands  {row[3] or ''}")
            return 0
        status = 0
        for group in args.groups:
            try:
                group_iso = naming.iso_timestamp(group)
                state = registry.requeue(group_iso, args.reason, force=args.force)
            except (KeyError, ValueError) as exc:
                print(f"contimg requeue: error: {exc.args[0]}", file=sys.stderr)
                status = 2
                continue
            print(f"{group_iso}: {state}; the incoming sensor requests its run on the next tick")
        return status
    finally:
        store.close()
