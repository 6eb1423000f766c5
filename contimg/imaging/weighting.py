"""How much the imaging weights raise the noise above natural weighting.

The radiometer equation gives the noise of a naturally weighted image. Briggs and uniform
weighting down-weight the densely sampled short spacings, and the image noise rises by

    sqrt(Σ w · Σ w t²) / Σ w t

(w the visibility weights, t the weighting's taper per visibility: 1 natural, 1/W_k
uniform, 1/(1 + f² W_k) Briggs with f² = (5·10^-R)² Σw / Σ W_k² — WSClean's and CASA's
definition; W_k the natural weight gridded in the visibility's uv cell, whose size is one
over the image's side). Computed from a channel-subsample of the visibilities: the factor
is a ratio of sums, so a uniform subsample keeps it.
"""

from __future__ import annotations

import numpy as np

ARCSEC_TO_RAD = np.pi / 180.0 / 3600.0


def weighting_noise_factor(u_wavelengths: np.ndarray, v_wavelengths: np.ndarray, weight: np.ndarray,
                           *, size: int, cell_arcsec: float, weighting: str, robust: float) -> float:
    """The image noise under `weighting` over that under natural weighting (≥ 1)."""
    weight = np.asarray(weight, float)
    if weighting == "natural" or weight.size == 0 or weight.sum() <= 0:
        return 1.0
    density, inside = _gridded_density(u_wavelengths, v_wavelengths, weight, size, cell_arcsec)
    weight = weight[inside]  # a visibility beyond the grid is imaged by no weighting
    if weighting == "uniform":
        taper = 1.0 / density
    elif weighting == "briggs":
        f_squared = (5.0 * 10.0 ** (-robust)) ** 2 * weight.sum() / float((density * weight).sum())
        taper = 1.0 / (1.0 + f_squared * density)
    else:
        raise ValueError(f"unknown weighting {weighting!r}")
    return float(np.sqrt(weight.sum() * (weight * taper**2).sum()) / (weight * taper).sum())


def _gridded_density(u: np.ndarray, v: np.ndarray, weight: np.ndarray, size: int,
                     cell_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
    """W_k at each visibility: the summed weight of its uv cell (a visibility and its
    conjugate are one sample, so the plane is folded onto v ≥ 0), for the visibilities
    inside the grid, and which those are.

    Σ_k W_k² equals Σ_i w_i W_k(i), which is how the Briggs normalisation uses it."""
    cell_wavelengths = 1.0 / (size * cell_arcsec * ARCSEC_TO_RAD)
    flip = v < 0
    u = np.where(flip, -u, u)
    v = np.where(flip, -v, v)
    iu = np.floor(u / cell_wavelengths + 0.5).astype(np.int64) + size // 2
    iv = np.floor(v / cell_wavelengths + 0.5).astype(np.int64)
    inside = (iu >= 0) & (iu < size) & (iv < size)
    _, index = np.unique(iv[inside] * size + iu[inside], return_inverse=True)
    sums = np.bincount(index, weights=weight[inside])
    return sums[index], inside
