"""Facts of the DSA-110 and the physics every stage shares: one owner for each number.

The simulator and production read the same values from here: the site, the dish,
the band, the cadence, the station table, and the constants of time and light.
"""

from __future__ import annotations

from pathlib import Path

# Physics and time.
SPEED_OF_LIGHT_M_S = 299_792_458.0
SIDEREAL_RATIO = 1.002737909350795  # sidereal per solar second
SIDEREAL_DAY_S = 86164.0905
MJD_OFFSET_JD = 2400000.5  # JD - MJD
SECONDS_PER_DAY = 86400.0

# The site (the files say OVRO_MMA) and the dishes.
TELESCOPE_NAME = "OVRO_MMA"
INSTRUMENT_NAME = "DSA"
SITE_LAT_DEG, SITE_LON_DEG, SITE_HEIGHT_M = 37.2339, -118.2825, 1222.0
DISH_DIAMETER_M = 4.65
N_STATIONS = 117
STATIONS_CSV = Path(__file__).resolve().parent / "static" / "DSA110_Station_Coordinates.csv"

# The band: 16 subbands of 48 channels, sb00 highest, ~1311.4-1498.6 MHz.
N_SUBBANDS = 16
CHANNELS_PER_SUBBAND = 48
CHANNEL_WIDTH_HZ = 244_140.625
LOWEST_CHANNEL_HZ = 1311.40e6

# The cadence: 24 integrations of 96 x 0.134217728 s per group.
N_INTEGRATIONS = 24
INTEGRATION_S = 12.884902
GROUP_DURATION_S = N_INTEGRATIONS * INTEGRATION_S
