"""Primary beam: the Airy pattern of a uniformly illuminated 4.65 m dish."""

from __future__ import annotations

import numpy as np
from scipy.special import j1

SPEED_OF_LIGHT = 299_792_458.0


def airy_power(offset_rad: np.ndarray, freq_hz: np.ndarray, dish_m: float = 4.65) -> np.ndarray:
    """Power response (1 on axis) at angular offsets (any shape) and frequencies (broadcast)."""
    x = np.pi * dish_m * np.sin(np.asarray(offset_rad)) * np.asarray(freq_hz) / SPEED_OF_LIGHT
    with np.errstate(invalid="ignore", divide="ignore"):
        amplitude = np.where(np.abs(x) < 1e-8, 1.0, 2.0 * j1(x) / x)
    return amplitude**2
