"""Weekly archival: images -> Rice-compressed .fits.fz, mosaics -> .tar.gz, staged under
archive/, `rclone copy` of what was staged to the remote, `rclone check` of it, and the
archive locations recorded.

The archive only ever adds to the remote: nothing there is deleted or overwritten, so
emptying the local `archive/` staging (a rebuilt disk, an operator's `rm`) loses nothing.
With each archive copy the sha256 of the source file as it was archived is recorded:
retention deletes a local file only while it still has that checksum. A product
changed after archiving is marked for re-archive by retention and staged anew here,
under a name carrying its content's checksum, beside (never over) the earlier copy.
A second run finds nothing new to stage and copies nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from contimg.layout import StorageLayout
from contimg.ops.rclone_remote import copy_verified, remote_names, remote_path
from contimg.secrets import redact_remote
from contimg.settings import load_settings
from contimg.state import StateStore
from contimg.state.connection import write_transaction
from contimg.state.products_db import (
    archive_name_taken,
    products_to_archive,
    record_archived,
    record_move,
)

DITHER_SEED_CHECKSUM = -1  # dither seeded from the data: the same image compresses to the same bytes


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
        """CONTIMG_ARCHIVE_QUANTIZE_LEVEL (default 16; 0 for lossless), validated."""
        return cls(float(load_settings()["CONTIMG_ARCHIVE_QUANTIZE_LEVEL"]))  # type: ignore[arg-type]


@dataclass
class ArchiveReport:
    """What one archive run staged and where it went."""

    images: list[str] = field(default_factory=list)
    mosaics: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # changed while being archived
    remote: str = ""  # where it went, credentials masked (safe to log and alert)


@dataclass(frozen=True)
class Staged:
    """One product written into the staging area, not yet recorded."""

    table: str
    row_id: int
    relative: str
    sha256: str
    source_sha256: str


def compress_image(source: Path, target: Path, settings: CompressionSettings) -> str:
    """Write `target` (.fits.fz) from a FITS image atomically; return its sha256.

    The output is deterministic (dither seeded from the data), so staging the same
    image again yields the same bytes and the add-only copy has nothing to change."""
    with fits.open(source, memmap=False) as hdul:
        data, header = hdul[0].data, hdul[0].header
        if settings.lossless:
            compressed = fits.CompImageHDU(data, header, compression_type="GZIP_2",
                                           quantize_level=0.0)
        else:
            compressed = fits.CompImageHDU(np.asarray(data, np.float32), header,
                                           compression_type="RICE_1",
                                           quantize_level=settings.quantize_level,
                                           dither_seed=DITHER_SEED_CHECKSUM)
        partial = target.with_name(f".{target.name}.partial")
        target.parent.mkdir(parents=True, exist_ok=True)
        fits.HDUList([fits.PrimaryHDU(), compressed]).writeto(partial, overwrite=True)
    os.replace(partial, target)
    return sha256(target)


def tar_mosaic(source: Path, target: Path) -> str:
    """A .tar.gz of a mosaic and its sidecar files (same stem), written atomically and
    deterministically (gzip header time 0), so a re-staged mosaic is byte-identical."""
    partial = target.with_name(f".{target.name}.partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
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


def archive_name(source: Path, suffix: str, source_sha256: str, plain_free: bool) -> str:
    """`<stem><suffix>` when that name is free; otherwise (a re-archive, a product of the
    same stem elsewhere, a leftover staged file) `<stem>.<sha12><suffix>`, named by the
    content, so it sits beside the earlier copy instead of colliding with it."""
    if plain_free:
        return f"{source.stem}{suffix}"
    return f"{source.stem}.{source_sha256[:12]}{suffix}"


def archive_products(layout: StorageLayout, store: StateStore,
                     settings: CompressionSettings | None = None) -> ArchiveReport:
    """Stage every not-yet-archived image and mosaic, copy what was staged to the remote
    (adding only), verify it, and record each archive location with its checksums."""
    settings = settings or CompressionSettings.from_env()
    destination = remote_path(layout, "archive")
    report = ArchiveReport(remote=redact_remote(destination))
    staged: list[Staged] = []
    for table, folder, suffix in (("images", "images", ".fits.fz"),
                                  ("mosaics", "images/mosaics", ".tar.gz")):
        rows = products_to_archive(store, table)
        # Names already on the remote are taken even when the database forgot them (a
        # restored database, emptied staging): an add-only copy would refuse them.
        on_remote = remote_names(f"{destination}/{folder}") if rows else set()
        for row in rows:
            item = _stage(layout, store, table, row, (folder, suffix), settings, on_remote)
            if item is None:
                report.skipped.append(row["path"])
                continue
            staged.append(item)
            getattr(report, table).append(item.relative)
    copy_verified(layout.archive_dir, destination, [item.relative for item in staged])
    _record(store, staged, report.remote)
    return report


def _stage(layout: StorageLayout, store: StateStore, table: str, row, naming: tuple[str, str],
           settings: CompressionSettings, on_remote: set[str]) -> Staged | None:
    """Compress or tar one product into the staging area; None when the source is gone
    or changed while it was read (it is tried again next run, never half-recorded)."""
    source, (folder, suffix) = Path(row["path"]), naming
    try:
        before = sha256(source)
    except FileNotFoundError:
        return None
    plain = f"{folder}/{source.stem}{suffix}"
    plain_free = (row["archive_staged"] is None and not (layout.archive_dir / plain).exists()
                  and f"{source.stem}{suffix}" not in on_remote
                  and not archive_name_taken(store, table, plain, row["id"]))
    relative = f"{folder}/{archive_name(source, suffix, before, plain_free)}"
    target = layout.archive_dir / relative
    digest = (compress_image(source, target, settings) if table == "images"
              else tar_mosaic(source, target))
    if sha256(source) != before:
        target.unlink(missing_ok=True)
        return None
    return Staged(table, row["id"], relative, digest, before)


def _record(store: StateStore, staged: list[Staged], remote: str) -> None:
    """Every archive location and checksum, and one audit row, in one transaction.
    `remote` is already redacted: credentials in CONTIMG_RCLONE_REMOTE are never stored
    (retention finds the copy again from the remote setting and `archive_staged`)."""
    conn = store.connection("products")
    with write_transaction(conn):
        for item in staged:
            record_archived(conn, item.table, item.row_id, archive_path=f"{remote}/{item.relative}",
                            staged=item.relative, sha256=item.sha256,
                            source_sha256=item.source_sha256)
        record_move(conn, "archive/", remote, action="archive", actor="archive",
                    reason=f"{len(staged)} product(s) staged, copied and verified")
