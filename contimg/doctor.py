"""`contimg doctor`: the resolved layout, free space per volume, tool versions, problems."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

from contimg.layout import LayoutError, StorageLayout, resolve_layout
from contimg.state import StateStore


def tool_version(command: list[str]) -> str:
    """First line a tool prints for its version, or raise RuntimeError naming the fix."""
    if shutil.which(command[0]) is None:
        raise RuntimeError(f"{command[0]} not found on PATH. Fix: run scripts/setup.sh.")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    lines = [ln.strip() for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError(f"{' '.join(command)} printed nothing (exit {result.returncode}).")
    return next((ln for ln in lines if "version" in ln.lower() or ln.startswith("rclone")), lines[0])


def casa_version() -> str:
    """casatools version, imported in this process (proves CASA loads offline)."""
    import casatools

    return f"casatools {casatools.version_string()}"


def run_doctor(print_line: Callable[[str], None] = print) -> int:
    """Print the report; return 0 when everything is usable, 1 otherwise."""
    problems: list[str] = []
    try:
        layout = resolve_layout().ensure()
    except LayoutError as exc:
        print_line(f"LAYOUT ERROR: {exc}")
        return 1
    _print_layout(layout, print_line)
    _print_volumes(layout, print_line)
    try:
        versions = StateStore(layout.state_dir).migrate_all()
        print_line("state databases: " + ", ".join(f"{k} v{v}" for k, v in versions.items()))
    except Exception as exc:  # noqa: BLE001 - report any failure to the operator
        problems.append(f"state databases: {exc}")
    checks = {
        "CASA": casa_version,
        "WSClean": lambda: tool_version(["wsclean", "--version"]),
        "rclone": lambda: tool_version(["rclone", "version"]),
        "AOFlagger": lambda: tool_version(["aoflagger", "--version"]),
    }
    for name, check in checks.items():
        try:
            print_line(f"{name:10s} {check()}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{name}: {exc}")
    for problem in problems:
        print_line(f"PROBLEM: {problem}")
    print_line("doctor: OK" if not problems else f"doctor: {len(problems)} problem(s)")
    return 0 if not problems else 1


def _print_layout(layout: StorageLayout, print_line: Callable[[str], None]) -> None:
    print_line("layout:")
    for name, path in layout.directories().items():
        origin = layout.origins.get(name, "")
        print_line(f"  {name:22s} {path}  {('(' + origin + ')') if origin else ''}")
    tmpfs = "usable" if layout.tmpfs_usable() else "unusable: staging falls back to scratch"
    print_line(f"  tmpfs staging: {tmpfs}")


def _print_volumes(layout: StorageLayout, print_line: Callable[[str], None]) -> None:
    print_line("volumes:")
    seen: set[int] = set()
    for name, path in layout.directories().items():
        if not path.exists():
            continue
        device = os.stat(path).st_dev
        if device in seen:
            continue
        seen.add(device)
        usage = shutil.disk_usage(path)
        print_line(f"  {str(path):40s} free {usage.free / 1e9:8.1f} GB of {usage.total / 1e9:8.1f} GB"
                   f" ({100 * usage.used / usage.total:.0f}% used)  [{name}]")
