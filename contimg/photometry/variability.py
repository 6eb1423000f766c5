"""Variability figures of every source, in DuckDB SQL over the Parquet measurements.

Per source (its measurements up to a time, flagged ones left out), with w = 1/σ²:
  η    = N/(N−1) · (⟨w I²⟩ − ⟨w I⟩²/⟨w⟩)          (the weighted reduced χ² about the
  χ²_ν = Σ w (I − Ī_w)² / (N − 1)                    weighted mean; η and χ²_ν agree)
  V    = s / Ī  (s the standard deviation with N − 1)
and for pairs of measurements Vs = (S_a − S_b)/√(σ_a² + σ_b²), m = 2(S_a − S_b)/(S_a + S_b).
All pairs would be O(N²) per source (10⁴ epochs: 5·10⁷ pairs each); the pair kept is the
brightest against the faintest measurement, which has the largest |Vs| whenever the
errors are alike (the usual case: one image noise per epoch) and always the largest |m|.

A source is a candidate when |Vs| ≥ 4.3 and |m| ≥ 0.26 for that pair, or when η and V
are both more than 3σ above the mean of their distributions (in log10, over the sources
judged), as VAST does. Sources with fewer than `min_epochs` measurements are not judged,
and neither is a source with a measurement below −`negative_sigma`σ: a sky source has no
negative flux, so its position sits on image artefacts (sidelobes of a bright source) that
vary from image to image — in the demo, half the would-be candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np

STATISTICS_SQL = """
WITH m AS (
    SELECT source_id, flux_jy AS s, flux_err_jy AS e, 1.0 / (flux_err_jy * flux_err_jy) AS w
    FROM read_parquet(?, hive_partitioning = true)
    WHERE flags = 0 AND mid_mjd <= ? AND isfinite(flux_jy) AND flux_err_jy > 0
), per_source AS (
    SELECT source_id,
           count(*) AS n,
           avg(s) AS mean_flux,
           sum(w * s) / sum(w) AS wmean_flux,
           stddev_samp(s) AS s_std,
           sum(w) AS sw, sum(w * s) AS sws, sum(w * s * s) AS swss,
           max(s) AS s_max, arg_max(e, s) AS e_at_max,
           min(s) AS s_min, arg_min(e, s) AS e_at_min,
           min(s / e) AS min_snr
    FROM m GROUP BY source_id
)
SELECT source_id, n, mean_flux, wmean_flux,
       CASE WHEN n > 1 THEN (swss - sws * sws / sw) / (n - 1) END AS eta,
       CASE WHEN n > 1 AND mean_flux <> 0 THEN s_std / mean_flux END AS v,
       (s_max - s_min) / sqrt(e_at_max * e_at_max + e_at_min * e_at_min) AS vs,
       CASE WHEN s_max + s_min <> 0 THEN 2 * (s_max - s_min) / (s_max + s_min) END AS m,
       min_snr
FROM per_source ORDER BY source_id
"""


@dataclass(frozen=True)
class Thresholds:
    """When a source is a variability candidate."""

    vs: float = 4.3
    m: float = 0.26
    sigma: float = 3.0
    min_epochs: int = 3
    negative_sigma: float = 3.0

    @classmethod
    def from_settings(cls, settings) -> Thresholds:
        """From the CONTIMG_VARIABILITY_* settings."""
        return cls(float(settings["CONTIMG_VARIABILITY_VS"]), float(settings["CONTIMG_VARIABILITY_M"]),
                   float(settings["CONTIMG_VARIABILITY_SIGMA"]),
                   int(settings["CONTIMG_VARIABILITY_MIN_EPOCHS"]))


@dataclass(frozen=True)
class VariabilityTable:
    """Per-source figures (arrays aligned by source) and the thresholds applied."""

    source_id: np.ndarray
    n: np.ndarray
    mean_flux: np.ndarray
    wmean_flux: np.ndarray
    eta: np.ndarray
    v: np.ndarray
    vs: np.ndarray
    m: np.ndarray
    candidate: np.ndarray
    eta_threshold: float
    v_threshold: float

    def rows(self) -> list[dict]:
        """One dict per source, with master_sources' column names."""
        return [{"id": int(self.source_id[i]), "n_measurements": int(self.n[i]),
                 "mean_flux_jy": _num(self.mean_flux[i]), "wmean_flux_jy": _num(self.wmean_flux[i]),
                 "eta": _num(self.eta[i]), "v": _num(self.v[i]), "chi2_nu": _num(self.eta[i]),
                 "vs_max": _num(self.vs[i]), "m_at_vs_max": _num(self.m[i]),
                 "is_candidate": int(self.candidate[i])} for i in range(self.source_id.size)]


def variability_statistics(parquet_glob: str, until_mjd: float, thresholds: Thresholds,
                           connection: duckdb.DuckDBPyConnection | None = None) -> VariabilityTable:
    """Every source's figures from the measurements up to `until_mjd`."""
    conn = connection or duckdb.connect()
    columns = conn.execute(STATISTICS_SQL, [parquet_glob, until_mjd]).fetchnumpy()
    figures = {k: np.asarray(v, float) if k != "source_id" else np.asarray(v, np.int64)
               for k, v in columns.items()}
    judged = (figures["n"] >= thresholds.min_epochs) & (figures["min_snr"] >= -thresholds.negative_sigma)
    eta_cut = _log_threshold(figures["eta"][judged], thresholds.sigma)
    v_cut = _log_threshold(figures["v"][judged], thresholds.sigma)
    with np.errstate(invalid="ignore"):
        pair = (np.abs(figures["vs"]) >= thresholds.vs) & (np.abs(figures["m"]) >= thresholds.m)
        spread = (figures["eta"] > eta_cut) & (figures["v"] > v_cut)
    return VariabilityTable(figures["source_id"], figures["n"].astype(int), figures["mean_flux"],
                            figures["wmean_flux"], figures["eta"], figures["v"], figures["vs"],
                            figures["m"], judged & (pair | spread), eta_cut, v_cut)


def light_curve(parquet_glob: str, source_id: int,
                connection: duckdb.DuckDBPyConnection | None = None) -> dict[str, np.ndarray]:
    """One source's measurements in time order: mid_mjd, flux_jy, flux_err_jy, flags."""
    conn = connection or duckdb.connect()
    return conn.execute("SELECT mid_mjd, flux_jy, flux_err_jy, flags FROM read_parquet(?,"
                        " hive_partitioning = true) WHERE source_id = ? ORDER BY mid_mjd",
                        [parquet_glob, int(source_id)]).fetchnumpy()


def _log_threshold(values: np.ndarray, sigma: float) -> float:
    """mean + sigma·std of log10 of the positive finite values (inf when too few)."""
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size < 3:
        return float("inf")
    logs = np.log10(positive)
    return float(10 ** (logs.mean() + sigma * logs.std()))


def _num(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
