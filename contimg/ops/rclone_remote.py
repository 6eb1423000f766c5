"""The rclone remote: copy and verify, through rclone-python and the rclone binary.

The remote is `CONTIMG_RCLONE_REMOTE`: any rclone destination, e.g. `archive:dsa110`
for a remote in rclone.conf, or a plain directory (the embedded default,
`<CONTIMG_HOME>/remote`) which rclone treats as a local remote.

Everything here only ever adds to the remote: `rclone copy` (never `sync`, which
mirrors local deletions and so erased the remote archive when the local staging was
emptied), with `--immutable` so a file already on the remote is never overwritten
with different content — a changed product is archived under a new name instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from rclone_python import rclone
from rclone_python.utils import RcloneException

from contimg.layout import StorageLayout
from contimg.secrets import redact_remote
from contimg.settings import load_settings

ADD_ONLY = ["--immutable"]  # never modify a remote file; fail loudly if one differs


class ArchiveVerificationError(RuntimeError):
    """The remote copy does not match the local files."""


def remote_root(layout: StorageLayout) -> str:
    """The configured remote, or the local-directory default beside the data."""
    configured = str(load_settings()["CONTIMG_RCLONE_REMOTE"])
    if configured:
        return configured.rstrip("/")
    default = layout.paths["CONTIMG_DATA_DIR"].parent / "remote"
    default.mkdir(parents=True, exist_ok=True)
    return str(default)


def remote_path(layout: StorageLayout, *parts: str) -> str:
    """A path below the remote root."""
    return "/".join([remote_root(layout), *parts])


def copy_verified(source: Path, destination: str, files: Sequence[str] | None = None) -> None:
    """Copy a directory (or only `files`, paths relative to it) to the remote — adding,
    never deleting or overwriting — then verify every copied file (size and hash)."""
    if files is not None and not files:
        return  # nothing to copy: an empty --files-from would be a no-op anyway
    with tempfile.TemporaryDirectory(prefix="contimg-rclone-") as tmp:
        selection = _files_from(Path(tmp), files)
        try:
            rclone.copy(str(source), destination, show_progress=False,
                        args=[*ADD_ONLY, *selection])
        except RcloneException as exc:  # its text names the remote, credentials and all
            raise ArchiveVerificationError(redact_remote(
                f"copy of {source} to {destination} failed: {exc}"[:4000]
                + ". Fix: check the remote; a file that differs from one already on the "
                "remote is refused (the archive never overwrites).")) from None
        verify(source, destination, selection)


def remote_names(destination: str) -> set[str]:
    """Names of the files directly in a remote folder (empty when it does not exist yet)."""
    try:
        return {str(entry["Name"]) for entry in rclone.ls(destination, max_depth=1, files_only=True)}
    except RcloneException:
        return set()  # no such folder yet: nothing is taken


def verify(source: Path, destination: str, selection: Sequence[str] = ()) -> None:
    """rclone check (sizes and hashes) of the local files against the remote, one way:
    files only on the remote are expected (the remote keeps what the local side dropped)."""
    matched, details = rclone.check(str(source), destination, one_way=True, args=list(selection))
    if not matched:
        bad = [path for symbol, path in details if symbol != "="]
        raise ArchiveVerificationError(redact_remote(
            f"remote {destination} does not match {source}: {bad[:10]}. Fix: rerun the copy; "
            "if it persists, check the remote's health."))


def _files_from(tmp: Path, files: Sequence[str] | None) -> list[str]:
    """rclone flags restricting a copy/check to `files` (none: the whole directory)."""
    if files is None:
        return []
    listing = tmp / "files-from.txt"
    listing.write_text("".join(f"{name}\n" for name in files))
    return ["--files-from", f'"{listing}"']
