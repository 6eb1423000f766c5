"""Weekly archival: images -> Rice-compressed .fits.fz, mosaics -> .tar.gz, staged under
archive/, `rclone sync` to the remote, `rclone check`, archive locations recorded.

A second run finds nothing new to stage and the sync moves nothing.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from contimg.layout import StorageLayout
from contimg.ops.rclone_remote import remote_path, sync_verified
from contimg.state import StateStore
from contimg.state.connection import utc_now, write_transaction


@dataclass(frozen=True)
class CompressionSettings:
    """Rice with quantisation `quantize_level` (noise/q steps), or lossless GZIP_2 when 0."""

    quantize_level: float = 16.0

    @property
    def lossless(self) -> bool:
        """True when archived pixels are bit-for-bit the originals."""
        return self.quantize_level <= 0

    @classmethod
    def from_env(cls) -> CompressionSettings:
        """CONTIMG_ARCHIVE_QUANTIZE_LEVEL (default 16; 0 for lossless)."""
        return cls(float(os.environ.get("CONTIMG_ARCHIVE_QUANTIZE_LEVEL", "16")))


@dataclass
class ArchiveReport:
    """What one archive run staged and where it went."""

    images: list[str] = field(default_factory=list)
    mosaics: list[str] = field(default_factory=list)
    remote: str = ""


def compress_image(source: Path, target: Path, settings: CompressionSettings) -> str:
    """Write `target` (.fits.fz) from a FITS image atomically; return its sha256."""
    with fits.open(source, memmap=False) as hdul:
        data, header = hdul[0].data, hdul[0].header
        if settings.lossless:
            compressed = fits.CompImageHDU(data, header, compression_type="GZIP_2",
                                           quantize_level=0.0)
        else:
            compressed = fits.CompImageHDU(np.asarray(data, np.float32), header,
                                           compression_type="RICE_1",
                                           quantize_level=settings.quantize_level)
        partial = target.with_name(f".{target.name}.partial")
        target.parent.mkdir(parents=True, exist_ok=True)
        fits.HDUList([fits.PrimaryHDU(), compressed]).writeto(partial, overwrite=True)
    os.replace(partial, target)
    return sha256(target)


def tar_mosaic(source: Path, target: Path) -> str:
    """A .tar.gz of a mosaic and its sidecar files (same stem), written atomically."""
    partial = target.with_name(f".{target.name}.partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(partial, "w:gz") as tar:
        for member in sorted(source.parent.glob(f"{source.stem}*")):
            tar.add(member, arcname=member.name)
    os.replace(partial, target)
    return sha256(target)


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def archive_products(layout: StorageLayout, store: StateStore,
                     settings: CompressionSettings | None = None) -> ArchiveReport:
    """Stage every not-yet-archived image and mosaic, sync the archive to the remote,
    verify it, and record each archive location (with its checksum)."""
    settings = settings or CompressionSettings.from_env()
    report = ArchiveReport(remote=remote_path(layout, "archive"))
    staged: list[tuple[str, int, str, str]] = []
    for row in store.query("products", "SELECT id, path FROM images WHERE archive_path IS NULL"
                                       " AND status != 'purged'"):
        source = Path(row["path"])
        relative = Path("images") / f"{source.stem}.fits.fz"
        digest = compress_image(source, layout.archive_dir / relative, settings)
        staged.append(("images", row["id"], str(relative), digest))
        report.images.append(str(relative))
    for row in store.query("products", "SELECT id, path FROM mosaics WHERE archive_path IS NULL"
                                       " AND status != 'purged'"):
        source = Path(row["path"])
        relative = Path("images") / "mosaics" / f"{source.stem}.tar.gz"
        digest = tar_mosaic(source, layout.archive_dir / relative)
        staged.append(("mosaics", row["id"], str(relative), digest))
        report.mosaics.append(str(relative))
    sync_verified(layout.archive_dir, report.remote)
    _record(store, staged, report.remote)
    return report


_RECORD_SQL = {
    table: f"UPDATE {table} SET archive_path = ?, archive_staged = ?, archive_sha256 = ?"
           " WHERE id = ?" for table in ("images", "mosaics")
}


def _record(store: StateStore, staged: list[tuple[str, int, str, str]], remote: str) -> None:
    conn = store.connection("products")
    with write_transaction(conn):
        for table, row_id, relative, digest in staged:
            conn.execute(_RECORD_SQL[table], (f"{remote}/{relative}", relative, digest, row_id))
        conn.execute("INSERT INTO file_moves (moved_at, source, destination, action, reason,"
                     " actor) VALUES (?, ?, ?, 'archive', ?, 'archive')",
                     (utc_now(), "archive/", remote, f"{len(staged)} product(s) staged and synced"))
