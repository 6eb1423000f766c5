"""Primary beam: the Airy pattern of a uniformly illuminated 4.65 m dish."""

from __future__ import annotations

import numpy as np
from scipy.special import j1

from contimg.instrument import DISH_DIAMETER_M, SPEED_OF_LIGHT_M_S

SPEED_OF_LIGHT = SPEED_OF_LIGHT_M_S  # the simulator's modules import it from here


def airy_power(offset_rad: np.ndarray, freq_hz: np.ndarray, dish_m: float = DISH_DIAMETER_M) -> np.ndarray:
    """Power response (1 on axis) at angular offsets (any shape) and frequencies (broadcast)."""
    x = np.pi * dish_m * np.sin(np.asarray(offset_rad)) * np.asarray(freq_hz) / SPEED_OF_LIGHT
    with np.errstate(invalid="ignore", divide="ignore"):
        amplitude = np.where(np.abs(x) < 1e-8, 1.0, 2.0 * j1(x) / x)
    return amplitude**2
