"""`contimg doctor`: the resolved layout, free space per volume, state databases (each
`PRAGMA quick_check`ed), tool versions, problems."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

from contimg.layout import LayoutError, StorageLayout
from contimg.settings import SettingsError, load_settings
from contimg.state import DATABASES, StateStore
from contimg.state.connection import DRIVER_ERRORS, StateDatabaseError, configured_state_url
from contimg.state.postgres import shown_url

RESTORE_FIX = ("Fix: stop the platform, then `contimg restore --list` and "
               "`contimg restore --backup <set> --yes`.")


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
        settings = load_settings()
        layout = settings.layout.ensure()
    except (LayoutError, SettingsError) as exc:
        print_line(f"SETTINGS ERROR: {exc}")
        return 1
    _print_layout(layout, print_line)
    print_line("settings:")
    for line in settings.describe():
        print_line(f"  {line}")
    _print_volumes(layout, print_line)
    problems.extend(check_state_databases(layout.state_dir, print_line))
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


def quick_check(path: Path) -> str:
    """`PRAGMA quick_check` of one database file: "ok", or what SQLite found wrong."""
    try:
        conn = sqlite3.connect(path)
        try:
            rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)")]
        finally:
            conn.close()
    except sqlite3.Error as exc:  # e.g. "file is not a database"
        return str(exc)
    return "ok" if rows == ["ok"] else "; ".join(rows)


def check_state_databases(state_dir: Path, print_line: Callable[[str], None] = print) -> list[str]:
    """Check every existing state database, then open (create or migrate) them all.

    Returns one problem per broken or lost database, each naming the file and the fix.
    """
    problems = []
    on_postgres = bool(configured_state_url())
    for name in DATABASES:
        path = state_dir / f"{name}.sqlite3"
        if not on_postgres and path.exists():
            result = quick_check(path)
            if result != "ok":
                problems.append(f"state database {name} ({path}) is damaged: quick_check says "
                                f"{result!r}. {RESTORE_FIX}")
    if problems:
        return problems  # opening a damaged database would only repeat the same failure
    try:
        with StateStore(state_dir) as store:  # closed: doctor must not hold the state lock
            versions = store.migrate_all()
            where = f" on {shown_url(store.url)}" if store.url else ""
        print_line(f"state databases{where}: " + ", ".join(f"{k} v{v} ok" for k, v in versions.items()))
    except (StateDatabaseError, *DRIVER_ERRORS, RuntimeError) as exc:
        problems.append(f"state databases: {exc}")
    return problems


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
