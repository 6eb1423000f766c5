"""A quick-look picture of a group image for the UI: the PB-corrected image (asinh stretch
around the noise), the restoring beam drawn in the corner, a colour bar in Jy/beam."""

from __future__ import annotations

import io
import warnings

import numpy as np
from astropy.wcs import WCS

MAX_PIXELS = 1024  # the picture is block-averaged down to at most this many pixels a side


def quicklook_png(image: np.ndarray, wcs: WCS, restoring_beam_deg: tuple[float, float, float],
                  rms_jy: float, title: str) -> bytes:
    """PNG bytes of `image` (2-D, NaN where blanked) on its celestial `wcs`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    step = max(1, int(np.ceil(max(image.shape) / MAX_PIXELS)))
    shown = _block_mean(image, step)
    celestial = wcs.celestial[::step, ::step] if step > 1 else wcs.celestial
    figure = plt.figure(figsize=(6.4, 5.6), dpi=90)
    axis = figure.add_subplot(projection=celestial)
    low, high = -3 * rms_jy, max(20 * rms_jy, float(np.nanpercentile(shown, 99.9)))
    scaled = np.arcsinh(np.clip(shown, low, high) / (3 * rms_jy))
    picture = axis.imshow(scaled, origin="lower", cmap="inferno")
    bar = figure.colorbar(picture, ax=axis, fraction=0.046, pad=0.04)
    ticks = np.array([low, 0, 5 * rms_jy, high])
    bar.set_ticks(np.arcsinh(ticks / (3 * rms_jy)))
    bar.set_ticklabels([f"{t * 1e3:.1f}" for t in ticks])
    bar.set_label("mJy/beam")
    bmaj, bmin, bpa = restoring_beam_deg
    pixel_deg = abs(celestial.wcs.cdelt[1])
    corner = 0.08 * shown.shape[0]
    axis.add_patch(Ellipse((corner, corner), bmin / pixel_deg, bmaj / pixel_deg, angle=bpa,
                           facecolor="none", edgecolor="cyan", lw=1.2))
    axis.set_xlabel("RA")
    axis.set_ylabel("Dec")
    axis.set_title(title, fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _block_mean(image: np.ndarray, step: int) -> np.ndarray:
    if step == 1:
        return image
    ny, nx = (image.shape[0] // step) * step, (image.shape[1] // step) * step
    blocks = image[:ny, :nx].reshape(ny // step, step, nx // step, step)
    with warnings.catch_warnings():  # blocks wholly blanked (below the PB limit) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(blocks, axis=(1, 3))
