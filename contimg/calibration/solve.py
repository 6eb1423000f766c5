"""Bandpass and gain solves against MODEL_DATA (the sky model in Jy).

The telescope's own pipeline normalised the bandpass and solved phase-only gains,
so its images had no flux scale. Here the daily set from a calibrator transit is:
optional delay K, bandpass B (solint inf, normalised), phase-only gains per group
(`_gpcal`) and amplitude+phase gains on a short timescale (`_2gcal`) — the last
carries the flux scale from the model in Jy. The hourly set is `_gpcal` + `_2gcal`
with the active bandpass applied. Tables are written into a workspace and placed by
the caller (atomic moves, then one registry transaction).

Delay and bandpass are CASA's `gaincal`/`bandpass`; every gain table (the phase-only
steadying solve before the bandpass, `_gpcal`, `_2gcal`) is the own one-pass solver
(`contimg.calibration.gain_solver`, written as CASA G tables), which equals CASA
`gaincal` to 0.01 deg and 2e-5 in amplitude on the test data at a fraction of its time.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from casacore import tables

from contimg import naming
from contimg.calibration.caltable_writer import write_gain_table
from contimg.calibration.gain_solver import GainSolution, Reduced, reduce_ms, solve

# Core antennas first: short, well-flagged baselines make a steady phase reference.
PREFERRED_REFANTS = tuple(str(n) for n in (24, 25, 23, 26, 22, 27, 21, 28, 20, 29, 30, 31))


class CalibrationError(RuntimeError):
    """A solve could not be made or did not pass its quality checks."""


@dataclass(frozen=True)
class SolveOptions:
    """How the solves run (every field has the seed's or the telescope's default)."""

    refant: str | None = None  # an antenna name; None: chosen from PREFERRED_REFANTS
    do_k: bool = False
    short_solint: str = "60s"  # the amplitude+phase gains' timescale
    minsnr: float = 3.0


@dataclass(frozen=True)
class TableQuality:
    """What the checks and the operator look at for one table."""

    n_solutions: int
    flagged_fraction: float
    median_snr: float
    phase_scatter_deg: float

    def as_json(self) -> str:
        """Compact JSON for the registry."""
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class SolvedTable:
    """One calibration table and its quality."""

    kind: str  # kcal, bpcal, gpcal, 2gcal
    path: Path
    quality: TableQuality


@dataclass
class SolutionSet:
    """The tables of one solve, in the order they are applied."""

    group_id: str
    refant: str
    antennas_in_data: tuple[int, ...] = ()  # CASA writes rows for every antenna of the array
    tables: list[SolvedTable] = field(default_factory=list)

    def paths(self) -> list[str]:
        """Table paths, apply order."""
        return [str(t.path) for t in self.tables]


def choose_refant(ms: Path, preferred: tuple[str, ...] = PREFERRED_REFANTS) -> str:
    """The preferred antenna with the fewest flags (any antenna when none is present)."""
    with tables.table(str(ms / "ANTENNA"), ack=False) as antennas:
        names = list(antennas.getcol("NAME"))
    with tables.table(str(ms), ack=False) as main:
        ant1, ant2 = main.getcol("ANTENNA1"), main.getcol("ANTENNA2")
        flagged = main.getcol("FLAG").mean(axis=(1, 2))
    present = np.union1d(ant1, ant2)
    flag_fraction = {names[a]: float(np.mean(flagged[(ant1 == a) | (ant2 == a)])) for a in present}
    # Names are station numbers for DSA-110; another array's names sort as text.
    candidates = [n for n in preferred if n in flag_fraction] or sorted(
        flag_fraction, key=lambda name: (not name.isdigit(), int(name) if name.isdigit() else 0, name))
    return min(candidates, key=lambda name: (flag_fraction[name], candidates.index(name)))


def antennas_in(ms: Path) -> tuple[int, ...]:
    """Antenna indices that appear in the data (the array lists all 117 stations)."""
    with tables.table(str(ms), ack=False) as main:
        return tuple(int(a) for a in np.union1d(main.getcol("ANTENNA1"), main.getcol("ANTENNA2")))


def solve_calibrator(ms: Path, workdir: Path, group_iso: str,
                     options: SolveOptions = SolveOptions()) -> SolutionSet:
    """The daily set on a calibrator transit: [K], B, gp, 2g (written under `workdir`)."""
    from casatasks import bandpass, gaincal

    refant = options.refant or choose_refant(ms)
    solved = SolutionSet(group_iso, refant, antennas_in(ms))
    applied: list[str] = []
    if options.do_k:
        kcal = _table(workdir, group_iso, "kcal")
        gaincal(vis=str(ms), caltable=kcal, gaintype="K", solint="inf", refant=refant,
                minsnr=options.minsnr)
        applied.append(_record(solved, "kcal", kcal))
    # A first, unrecorded phase solve per integration steadies the bandpass average.
    prephase = workdir / "prephase.G"
    reduced = reduce_ms(ms, applied)
    _write(prephase, ms, reduced, solve(reduced, "int", phase_only=True,
                                        refant=_antenna_index(ms, refant), minsnr=options.minsnr))
    bpcal = _table(workdir, group_iso, "bpcal")
    bandpass(vis=str(ms), caltable=bpcal, solint="inf", combine="scan", refant=refant,
             solnorm=True, minsnr=options.minsnr, gaintable=[*applied, str(prephase)])
    applied.append(_record(solved, "bpcal", bpcal))
    shutil.rmtree(prephase, ignore_errors=True)
    return _solve_gains(ms, workdir, group_iso, solved, applied, options)


def solve_gains(ms: Path, workdir: Path, group_iso: str, bandpass_tables: list[str],
                options: SolveOptions = SolveOptions()) -> SolutionSet:
    """The hourly set on any group (calibrator or science, against its MODEL_DATA):
    gp and 2g with the active bandpass (and delay) applied."""
    solved = SolutionSet(group_iso, options.refant or choose_refant(ms), antennas_in(ms))
    return _solve_gains(ms, workdir, group_iso, solved, list(bandpass_tables), options)


def _solve_gains(ms: Path, workdir: Path, group_iso: str, solved: SolutionSet,
                 applied: list[str], options: SolveOptions) -> SolutionSet:
    """gp (phase-only, the whole group) then 2g (amplitude+phase per `short_solint`),
    from one reduction of the MS with the `applied` tables divided out."""
    reduced = reduce_ms(ms, applied)
    refant = _antenna_index(ms, solved.refant)
    phases = solve(reduced, "inf", phase_only=True, refant=refant, minsnr=options.minsnr)
    gpcal = _table(workdir, group_iso, "gpcal")
    _write(Path(gpcal), ms, reduced, phases)
    _record(solved, "gpcal", gpcal)
    gains = solve(reduced, options.short_solint, phase_only=False, refant=refant,
                  minsnr=options.minsnr, prior=phases)
    short = _table(workdir, group_iso, "2gcal")
    _write(Path(short), ms, reduced, gains)
    _record(solved, "2gcal", short)
    return solved


def _write(path: Path, ms: Path, reduced: Reduced, solution: GainSolution) -> None:
    write_gain_table(path, ms, solution, field_id=reduced.field_id, scan=reduced.scan)


def _antenna_index(ms: Path, name: str) -> int:
    with tables.table(str(ms / "ANTENNA"), ack=False) as antennas:
        return list(antennas.getcol("NAME")).index(name)


def _table(workdir: Path, group_iso: str, kind: str) -> str:
    path = workdir / naming.caltable_name(group_iso, kind)
    shutil.rmtree(path, ignore_errors=True)
    return str(path)


def _record(solved: SolutionSet, kind: str, path: str) -> str:
    if not Path(path, "table.dat").exists():
        raise CalibrationError(f"{kind} solve wrote no table at {path}; see the CASA log")
    solved.tables.append(SolvedTable(kind, Path(path),
                                     table_quality(Path(path), solved.antennas_in_data)))
    return path


def table_quality(path: Path, antennas_in_data: tuple[int, ...] = ()) -> TableQuality:
    """Flagged fraction, median SNR and phase scatter (RMS of each antenna's solution
    phases about their mean, over time or channel) of a calibration table, over the
    antennas in the data (all rows when not given)."""
    with tables.table(str(path), ack=False) as table:
        antennas = table.getcol("ANTENNA1")
        keep = np.isin(antennas, antennas_in_data) if antennas_in_data else np.ones(antennas.size, bool)
        flags = table.getcol("FLAG")[keep]
        snr = table.getcol("SNR")[keep]
        value_column = "CPARAM" if "CPARAM" in table.colnames() else "FPARAM"
        values = table.getcol(value_column)[keep]
        antennas = antennas[keep]
    good = ~flags
    scatter = []
    if value_column == "CPARAM":
        # Per antenna and polarisation: the two feeds' phases are independent, so their
        # difference is not scatter.
        for antenna in np.unique(antennas):
            rows = antennas == antenna
            for pol in range(values.shape[-1]):
                phases = np.angle(values[rows][..., pol])[good[rows][..., pol]]
                if phases.size > 1:
                    centred = np.angle(np.exp(1j * (phases - np.angle(np.mean(np.exp(1j * phases))))))
                    scatter.append(float(np.sqrt(np.mean(centred**2))))
    return TableQuality(
        n_solutions=int(flags.size),
        flagged_fraction=float(flags.mean()) if flags.size else 1.0,
        median_snr=float(np.median(snr[good])) if good.any() else 0.0,
        phase_scatter_deg=float(np.degrees(np.median(scatter))) if scatter else 0.0,
    )
