"""DSA-110 facts: stations, site, frequency grid, integrations, and size presets."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The instrument's facts have one owner (contimg.instrument); the simulator re-exports them.
from contimg.instrument import (  # noqa: F401 - re-exported for the simulator's modules
    CHANNEL_WIDTH_HZ,
    CHANNELS_PER_SUBBAND,
    DISH_DIAMETER_M,
    GROUP_DURATION_S,
    INSTRUMENT_NAME,
    INTEGRATION_S,
    LOWEST_CHANNEL_HZ,
    N_INTEGRATIONS,
    N_STATIONS,
    N_SUBBANDS,
    SITE_HEIGHT_M,
    SITE_LAT_DEG,
    SITE_LON_DEG,
    STATIONS_CSV,
    TELESCOPE_NAME,
)

MISSING_ELEVATION_M = 1182.6  # DSA-117 has none in the table; the usual stand-in

# The active set changes with maintenance; this default uses all 15 outriggers,
# the 51 east-west core stations and 30 of the north-south arm (96 in all).
DEFAULT_ACTIVE_STATIONS: tuple[int, ...] = (
    tuple(range(1, 52)) + tuple(range(52, 82)) + tuple(range(103, 118))
)


@dataclass(frozen=True)
class SizePreset:
    """How big a simulated group is; every preset goes through the same code."""

    name: str
    n_antennas: int
    channels_per_subband: int
    n_field_sources: int


PRESETS: dict[str, SizePreset] = {
    "tiny": SizePreset("tiny", 6, 2, 5),
    "small": SizePreset("small", 32, 8, 15),
    "medium": SizePreset("medium", 64, 16, 25),
    "full": SizePreset("full", 96, 48, 40),
}


def load_station_positions(path: Path = STATIONS_CSV) -> dict[int, tuple[float, float, float]]:
    """Station number (1..117) -> (latitude deg, longitude deg, elevation m)."""
    stations: dict[int, tuple[float, float, float]] = {}
    with open(path, newline="") as handle:
        for row in csv.reader(handle):
            if len(row) < 4 or not re.fullmatch(r"DSA-\d{3}", row[1].strip()):
                continue
            elevation = float(row[4]) if len(row) > 4 and row[4].strip() else MISSING_ELEVATION_M
            stations[int(row[1][4:])] = (float(row[2]), float(row[3]), elevation)
    if len(stations) != N_STATIONS:
        raise ValueError(f"{path}: expected {N_STATIONS} stations, found {len(stations)}")
    return stations


def choose_stations(n_antennas: int, active: tuple[int, ...] = DEFAULT_ACTIVE_STATIONS) -> list[int]:
    """Pick n stations spread evenly through the active set (so small arrays keep long arms)."""
    if not 2 <= n_antennas <= len(active):
        raise ValueError(f"n_antennas must be 2..{len(active)}, got {n_antennas}")
    picks = np.unique(np.linspace(0, len(active) - 1, n_antennas).round().astype(int))
    return [active[i] for i in picks]


def subband_frequencies(subband: int, channels_per_subband: int = CHANNELS_PER_SUBBAND) -> np.ndarray:
    """Channel centres (Hz) of one subband, descending; sb00 is the highest subband.

    With fewer channels than 48 each channel is wider, so the band stays the same.
    """
    width = CHANNEL_WIDTH_HZ * CHANNELS_PER_SUBBAND / channels_per_subband
    top_edge = LOWEST_CHANNEL_HZ - CHANNEL_WIDTH_HZ / 2 + N_SUBBANDS * CHANNELS_PER_SUBBAND * CHANNEL_WIDTH_HZ
    subband_top = top_edge - subband * CHANNELS_PER_SUBBAND * CHANNEL_WIDTH_HZ
    return subband_top - width * (np.arange(channels_per_subband) + 0.5)


def channel_width_hz(channels_per_subband: int) -> float:
    """Channel width (Hz) for a given number of channels per subband."""
    return CHANNEL_WIDTH_HZ * CHANNELS_PER_SUBBAND / channels_per_subband
