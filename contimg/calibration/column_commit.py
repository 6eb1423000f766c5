"""Replace whole MS columns so that a killed writer leaves the MS as it was.

CORRECTED_DATA (and FLAG, when calibration flags data) are written into scratch columns
with their own storage-manager files; only when every row is written are they swapped
in: the old columns removed and the scratch ones renamed, a change of the table's
description alone. A keyword records the phase, so the next opening finishes the job:

- `writing` (or scratch columns with no keyword): the scratch columns are dropped — the
  MS is exactly as it was before the write began;
- `committing`: the swap is completed — the MS is completely rewritten.

The only non-atomic moment left is casacore rewriting `table.dat` itself (a few kB).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from casacore import tables

SCRATCH_PREFIX = "CONTIMG_NEW_"
PHASE_KEYWORD = "CONTIMG_COLUMN_COMMIT"


def scratch_name(column: str) -> str:
    """The scratch column that will become `column`."""
    return SCRATCH_PREFIX + column


def recover(table: tables.table) -> str:
    """Finish or undo an interrupted swap on an open, writable table; what was done."""
    keywords = table.getkeywords()
    phase = str(keywords.get(PHASE_KEYWORD, ""))
    scratch = [c for c in table.colnames() if c.startswith(SCRATCH_PREFIX)]
    if phase == "committing":
        _swap(table, scratch)
        done = "completed an interrupted swap"
    elif scratch:
        table.removecols(scratch)
        done = "dropped the scratch columns of an interrupted write"
    else:
        done = ""
    if PHASE_KEYWORD in keywords:
        table.removekeyword(PHASE_KEYWORD)
    table.flush()
    return done


@contextmanager
def replaced_columns(ms: Path, like: dict[str, str]) -> Iterator[tables.table]:
    """Open `ms` for writing with a scratch column for each `target -> template column`
    of `like` (same type, shape and tiling as the template); on a normal exit the
    scratch columns replace their targets. An exception leaves the MS as it was."""
    table = tables.table(str(ms), readonly=False, ack=False)
    try:
        recover(table)
        for target, template in like.items():
            _add_scratch_like(table, scratch_name(target), template)
        table.putkeyword(PHASE_KEYWORD, "writing")
        table.flush()
        try:
            yield table
        except BaseException:
            recover(table)
            raise
        table.flush()
        table.putkeyword(PHASE_KEYWORD, "committing")
        table.flush()
        _swap(table, [scratch_name(target) for target in like])
        table.removekeyword(PHASE_KEYWORD)
        table.flush()
    finally:
        table.close()


def recover_ms(ms: Path) -> str:
    """`recover` on an MS path (opened and closed here)."""
    with tables.table(str(ms), readonly=False, ack=False) as table:
        return recover(table)


def _swap(table: tables.table, scratch: list[str]) -> None:
    names = set(table.colnames())
    for column in scratch:
        target = column.removeprefix(SCRATCH_PREFIX)
        if target in names:
            table.removecols([target])
        table.renamecol(column, target)


def _add_scratch_like(table: tables.table, name: str, template: str) -> None:
    """A column like `template` (type, dimensions, tile shape) in a manager of its own."""
    description = table.getcoldesc(template)
    shape = table.getcell(template, 0).shape
    manager = table.getdminfo(template)
    spec = {"DEFAULTTILESHAPE": manager.get("SPEC", {}).get("DEFAULTTILESHAPE")}
    if spec["DEFAULTTILESHAPE"] is None:
        spec = {}
    # No fixed cell shape, TiledShapeStMan: the tiles are made as rows are written. With a
    # fixed shape casacore writes the whole column's zeros at the first flush (~3 s for a
    # full group) before a single row is written.
    column = tables.makearrcoldesc(name, None, valuetype=description["valueType"],
                                   ndim=len(shape), comment=description.get("comment", ""))
    # A fresh manager name: the template's manager may still hold the old column.
    manager_name = f"{name}_{time.time_ns()}"
    kind = "TiledShapeStMan" if spec else "StandardStMan"
    table.addcols(column, {"TYPE": kind, "NAME": manager_name, "SPEC": spec})
