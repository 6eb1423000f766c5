"""Pictures operators look at first: an image's measured against catalogued fluxes, and
a candidate's light curve."""

from __future__ import annotations

import io

import numpy as np


def _figure(width: float = 6.0, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=90)


def _png(plt, figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def flux_comparison_png(catalog_jy: np.ndarray, measured_jy: np.ndarray, is_new: np.ndarray,
                        title: str) -> bytes:
    """Measured (forced) against catalogue flux, log-log, new sources along the bottom."""
    plt, figure = _figure(5.0, 4.2)
    axis = figure.add_subplot()
    known = np.isfinite(catalog_jy) & (catalog_jy > 0) & np.isfinite(measured_jy) & (measured_jy > 0)
    axis.loglog(catalog_jy[known] * 1e3, measured_jy[known] * 1e3, ".", ms=4, label="catalogued")
    if known.any():
        span = np.array([catalog_jy[known].min(), catalog_jy[known].max()]) * 1e3
        axis.plot(span, span, "k:", lw=0.8)
    new = np.asarray(is_new, bool) & np.isfinite(measured_jy) & (measured_jy > 0)
    if new.any():
        floor = (catalog_jy[known].min() * 1e3) if known.any() else 1.0
        axis.loglog(np.full(new.sum(), floor), measured_jy[new] * 1e3, "r^", ms=6, label="new")
    axis.set_xlabel("catalogue flux (mJy)")
    axis.set_ylabel("measured flux (mJy)")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=8)
    return _png(plt, figure)


def light_curve_png(mjd: np.ndarray, flux_jy: np.ndarray, error_jy: np.ndarray, title: str) -> bytes:
    """Flux against time with 1σ error bars (mJy against days since the first point)."""
    plt, figure = _figure()
    axis = figure.add_subplot()
    mjd = np.asarray(mjd, float)
    days = mjd - mjd.min() if mjd.size else mjd
    axis.errorbar(days, np.asarray(flux_jy) * 1e3, yerr=np.asarray(error_jy) * 1e3, fmt="o", ms=3,
                  capsize=2)
    axis.axhline(0.0, color="k", lw=0.5)
    axis.set_xlabel(f"days since MJD {mjd.min():.3f}" if mjd.size else "days")
    axis.set_ylabel("flux (mJy)")
    axis.set_title(title, fontsize=9)
    return _png(plt, figure)
