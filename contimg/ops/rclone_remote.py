"""The rclone remote: copy, sync and verify, through rclone-python and the rclone binary.

The remote is `CONTIMG_RCLONE_REMOTE`: any rclone destination, e.g. `archive:dsa110`
for a remote in rclone.conf, or a plain directory (the embedded default,
`<CONTIMG_HOME>/remote`) which rclone treats as a local remote.
"""

from __future__ import annotations

import os
from pathlib import Path

from rclone_python import rclone

from contimg.layout import StorageLayout


class ArchiveVerificationError(RuntimeError):
    """The remote copy does not match the local files."""


def remote_root(layout: StorageLayout) -> str:
    """The configured remote, or the local-directory default beside the data."""
    configured = os.environ.get("CONTIMG_RCLONE_REMOTE")
    if configured:
        return configured.rstrip("/")
    default = layout.paths["CONTIMG_DATA_DIR"].parent / "remote"
    default.mkdir(parents=True, exist_ok=True)
    return str(default)


def remote_path(layout: StorageLayout, *parts: str) -> str:
    """A path below the remote root."""
    return "/".join([remote_root(layout), *parts])


def copy_verified(source: Path, destination: str) -> None:
    """Copy a directory to the remote (adding, never deleting), then verify every file."""
    rclone.copy(str(source), destination, show_progress=False)
    verify(source, destination)


def sync_verified(source: Path, destination: str) -> None:
    """Make the remote directory match the local one, then verify it."""
    rclone.sync(str(source), destination, show_progress=False)
    verify(source, destination)


def verify(source: Path, destination: str) -> None:
    """rclone check (sizes and hashes) of every local file against the remote."""
    matched, details = rclone.check(str(source), destination, one_way=True)
    if not matched:
        bad = [path for symbol, path in details if symbol != "="]
        raise ArchiveVerificationError(
            f"remote {destination} does not match {source}: {bad[:10]}. Fix: rerun the copy; "
            "if it persists, check the remote's health.")
