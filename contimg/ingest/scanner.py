"""One pass over the incoming directory: names, sizes and mtimes, no file opened."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileObservation:
    """A regular file seen in the incoming directory."""

    path: str
    name: str
    size: int
    mtime: float


def scan_incoming(directory: Path) -> list[FileObservation]:
    """Every regular, non-hidden file directly in `directory` (hidden = being written)."""
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
            found.append(FileObservation(entry.path, entry.name, stat.st_size, stat.st_mtime))
    return found
