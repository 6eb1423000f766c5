"""An empty Measurement Set with its subtables filled for one DSA-110 group.

Layout: one spectral window of all channels in ascending frequency, one field at the
group's midpoint phase centre, XX/YY (or whatever the files carry). DATA and FLAG use
tiled storage whose tiles hold one subband's channels, so each subband is written
as whole tiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from casacore import tables

# AIPS polarisation codes (pyuvdata) -> Stokes codes in the MS POLARIZATION table.
AIPS_TO_CASA_CORR = {-1: 5, -2: 8, -3: 6, -4: 7, -5: 9, -6: 12, -7: 10, -8: 11,
                     1: 1, 2: 2, 3: 3, 4: 4}
ROWS_PER_TILE = 1024


@dataclass(frozen=True)
class MsDescription:
    """Everything the subtables need, in plain arrays."""

    telescope_name: str
    antenna_names: list[str]
    antenna_itrf_m: np.ndarray  # (Nant, 3) absolute ITRF positions
    dish_diameter_m: np.ndarray
    freqs_hz: np.ndarray  # ascending
    channel_width_hz: np.ndarray
    polarizations: np.ndarray  # AIPS codes
    field_name: str
    ra_rad: float
    dec_rad: float
    time_range_mjd_s: tuple[float, float]
    channels_per_tile: int


def create_ms(path: Path, desc: MsDescription) -> tables.table:
    """Create the MS (main table open for writing) and fill every subtable."""
    main = _create_main(path, desc.freqs_hz.size, len(desc.polarizations), desc.channels_per_tile)
    _fill_antenna(path, desc)
    _fill_spectral_window(path, desc)
    _fill_polarization(path, desc)
    _fill_field(path, desc)
    _fill_rows(path / "DATA_DESCRIPTION", SPECTRAL_WINDOW_ID=[0], POLARIZATION_ID=[0],
               FLAG_ROW=[False])
    _fill_observation(path, desc)
    _fill_feed(path, desc)
    _fill_rows(path / "PROCESSOR", TYPE=["CORRELATOR"], SUB_TYPE=[desc.telescope_name],
               TYPE_ID=[0], MODE_ID=[0], FLAG_ROW=[False])
    return main


def _create_main(path: Path, n_chan: int, n_pols: int, channels_per_tile: int) -> tables.table:
    desc = tables.required_ms_desc("MAIN")
    for column, group in (("DATA", "TiledData"), ("FLAG", "TiledFlag")):
        value = 0j if column == "DATA" else False
        # Fixed-shape cells in tiled storage: no per-row shape bookkeeping, and each
        # subband's channels fill whole tiles.
        coldesc = tables.makearrcoldesc(column, value, shape=[n_chan, n_pols],
                                        datamanagertype="TiledColumnStMan",
                                        datamanagergroup=group,
                                        valuetype="complex" if column == "DATA" else "boolean")
        desc.update(tables.maketabdesc(coldesc))
    desc["UVW"].update(dataManagerType="TiledColumnStMan", dataManagerGroup="TiledUVW")
    desc["WEIGHT"].update(dataManagerType="TiledShapeStMan", dataManagerGroup="TiledWgt")
    desc["SIGMA"].update(dataManagerType="TiledShapeStMan", dataManagerGroup="TiledSigma")
    tile = np.array([n_pols, channels_per_tile, ROWS_PER_TILE])
    dminfo = tables.makedminfo(desc, {"TiledData": {"DEFAULTTILESHAPE": tile},
                                      "TiledFlag": {"DEFAULTTILESHAPE": tile}})
    return tables.default_ms(str(path), desc, dminfo)


def _fill_rows(subtable: Path, **columns: object) -> None:
    with tables.table(str(subtable), readonly=False, ack=False) as table:
        n_rows = len(next(iter(columns.values())))  # type: ignore[arg-type]
        table.addrows(n_rows)
        for name, values in columns.items():
            table.putcol(name, np.asarray(values))


def _fill_antenna(path: Path, desc: MsDescription) -> None:
    n_ant = len(desc.antenna_names)
    _fill_rows(path / "ANTENNA", NAME=desc.antenna_names, STATION=desc.antenna_names,
               TYPE=["GROUND-BASED"] * n_ant, MOUNT=["ALT-AZ"] * n_ant,
               POSITION=desc.antenna_itrf_m, OFFSET=np.zeros((n_ant, 3)),
               DISH_DIAMETER=desc.dish_diameter_m, FLAG_ROW=np.zeros(n_ant, bool))


def _fill_spectral_window(path: Path, desc: MsDescription) -> None:
    widths = desc.channel_width_hz[None, :]
    _fill_rows(path / "SPECTRAL_WINDOW", NUM_CHAN=[desc.freqs_hz.size],
               NAME=["contimg_band"], REF_FREQUENCY=[desc.freqs_hz[0]],
               CHAN_FREQ=desc.freqs_hz[None, :], CHAN_WIDTH=widths, EFFECTIVE_BW=widths,
               RESOLUTION=widths, MEAS_FREQ_REF=[5], TOTAL_BANDWIDTH=[float(widths.sum())],
               NET_SIDEBAND=[1], IF_CONV_CHAIN=[0], FREQ_GROUP=[0], FREQ_GROUP_NAME=["none"],
               FLAG_ROW=[False])


def _fill_polarization(path: Path, desc: MsDescription) -> None:
    corr = [AIPS_TO_CASA_CORR[int(p)] for p in desc.polarizations]
    products = np.array([_corr_product(int(p)) for p in desc.polarizations], dtype=np.int32)
    _fill_rows(path / "POLARIZATION", NUM_CORR=[len(corr)], CORR_TYPE=np.array([corr]),
               CORR_PRODUCT=products[None, :, :], FLAG_ROW=[False])


def _corr_product(aips_code: int) -> tuple[int, int]:
    # Receptor indices (0 = X or R, 1 = Y or L) of each correlation.
    return {-1: (0, 0), -2: (1, 1), -3: (0, 1), -4: (1, 0), -5: (0, 0), -6: (1, 1),
            -7: (0, 1), -8: (1, 0)}.get(aips_code, (0, 0))


def _fill_field(path: Path, desc: MsDescription) -> None:
    direction = np.array([[[desc.ra_rad, desc.dec_rad]]])
    _fill_rows(path / "FIELD", NAME=[desc.field_name], CODE=[""],
               TIME=[np.mean(desc.time_range_mjd_s)], NUM_POLY=[0], DELAY_DIR=direction,
               PHASE_DIR=direction, REFERENCE_DIR=direction, SOURCE_ID=[0], FLAG_ROW=[False])


def _fill_observation(path: Path, desc: MsDescription) -> None:
    _fill_rows(path / "OBSERVATION", TELESCOPE_NAME=[desc.telescope_name],
               TIME_RANGE=np.array([desc.time_range_mjd_s]), OBSERVER=["contimg"],
               PROJECT=["dsa110-contimg"], SCHEDULE_TYPE=[""], RELEASE_DATE=[0.0],
               FLAG_ROW=[False])


def _fill_feed(path: Path, desc: MsDescription) -> None:
    n_ant = len(desc.antenna_names)
    linear = all(int(p) in (-5, -6, -7, -8) for p in desc.polarizations)
    types = ["X", "Y"] if linear else ["R", "L"]
    _fill_rows(path / "FEED", ANTENNA_ID=np.arange(n_ant), FEED_ID=np.zeros(n_ant, int),
               SPECTRAL_WINDOW_ID=np.full(n_ant, -1), TIME=np.zeros(n_ant),
               INTERVAL=np.zeros(n_ant), NUM_RECEPTORS=np.full(n_ant, 2),
               BEAM_ID=np.full(n_ant, -1), BEAM_OFFSET=np.zeros((n_ant, 2, 2)),
               POLARIZATION_TYPE=np.array([types] * n_ant),
               POL_RESPONSE=np.tile(np.eye(2, dtype=complex), (n_ant, 1, 1)),
               POSITION=np.zeros((n_ant, 3)),
               RECEPTOR_ANGLE=np.tile([0.0, np.pi / 2], (n_ant, 1)))
