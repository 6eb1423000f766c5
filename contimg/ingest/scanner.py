"""One pass over the incoming directory: names, sizes and mtimes, no file opened."""

from __future__ import annotations

import os
import stat as stat_module
from dataclasses import dataclass
from pathlib import Path

# The correlator writes `<name>_incomplete.hdf5` and renames it when done; dot-files
# are other writers' partial copies. Neither is looked at until renamed.
WRITING_SUFFIX = "_incomplete.hdf5"


@dataclass(frozen=True)
class FileObservation:
    """An entry seen in the incoming directory (`kind` "file" for a regular file; a
    symlink, fifo, directory or other entry is recorded so it can be rejected)."""

    path: str
    name: str
    size: int
    mtime: float
    kind: str = "file"


def scan_incoming(directory: Path) -> list[FileObservation]:
    """Every non-hidden entry directly in `directory`, with what kind of entry it is."""
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(".") or entry.name.endswith(WRITING_SUFFIX):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed between listing and stat
            found.append(FileObservation(entry.path, entry.name, info.st_size, info.st_mtime,
                                         _kind(info.st_mode)))
    return found


def _kind(mode: int) -> str:
    if stat_module.S_ISREG(mode):
        return "file"
    if stat_module.S_ISLNK(mode):
        return "symlink"
    if stat_module.S_ISDIR(mode):
        return "directory"
    if stat_module.S_ISFIFO(mode):
        return "fifo"
    return "special file"
