"""Every operator setting, validated once: environment, then the TOML file, then defaults.

One table (`SPECS`) names each `CONTIMG_*` setting, its TOML section and key, its type,
its default and its limits. `load_settings()` reads them all, checks every value and
raises `SettingsError` naming the variable (or TOML key), the bad value and the fix;
it returns one frozen `Settings` object that resources and assets are handed. Secrets
(the webhook URL, the rclone remote) are never printed: their errors show only the
scheme and host. Locations (`[paths]`) are resolved by `contimg.layout` from the same file.

TOML: a table per section, keys are the variable names without `CONTIMG_`, lower case:

    [ingest]
    file_settle_s = 5
    [retention]
    profile = "phase4"
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from contimg.layout import LayoutError, StorageLayout, resolve_layout
from contimg.secrets import redact_remote
from contimg.state.postgres import StateUrlError, check_state_url


class SettingsError(ValueError):
    """A setting is unusable; the message names the variable, the value and the fix."""


@dataclass(frozen=True)
class Spec:
    """One setting: where it lives, what it is, and what values are allowed."""

    variable: str
    section: str
    kind: str  # int, float, bool, choice, text, url, days (float or None = indefinitely)
    default: object
    description: str
    minimum: float | None = 0.0  # inclusive; None: no lower bound
    maximum: float | None = None
    positive: bool = False  # strictly greater than zero
    choices: tuple[str, ...] = ()
    secret: bool = False

    @property
    def key(self) -> str:
        """The TOML key: the variable without `CONTIMG_`, lower case."""
        return self.variable.removeprefix("CONTIMG_").lower()


RETENTION_TYPES = ("incoming", "science_ms", "calibrator_ms", "failed_ms", "images", "mosaics")

SPECS: tuple[Spec, ...] = (
    # ingest
    Spec("CONTIMG_EXPECTED_SUBBANDS", "ingest", "int", 16, "subband files per group", minimum=1),
    Spec("CONTIMG_GROUP_TOLERANCE_S", "ingest", "float", 60.0,
         "subband timestamps within this of the group id join it", positive=True),
    Spec("CONTIMG_FILE_SETTLE_S", "ingest", "float", 5.0,
         "a file unchanged this long is complete"),
    Spec("CONTIMG_INCOMPLETE_TIMEOUT_S", "ingest", "float", 600.0,
         "alert (and maybe convert) a group still incomplete after this"),
    Spec("CONTIMG_INCOMPLETE_POLICY", "ingest", "choice", "wait",
         "what to do with a group that never completes", choices=("wait", "convert")),
    Spec("CONTIMG_STALE_RUN_S", "ingest", "float", 900.0,
         "a group in_progress this long with no live run returns to the queue", positive=True),
    Spec("CONTIMG_CONVERT_TIMEOUT_S", "ingest", "float", 1800.0,
         "a conversion running longer is killed and retried", positive=True),
    Spec("CONTIMG_MAX_ATTEMPTS", "ingest", "int", 5,
         "conversion attempts of a group before it is failed for an operator", minimum=1),
    Spec("CONTIMG_SENSOR_INTERVAL_S", "sensor", "int", 5, "seconds between incoming scans",
         minimum=1),
    # demo feeder
    Spec("CONTIMG_DEMO", "demo", "bool", False, "run the simulated telescope"),
    Spec("CONTIMG_DEMO_CADENCE_S", "demo", "int", 60, "seconds between demo groups", minimum=1),
    Spec("CONTIMG_DEMO_MAX_GROUPS", "demo", "int", 100, "demo groups before the feeder stops"),
    Spec("CONTIMG_DEMO_CALIBRATOR_GROUP", "demo", "int", 2,
         "which demo group (from 0) sees the calibrator transit; its bandpass serves the groups "
         "within 12 h of it", minimum=0),
    Spec("CONTIMG_DEMO_SIZE", "demo", "choice", "small",
         "simulator preset of the demo groups (small: 32 antennas, images photometry can use; "
         "tiny: 6 antennas, faster, sidelobe-limited images)", choices=("tiny", "small", "medium", "full")),
    # disks
    Spec("CONTIMG_DISK_WARN_FREE_GB", "disk", "float", 200.0, "fast disk WARN below this"),
    Spec("CONTIMG_DISK_ERROR_FREE_GB", "disk", "float", 100.0, "fast disk ERROR below this"),
    Spec("CONTIMG_DISK_HOLD_FREE_GB", "disk", "float", 2.0,
         "below this much free on the fast disk, complete groups wait (pending, nothing lost) "
         "instead of converting; 0 turns the hold off", minimum=0.0),
    Spec("CONTIMG_TMPFS_ERROR_PERCENT", "disk", "float", 95.0, "tmpfs ERROR above this",
         maximum=100.0),
    Spec("CONTIMG_GROWTH_MIN_SPAN_H", "disk", "float", 6.0,
         "history span needed before growth and days-until-full are estimated", positive=True),
    Spec("CONTIMG_FAKE_DISK_USAGE", "disk", "text", "",
         "JSON file overriding the free-space figures (rehearsals)"),
    # retention and archive
    Spec("CONTIMG_RETENTION_PROFILE", "retention", "choice", "seed",
         "retention profile", choices=("seed", "phase4")),
    Spec("CONTIMG_RETENTION_APPLY", "retention", "bool", False,
         "delete what the plan allows (default: dry run)"),
    Spec("CONTIMG_MIN_FREE_GB", "retention", "days", None,
         "free-space floor: oldest eligible products go first until it is met"),
    Spec("CONTIMG_RETENTION_ARCHIVE_FIRST", "retention", "bool", "profile",
         "copy raw files and science MS to the remote (verified) before retention deletes them"),
    *(Spec(f"CONTIMG_RETENTION_{kind.upper()}_DAYS", "retention", "days", "profile",
           f"days to keep {kind} (overrides the profile; 'none' keeps them)")
      for kind in RETENTION_TYPES),
    Spec("CONTIMG_LIVE_PARTITION_DAYS", "retention", "days", 30.0,
         "observation-group partitions kept live in Dagster: the newest this many days "
         "(~280 a day); older keys leave the partition set, their history and products stay "
         "('none' keeps every key)", minimum=1.0),
    Spec("CONTIMG_ARCHIVE_QUANTIZE_LEVEL", "archive", "float", 16.0,
         "Rice quantisation of archived images (0: lossless)"),
    Spec("CONTIMG_RCLONE_REMOTE", "archive", "text", "",
         "rclone destination for backups and archives (default: a local directory)",
         secret=True),
    # where a run's steps execute (README, "Multi-node layout")
    Spec("CONTIMG_EXECUTOR", "executor", "choice", "in_process",
         "in_process: each run's steps in its own process; celery: steps on the Celery "
         "workers of the nodes (one queue per heavy pool)", choices=("in_process", "celery")),
    Spec("CONTIMG_CELERY_BROKER", "executor", "text", "",
         "the Redis broker of the Celery workers (also their result backend), "
         "redis://[:password@]host:port/db; required with CONTIMG_EXECUTOR=celery", secret=True),
    # where the state databases live (README, "Multi-node layout")
    Spec("CONTIMG_STATE_URL", "state", "text", "",
         "the state databases on PostgreSQL, postgresql://USER:PASSWORD@HOST:PORT/DB (one "
         "schema per database), reachable from every node; empty: SQLite files in "
         "CONTIMG_STATE_DIR, safe from one host only; required with CONTIMG_EXECUTOR=celery",
         secret=True),
    # alerts and metrics
    Spec("CONTIMG_ALERT_WEBHOOK_URL", "alerts", "url", "",
         "Slack-compatible incoming webhook", secret=True),
    Spec("CONTIMG_METRICS_PORT", "metrics", "int", 9108, "Prometheus port", minimum=1,
         maximum=65535),
    Spec("CONTIMG_UI_PORT", "metrics", "int", 3000, "Dagster UI port", minimum=1, maximum=65535),
    # calibration: the sky model put into MODEL_DATA
    Spec("CONTIMG_NVSS_CATALOG", "calibration", "text", "nvss.tsv",
         "NVSS catalogue (VizieR VIII/65 TSV, CSV or FITS): a file name in static/catalogs/, "
         "a path under static/, or an absolute path"),
    Spec("CONTIMG_SKY_BEAM_LEVEL", "calibration", "float", 0.1,
         "sky-model sources down to this primary-beam power (0..1]", positive=True, maximum=1.0),
    Spec("CONTIMG_SKY_FLUX_FLOOR_JY", "calibration", "float", 0.02,
         "sky-model sources above this apparent (beam-weighted) flux at 1.4 GHz"),
    # calibration: solves, validity, quality limits, staleness and alerts
    Spec("CONTIMG_BANDPASS_VALIDITY_H", "calibration", "float", 24.0,
         "a bandpass (and delay) applies this many hours, centred on its calibrator transit",
         positive=True),
    # 12: half the bandpass's day, so a group with a bandpass always has gains (the transit's
    # own set at worst, as DSA-110's own pipeline applies all day); gain_age WARNs on its image
    Spec("CONTIMG_GAIN_FALLBACK_H", "calibration", "float", 12.0,
         "when a time's own gain solve failed its limits or had no sky model, the active gains "
         "centred within this many hours are applied instead of the group waiting (0: wait for "
         "an operator)",
         minimum=0.0),
    Spec("CONTIMG_GAIN_VALIDITY_H", "calibration", "float", 1.0,
         "a gain set applies this many hours, centred on its group (widened to its whole hour)",
         positive=True),
    Spec("CONTIMG_CAL_REFANT", "calibration", "text", "",
         "reference antenna name (empty: the preferred core antenna with the fewest flags)"),
    Spec("CONTIMG_CAL_DO_K", "calibration", "bool", False, "solve a delay (K) table before the bandpass"),
    Spec("CONTIMG_CAL_GAIN_SOLINT", "calibration", "text", "60s",
         "solution interval of the amplitude+phase gains: inf, int, seconds (60s) or minutes (2min)"),
    Spec("CONTIMG_CAL_MAX_FLAGGED", "calibration", "float", 0.3,
         "a table with more flagged solutions than this fraction fails", maximum=1.0),
    Spec("CONTIMG_CAL_MIN_SNR", "calibration", "float", 5.0, "a table with a lower median SNR fails"),
    Spec("CONTIMG_CAL_MAX_PHASE_SCATTER_DEG", "calibration", "float", 30.0,
         "a gain table with more phase scatter per antenna fails", positive=True),
    Spec("CONTIMG_BANDPASS_WARN_AGE_H", "calibration", "float", 24.0,
         "WARN when a group's bandpass was solved more than this many hours from it", positive=True),
    Spec("CONTIMG_GAIN_WARN_AGE_H", "calibration", "float", 1.0,
         "WARN when a group's gains were solved more than this many hours from it", positive=True),
    Spec("CONTIMG_CAL_GAP_ALERT_MIN", "calibration", "float", 15.0,
         "alert (once per gap) when a group has awaited calibration this many minutes"),
    Spec("CONTIMG_CAL_MAX_GROUP_FLAGGED", "calibration", "float", 0.5,
         "a calibrated group with more flagged data than this fraction fails its check", maximum=1.0),
    Spec("CONTIMG_CAL_FLUX_TOLERANCE", "calibration", "float", 0.1,
         "a calibrator group's corrected amplitude must match its model within this fraction",
         positive=True),
    # imaging: one image per group (contimg.imaging.options.ImagingOptions reads these)
    Spec("CONTIMG_IMAGER", "imaging", "choice", "wsclean", "the imager",
         choices=("wsclean", "tclean")),
    Spec("CONTIMG_IMAGE_SIZE", "imaging", "int", 0, "image side in pixels (0: field / cell)",
         maximum=16384),
    Spec("CONTIMG_IMAGE_FIELD_DEG", "imaging", "float", 3.5, "field of view (side, degrees)",
         positive=True, maximum=30.0),
    Spec("CONTIMG_IMAGE_CELL_ARCSEC", "imaging", "float", 0.0,
         "pixel size (0: CELL_FRACTION x lambda/B_max at the band's top)"),
    Spec("CONTIMG_IMAGE_CELL_FRACTION", "imaging", "float", 0.4,
         "pixel size as a fraction of lambda/B_max when the cell is 0 (0.4: ~6 arcsec, a fifth "
         "of the ~60x18 arcsec restoring beam's geometric mean)", positive=True, maximum=0.5),
    Spec("CONTIMG_IMAGE_WEIGHTING", "imaging", "choice", "briggs", "visibility weighting",
         choices=("briggs", "natural", "uniform")),
    Spec("CONTIMG_IMAGE_ROBUST", "imaging", "float", 0.0, "Briggs robustness", minimum=-2.0,
         maximum=2.0),
    Spec("CONTIMG_IMAGE_NITER", "imaging", "int", 1000, "maximum CLEAN iterations"),
    Spec("CONTIMG_IMAGE_MGAIN", "imaging", "float", 0.9,
         "major-cycle gain (0.9: one major cycle fewer than the pipeline's 0.8 on a bright field, "
         "same residual rms)", positive=True, maximum=1.0),
    Spec("CONTIMG_IMAGE_AUTO_MASK", "imaging", "float", 3.0, "auto-mask level (sigma; 0: off)"),
    Spec("CONTIMG_IMAGE_AUTO_THRESHOLD", "imaging", "float", 0.5,
         "auto-threshold (sigma)", positive=True),
    Spec("CONTIMG_IMAGE_THREADS", "imaging", "int", 0, "imager threads (0: every core)"),
    Spec("CONTIMG_IMAGE_WGRIDDER_ACCURACY", "imaging", "float", 1e-3,
         "WSClean's w-gridder accuracy (1e-3: ~10 s faster than its 1e-4 on a full group, "
         "residual rms the same)", positive=True, maximum=0.1),
    Spec("CONTIMG_IMAGE_BASELINE_AVERAGING", "imaging", "bool", True,
         "WSClean baseline-dependent time averaging (sized by CONTIMG_IMAGE_MAX_SMEARING_LOSS)"),
    Spec("CONTIMG_IMAGE_MAX_SMEARING_LOSS", "imaging", "float", 0.05,
         "largest amplitude loss baseline averaging may cause at the PB-limit radius",
         positive=True, maximum=0.5),
    Spec("CONTIMG_IMAGE_TIMEOUT_S", "imaging", "float", 900.0,
         "an imager running longer is stopped and the group's image fails", positive=True),
    Spec("CONTIMG_PB_LIMIT", "imaging", "float", 0.2,
         "primary-beam level below which the corrected image is blanked", positive=True,
         maximum=1.0),
    Spec("CONTIMG_BEAM_MODEL", "imaging", "text", "",
         "a measured beam FITS under static/beam-model/ (empty: the Airy pattern of a 4.65 m dish)"),
    Spec("CONTIMG_SEFD_JY", "imaging", "float", 5800.0,
         "system equivalent flux density for the radiometer-equation noise", positive=True),
    Spec("CONTIMG_IMAGE_NOISE_WARN_RATIO", "imaging", "float", 2.0,
         "WARN when the image rms exceeds the radiometer expectation by this factor", positive=True),
    # mosaics
    Spec("CONTIMG_PARTITIONS_START", "mosaics", "text", "2025-10-01",
         "first day (YYYY-MM-DD, UTC) of the hourly and daily mosaic partitions"),
    Spec("CONTIMG_MOSAIC_BEAM_CUTOFF", "mosaics", "float", 0.2,
         "mosaic pixels whose combined beam is below this are blanked", positive=True, maximum=1.0),
    Spec("CONTIMG_MOSAIC_GRACE_MIN", "mosaics", "float", 10.0,
         "an hour (day) is mosaicked once the data are this far past its end, or no image "
         "has come for this long"),
    Spec("CONTIMG_DAILY_MOSAIC_CELL_FACTOR", "mosaics", "int", 4,
         "the daily mosaic's cell in image cells (the hourly mosaics' pixels averaged in blocks)",
         minimum=1, maximum=16),
    # photometry and variability
    Spec("CONTIMG_DETECTION_SIGMA", "photometry", "float", 5.0,
         "blind detections: islands above this many times the local rms", positive=True),
    Spec("CONTIMG_PHOTOMETRY_BOX_PX", "photometry", "int", 128,
         "background/noise box side in pixels", minimum=16),
    Spec("CONTIMG_NEW_SOURCE_MAX_RMS_RATIO", "photometry", "float", 1.3,
         "blind detections become new master sources only in images whose rms is within this "
         "factor of the expected noise (a noisier image's excess is artefacts)", positive=True),
    Spec("CONTIMG_MASTER_STRIP_HALF_WIDTH_DEG", "photometry", "float", 3.0,
         "master_sources is seeded from the catalogue within this of the pointing declination",
         positive=True, maximum=30.0),
    Spec("CONTIMG_VARIABILITY_VS", "photometry", "float", 4.3,
         "a pair of measurements this many sigma apart (|Vs|) ...", positive=True),
    Spec("CONTIMG_VARIABILITY_M", "photometry", "float", 0.26,
         "... whose modulation index |m| is at least this makes a candidate", positive=True),
    Spec("CONTIMG_VARIABILITY_SIGMA", "photometry", "float", 3.0,
         "or eta and V both this many sigma above their (log) distributions", positive=True),
    Spec("CONTIMG_VARIABILITY_MIN_EPOCHS", "photometry", "int", 3,
         "sources with fewer measurements are not judged", minimum=2),
    Spec("CONTIMG_VARIABILITY_REFRESH_IMAGES", "photometry", "int", 12,
         "while a day is under way, its variability pass is re-run every this many new images "
         "(12: hourly at the telescope's cadence; 0: only once the day is over)"),
)
SECTIONS = sorted({spec.section for spec in SPECS})
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    """Every setting's validated value and where it came from, plus the storage layout."""

    values: Mapping[str, object]
    origins: Mapping[str, str]
    layout: StorageLayout
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __getitem__(self, variable: str) -> object:
        return self.values[variable]

    def get(self, variable: str) -> object:
        """The value of one setting (KeyError for a name not in SPECS)."""
        return self.values[variable]

    def describe(self) -> list[str]:
        """One line per setting: name, value (secrets masked) and origin."""
        lines = []
        for spec in SPECS:
            value = self.values[spec.variable]
            shown = masked(spec, str(value)) if spec.secret and value else value
            lines.append(f"{spec.variable:34s} {shown!s:24s} ({self.origins[spec.variable]})")
        return lines


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read, validate and return every setting (cached while the inputs are unchanged)."""
    env = dict(os.environ if environ is None else environ)
    config = env.get("CONTIMG_CONFIG") or ""
    try:
        stamp = os.stat(config).st_mtime_ns if config else 0
    except OSError:
        stamp = -1
    key = (tuple(sorted((k, v) for k, v in env.items() if k.startswith("CONTIMG_"))), stamp)
    cached = _CACHE.get(key)
    if cached is None:
        cached = _build(env)
        _CACHE.clear()  # one live configuration per process is the norm
        _CACHE[key] = cached
    return cached


_CACHE: dict[tuple, Settings] = {}


def state_url(environ: Mapping[str, str] | None = None) -> str:
    """CONTIMG_STATE_URL ("" = SQLite files), read on every state database opening: from
    the environment at once, else from the settings file (the whole load, cached)."""
    env = os.environ if environ is None else environ
    if "CONTIMG_STATE_URL" in env or not env.get("CONTIMG_CONFIG"):
        return env.get("CONTIMG_STATE_URL", "").strip()
    return str(load_settings(env)["CONTIMG_STATE_URL"])


def _build(env: Mapping[str, str]) -> Settings:
    try:
        layout = resolve_layout(env)
    except LayoutError as exc:
        raise SettingsError(str(exc)) from exc
    file_values = _read_sections(env.get("CONTIMG_CONFIG"))
    values: dict[str, object] = {}
    origins: dict[str, str] = {}
    for spec in SPECS:
        raw = env.get(spec.variable)
        if raw is not None:
            values[spec.variable] = parse_value(spec, raw, spec.variable)
            origins[spec.variable] = "environment"
        elif spec.key in file_values.get(spec.section, {}):
            where = f"[{spec.section}] {spec.key} in {env['CONTIMG_CONFIG']}"
            values[spec.variable] = parse_value(spec, file_values[spec.section][spec.key], where)
            origins[spec.variable] = "config file"
        else:
            values[spec.variable] = spec.default
            origins[spec.variable] = "default"
    _check_relations(values)
    return Settings(values, origins, layout, dict(env))


def parse_value(spec: Spec, raw: object, where: str) -> object:
    """Turn one raw value (environment text or TOML value) into the spec's type, or raise."""
    shown = masked(spec, str(raw)) if spec.secret else repr(raw)
    if isinstance(spec.default, str) and spec.default and raw == spec.default:
        return raw  # a word default such as "profile", written out
    if isinstance(raw, str):
        text = raw.strip()
        if text == "" and spec.kind not in ("text", "url", "days"):
            raise SettingsError(f"{where} is empty. Fix: set it to {_expect(spec)} or unset it.")
    if spec.kind in ("int", "float"):
        return _number(spec, raw, where, shown)
    if spec.kind == "days":
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none", "indefinite")):
            return None
        return _number(spec, raw, where, shown)
    if spec.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise SettingsError(f"{where}={shown} is not a yes/no value. Fix: use 1 or 0.")
    if not isinstance(raw, str):
        raise SettingsError(f"{where}={shown} must be text. Fix: quote it, e.g. {spec.key} = \"...\".")
    text = raw.strip()
    if spec.kind == "choice":
        if text not in spec.choices:
            raise SettingsError(f"{where}={shown} is not one of {list(spec.choices)}. "
                                f"Fix: use one of them.")
        return text
    if spec.kind == "url" and text:
        check_url(text, where)
    return text


def check_url(url: str, where: str) -> None:
    """An http(s) URL with a host, or SettingsError (which never prints the URL's path)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{where} is not an http(s) URL with a host (it looks like "
                            f"{mask(url)}). Fix: use the full webhook URL, "
                            "e.g. https://hooks.slack.com/services/...")


def masked(spec: Spec, value: str) -> str:
    """A secret setting shown safely: a URL as scheme and host, a remote with its
    connection-string values and passwords replaced by ***."""
    return mask(value) if spec.kind == "url" else redact_remote(value)


def mask(value: str) -> str:
    """A secret shown safely: scheme and host of a URL, or the part before ':' of a remote."""
    parts = urlsplit(value)
    if parts.scheme and parts.hostname:
        return f"{parts.scheme}://{parts.hostname}/***"
    if ":" in value and "/" not in value.split(":", 1)[0]:
        return value.split(":", 1)[0] + ":***"
    return "***" if value else ""


def _number(spec: Spec, raw: object, where: str, shown: str) -> float | int:
    if isinstance(raw, bool):
        raise SettingsError(f"{where}={shown} must be a number. Fix: write {_expect(spec)}.")
    try:
        number = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SettingsError(f"{where}={shown} is not a number. Fix: write {_expect(spec)}.") from None
    if not math.isfinite(number):
        raise SettingsError(f"{where}={shown} is not a finite number. Fix: write {_expect(spec)}.")
    if spec.kind == "int":
        if number != int(number):
            raise SettingsError(f"{where}={shown} must be a whole number. Fix: write {_expect(spec)}.")
        number = int(number)
    if ((spec.positive and number <= 0) or (spec.minimum is not None and number < spec.minimum)
            or (spec.maximum is not None and number > spec.maximum)):
        raise SettingsError(f"{where}={shown} is out of range. Fix: write {_expect(spec)}.")
    return number


def _expect(spec: Spec) -> str:
    if spec.kind in ("int", "float", "days"):
        noun = "a whole number" if spec.kind == "int" else "a number"
        low = "> 0" if spec.positive else (f">= {spec.minimum:g}" if spec.minimum is not None else "")
        high = f" and <= {spec.maximum:g}" if spec.maximum is not None else ""
        extra = " (or 'none')" if spec.kind == "days" else ""
        return f"{noun} {low}{high}{extra}".replace("  ", " ")
    if spec.kind == "bool":
        return "1 or 0"
    if spec.kind == "choice":
        return " or ".join(spec.choices)
    return "a text value"


SOLINT = re.compile(r"inf|int|[0-9]+(\.[0-9]+)?(s|min)")


def _is_date(text: str) -> bool:
    """A real calendar date written YYYY-MM-DD."""
    from datetime import datetime

    try:
        return datetime.strptime(text, "%Y-%m-%d").strftime("%Y-%m-%d") == text
    except ValueError:
        return False


def _check_relations(values: Mapping[str, object]) -> None:
    if values["CONTIMG_EXECUTOR"] == "celery":
        broker = urlsplit(str(values["CONTIMG_CELERY_BROKER"]))
        if broker.scheme not in ("redis", "rediss") or not broker.hostname:
            shown = mask(str(values["CONTIMG_CELERY_BROKER"])) or "unset"
            raise SettingsError("CONTIMG_EXECUTOR=celery needs CONTIMG_CELERY_BROKER, the Redis "
                                f"broker's URL (it is {shown}). Fix: set it, e.g. "
                                "redis://redis-host:6379/0.")
        if not values["CONTIMG_STATE_URL"]:
            raise SettingsError("CONTIMG_EXECUTOR=celery runs steps on several nodes, and each "
                                "writes the state databases: SQLite files are safe from one host "
                                "only. Fix: set CONTIMG_STATE_URL to a PostgreSQL database every "
                                "node reaches, e.g. postgresql://contimg:PASSWORD@head:5432/contimg_state.")
    if values["CONTIMG_STATE_URL"]:
        try:
            check_state_url(str(values["CONTIMG_STATE_URL"]))
        except StateUrlError as exc:
            raise SettingsError(str(exc)) from None
    if not SOLINT.fullmatch(str(values["CONTIMG_CAL_GAIN_SOLINT"])):
        raise SettingsError(f"CONTIMG_CAL_GAIN_SOLINT={values['CONTIMG_CAL_GAIN_SOLINT']!r} is not a "
                            "solution interval. Fix: use inf, int, seconds (60s) or minutes (2min).")
    if not _is_date(str(values["CONTIMG_PARTITIONS_START"])):
        raise SettingsError(f"CONTIMG_PARTITIONS_START={values['CONTIMG_PARTITIONS_START']!r} is not a "
                            "date. Fix: write YYYY-MM-DD (quoted in TOML), e.g. 2025-10-01.")
    if values["CONTIMG_DISK_ERROR_FREE_GB"] > values["CONTIMG_DISK_WARN_FREE_GB"]:  # type: ignore[operator]
        raise SettingsError("CONTIMG_DISK_ERROR_FREE_GB must not exceed CONTIMG_DISK_WARN_FREE_GB. "
                            "Fix: lower the error threshold or raise the warning one.")
    if values["CONTIMG_DISK_HOLD_FREE_GB"] > values["CONTIMG_DISK_ERROR_FREE_GB"]:  # type: ignore[operator]
        raise SettingsError("CONTIMG_DISK_HOLD_FREE_GB must not exceed CONTIMG_DISK_ERROR_FREE_GB "
                            "(the hold is the last line, after the ERROR alert). Fix: lower the "
                            "hold or raise the error threshold.")


def _read_sections(path_text: str | None) -> dict[str, dict[str, object]]:
    """The TOML file's setting tables (not [paths], which the layout reads), checked."""
    if not path_text:
        return {}
    path = Path(path_text).expanduser()
    data = tomllib.loads(path.read_text())  # the layout already reported a missing/bad file
    tables: dict[str, dict[str, object]] = {}
    known_keys = {s: {spec.key for spec in SPECS if spec.section == s} for s in SECTIONS}
    for section, content in data.items():
        if section == "paths":
            continue
        if section not in known_keys or not isinstance(content, dict):
            raise SettingsError(f"CONTIMG_CONFIG={path}: unknown table [{section}]. Fix: use "
                                f"[paths] or one of {['[' + s + ']' for s in SECTIONS]}.")
        for key in content:
            if key not in known_keys[section]:
                raise SettingsError(f"CONTIMG_CONFIG={path}: unknown key {section}.{key}. Fix: "
                                    f"use one of {sorted(known_keys[section])}.")
        tables[section] = content
    return tables
