"""Flag a group's Measurement Set before solving: autocorrelations, zeros, NaNs/infs, and RFI.

Three passes over the MS, each in row chunks so memory stays bounded on a full group
(`ROW_CHUNK` rows of DATA at a time, ~100 MB):

1. pre-flag: autocorrelations (a solver wants cross-correlations only), samples that are
   exactly zero (a missing subband, a dead correlator input) and samples that are not
   finite; FLAG_ROW is folded into FLAG. Existing flags are ORed in, never cleared, and a
   bit-packed copy of the result is kept in memory (1/8 byte per sample, 21 MB on a full
   group);
2. AOFlagger (the Debian package's `aoflagger` command; no Python module is installed) on
   the DATA column of the cross-correlations with the repository's strategy
   `strategies/dsa110.lua`;
3. restore and count: the kept copy is ORed back (whatever a strategy does, a flag set
   before AOFlagger survives it), and the flag fractions are counted.

Fractions per antenna and per channel count the cross-correlations only (autocorrelations
are always flagged and would only add 1/Nant to every antenna); the totals count every
sample of the MS. The flagging never reads a simulator's truth.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from casacore import tables

ROW_CHUNK = 8192  # rows per chunk: 8192 x 768 x 2 complex64 = 100 MB of DATA
READ_MODES = ("auto", "direct", "indirect", "memory")
AOFLAGGER_TIMEOUT_S = 1800.0


class FlaggingError(RuntimeError):
    """Flagging could not run (AOFlagger missing or failing, an unreadable MS)."""


def default_strategy() -> Path:
    """The repository's AOFlagger strategy for DSA-110 groups (shipped as package data)."""
    return Path(str(resources.files("contimg.calibration") / "strategies" / "dsa110.lua"))


@dataclass
class FlagCounts:
    """Flagged and total samples, per antenna and per channel (cross-correlations) and in all."""

    n_antennas: int
    n_channels: int
    flagged: int = 0
    total: int = 0
    cross_flagged: int = 0
    cross_total: int = 0
    antenna_flagged: np.ndarray = field(init=False)
    antenna_total: np.ndarray = field(init=False)
    channel_flagged: np.ndarray = field(init=False)
    channel_total: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.antenna_flagged = np.zeros(self.n_antennas, np.int64)
        self.antenna_total = np.zeros(self.n_antennas, np.int64)
        self.channel_flagged = np.zeros(self.n_channels, np.int64)
        self.channel_total = np.zeros(self.n_channels, np.int64)

    def add(self, flags: np.ndarray, ant1: np.ndarray, ant2: np.ndarray) -> None:
        """Count one chunk: flags (rows, channels, pols) with the rows' antennas."""
        self.flagged += int(flags.sum())
        self.total += flags.size
        cross = ant1 != ant2
        per_row = flags[cross].sum(axis=(1, 2))
        samples_per_row = flags.shape[1] * flags.shape[2]
        self.cross_flagged += int(per_row.sum())
        self.cross_total += int(cross.sum()) * samples_per_row
        for antennas in (ant1[cross], ant2[cross]):
            self.antenna_flagged += np.bincount(antennas, per_row, self.n_antennas).astype(np.int64)
            self.antenna_total += np.bincount(antennas, minlength=self.n_antennas) * samples_per_row
        self.channel_flagged += flags[cross].sum(axis=(0, 2))
        self.channel_total += int(cross.sum()) * flags.shape[2]

    @property
    def fraction(self) -> float:
        return self.flagged / self.total if self.total else 0.0

    @property
    def cross_fraction(self) -> float:
        return self.cross_flagged / self.cross_total if self.cross_total else 0.0


@dataclass
class FlagReport:
    """What flagging did to one MS: totals before/after, fractions per antenna and channel."""

    ms_path: str
    strategy: str
    before_fraction: float  # every sample, before this call
    preflag_fraction: float  # after autocorrelations, zeros and non-finite values
    after_fraction: float  # after AOFlagger (every sample)
    cross_fraction: float  # after AOFlagger, cross-correlations only
    antenna_names: list[str]  # antennas present in the data, in ANTENNA-table order
    antenna_fraction: np.ndarray  # per antenna in `antenna_names`, cross-correlations
    freqs_hz: np.ndarray  # channel frequencies (MS order, ascending)
    channel_fraction: np.ndarray  # per channel, cross-correlations
    seconds: dict[str, float]  # per pass: preflag, aoflagger, restore_count, total

    def metadata(self) -> dict[str, object]:
        """A JSON-able summary for an asset's metadata (worst antennas and channels first)."""
        worst_ant = np.argsort(self.antenna_fraction)[::-1][:5]
        worst_chan = np.argsort(self.channel_fraction)[::-1][:5]
        return {
            "flag_fraction_before": round(self.before_fraction, 5),
            "flag_fraction_preflag": round(self.preflag_fraction, 5),
            "flag_fraction_after": round(self.after_fraction, 5),
            "flag_fraction_cross": round(self.cross_fraction, 5),
            "worst_antennas": {self.antenna_names[i]: round(float(self.antenna_fraction[i]), 4)
                               for i in worst_ant},
            "worst_channels_mhz": {f"{self.freqs_hz[i] / 1e6:.3f}": round(float(self.channel_fraction[i]), 4)
                                   for i in worst_chan},
            "flag_seconds": round(self.seconds.get("total", 0.0), 2),
            "strategy": self.strategy,
        }


def flag_ms(ms_path: Path, *, strategy: Path | None = None, rfi: bool = True,
            read_mode: str = "auto", threads: int | None = None,
            row_chunk: int = ROW_CHUNK) -> FlagReport:
    """Flag `ms_path` in place (FLAG column) and report the fractions.

    `rfi=False` skips AOFlagger (only autocorrelations, zeros and non-finite values).
    `read_mode` is AOFlagger's (`auto` reads into memory when it fits); `threads` caps
    its threads (default: one per core).
    """
    ms_path = Path(ms_path)
    strategy = Path(strategy) if strategy else default_strategy()
    if read_mode not in READ_MODES:
        raise ValueError(f"read_mode must be one of {READ_MODES}, got {read_mode!r}")
    if not (ms_path / "table.dat").exists():
        raise FlaggingError(f"{ms_path} is not a Measurement Set (no table.dat)")
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    before, preflagged, snapshot = preflag(ms_path, row_chunk)
    seconds["preflag"] = time.perf_counter() - began
    if rfi:
        lap = time.perf_counter()
        run_aoflagger(ms_path, strategy, read_mode=read_mode, threads=threads)
        seconds["aoflagger"] = time.perf_counter() - lap
    lap = time.perf_counter()
    after = restore_and_count(ms_path, snapshot, row_chunk)
    seconds["restore_count"] = time.perf_counter() - lap
    seconds["total"] = time.perf_counter() - began
    return _report(ms_path, strategy if rfi else None, before, preflagged, after, seconds)


def preflag(ms_path: Path, row_chunk: int = ROW_CHUNK) -> tuple[FlagCounts, FlagCounts, list[np.ndarray]]:
    """Flag autocorrelations, zeros and non-finite samples; keep existing flags.

    Returns the counts before and after, and the bit-packed flags per chunk (to OR back
    after AOFlagger).
    """
    snapshot = []
    with tables.table(str(ms_path), readonly=False, ack=False) as main:
        n_ant, n_chan = _dimensions(ms_path)
        before, after = FlagCounts(n_ant, n_chan), FlagCounts(n_ant, n_chan)
        for start, count in _chunks(main.nrows(), row_chunk):
            ant1, ant2 = main.getcol("ANTENNA1", start, count), main.getcol("ANTENNA2", start, count)
            flags = main.getcol("FLAG", start, count)
            flags |= main.getcol("FLAG_ROW", start, count)[:, None, None]
            before.add(flags, ant1, ant2)
            data = main.getcol("DATA", start, count)
            new = flags | (data == 0) | ~np.isfinite(data)
            new[ant1 == ant2] = True
            if not np.array_equal(new, flags):
                main.putcol("FLAG", new, start, count)
            after.add(new, ant1, ant2)
            snapshot.append(np.packbits(new, axis=None))
    return before, after, snapshot


def run_aoflagger(ms_path: Path, strategy: Path, *, read_mode: str = "auto",
                  threads: int | None = None, executable: str = "aoflagger") -> None:
    """Run AOFlagger's command on the DATA column of the cross-correlations."""
    binary = shutil.which(executable)
    if binary is None:
        raise FlaggingError(f"{executable!r} not found: install the Debian package 'aoflagger' "
                            "(scripts/setup.sh does)")
    if not Path(strategy).is_file():
        raise FlaggingError(f"AOFlagger strategy {strategy} does not exist")
    command = [binary, "-strategy", str(strategy), "-column", "DATA", "-baselines", "cross",
               f"-{read_mode}-read" if read_mode != "auto" else "-auto-read-mode"]
    if threads:
        command += ["-j", str(threads)]
    try:
        done = subprocess.run(command + [str(ms_path)], capture_output=True, text=True,
                              timeout=AOFLAGGER_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise FlaggingError(f"AOFlagger on {ms_path} took longer than {AOFLAGGER_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise FlaggingError(f"AOFlagger failed on {ms_path} (exit {done.returncode}): "
                            + " | ".join(tail))


def restore_and_count(ms_path: Path, snapshot: list[np.ndarray], row_chunk: int = ROW_CHUNK) -> FlagCounts:
    """OR the pre-AOFlagger flags back in (a strategy may not clear them) and count."""
    with tables.table(str(ms_path), readonly=False, ack=False) as main:
        n_ant, n_chan = _dimensions(ms_path)
        counts = FlagCounts(n_ant, n_chan)
        for (start, count), packed in zip(_chunks(main.nrows(), row_chunk), snapshot, strict=True):
            flags = main.getcol("FLAG", start, count)
            kept = np.unpackbits(packed, count=flags.size).astype(bool).reshape(flags.shape)
            if (kept & ~flags).any():
                flags |= kept
                main.putcol("FLAG", flags, start, count)
            counts.add(flags, main.getcol("ANTENNA1", start, count), main.getcol("ANTENNA2", start, count))
    return counts


def _report(ms_path: Path, strategy: Path | None, before: FlagCounts, preflagged: FlagCounts,
            after: FlagCounts, seconds: dict[str, float]) -> FlagReport:
    with tables.table(str(ms_path / "ANTENNA"), ack=False) as antennas:
        names = list(antennas.getcol("NAME"))
    with tables.table(str(ms_path / "SPECTRAL_WINDOW"), ack=False) as spw:
        freqs = spw.getcol("CHAN_FREQ")[0]
    present = np.flatnonzero(after.antenna_total)
    return FlagReport(
        ms_path=str(ms_path), strategy=str(strategy) if strategy else "none (AOFlagger skipped)",
        before_fraction=before.fraction, preflag_fraction=preflagged.fraction,
        after_fraction=after.fraction, cross_fraction=after.cross_fraction,
        antenna_names=[names[i] for i in present],
        antenna_fraction=after.antenna_flagged[present] / after.antenna_total[present],
        freqs_hz=np.asarray(freqs),
        channel_fraction=after.channel_flagged / np.maximum(after.channel_total, 1),
        seconds=seconds,
    )


def _dimensions(ms_path: Path) -> tuple[int, int]:
    """(antennas in the ANTENNA table, channels of the single spectral window)."""
    with tables.table(str(ms_path / "ANTENNA"), ack=False) as antennas:
        n_ant = antennas.nrows()
    with tables.table(str(ms_path / "SPECTRAL_WINDOW"), ack=False) as spw:
        if spw.nrows() != 1:
            raise FlaggingError(f"{ms_path}: expected one spectral window, found {spw.nrows()}")
        n_chan = int(spw.getcell("NUM_CHAN", 0))
    return n_ant, n_chan


def _chunks(n_rows: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n_rows, size):
        yield start, min(size, n_rows - start)
