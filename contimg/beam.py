"""The primary beam: the Airy pattern of a uniformly illuminated 4.65 m dish.

One model for the simulator, the sky model and (next) primary-beam correction, so
the data and their model can never disagree about the beam.
"""

from __future__ import annotations

import numpy as np
from scipy.special import j1

from contimg.instrument import DISH_DIAMETER_M, SPEED_OF_LIGHT_M_S


def airy_power(offset_rad: np.ndarray, freq_hz: np.ndarray, dish_m: float = DISH_DIAMETER_M) -> np.ndarray:
    """Power response (1 on axis) at angular offsets and frequencies (broadcast):
    (2 J₁(x)/x)², x = π D sinθ / λ."""
    x = np.pi * dish_m * np.sin(np.asarray(offset_rad, dtype=float)) * np.asarray(freq_hz) \
        / SPEED_OF_LIGHT_M_S
    with np.errstate(invalid="ignore", divide="ignore"):
        amplitude = np.where(np.abs(x) < 1e-8, 1.0, 2.0 * j1(x) / np.where(x == 0, 1.0, x))
    return amplitude**2
