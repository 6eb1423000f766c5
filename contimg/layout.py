"""The storage layout of the seed's architecture, resolved from the environment.

Sources, highest first: environment variables (the seed's `CONTIMG_*` names), an
optional TOML file named by `CONTIMG_CONFIG` (a `[paths]` table whose keys are the
variable names without the `CONTIMG_` prefix, lower case), then defaults under one
local folder (`CONTIMG_HOME`, default `./var`). Plain Python: no Dagster here.
"""

from __future__ import annotations

import os
import re
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from contimg import naming

MS_KINDS = ("calibrators", "science", "failed")
APP_NAME = "contimg"


class LayoutError(RuntimeError):
    """A configured location is unusable; the message names the variable, path and fix."""


@dataclass(frozen=True)
class PathSetting:
    """One configurable location: its variable, its default relative to a base, its role."""

    variable: str
    default_base: str  # "persistent", "stage", "home" or "tmpfs"
    default_relative: str
    description: str


# Every location of the seed's architecture. The persistent side (the seed's /data/)
# holds state, config, logs and backups; the fast side (/stage/) holds the data flow.
SETTINGS: tuple[PathSetting, ...] = (
    PathSetting("CONTIMG_DATA_DIR", "home", "data", "persistent root (state, config, logs)"),
    PathSetting("CONTIMG_SCRATCH_DIR", "home", "stage", "fast-disk root (the seed's /stage)"),
    PathSetting("CONTIMG_STATE_DIR", "persistent", "state", "SQLite state databases"),
    PathSetting("CONTIMG_CONFIG_DIR", "persistent", "config", "configuration files"),
    PathSetting("CONTIMG_LOG_DIR", "persistent", "logs", "application and CASA logs"),
    PathSetting("CONTIMG_BACKUP_DIR", "persistent", "backups", "database backups"),
    PathSetting("CONTIMG_INPUT_DIR", "stage", "incoming", "raw UVH5 files (ingest point)"),
    PathSetting("CONTIMG_OUTPUT_DIR", "stage", "ms", "Measurement Sets and calibration tables"),
    PathSetting("CONTIMG_IMAGES_DIR", "stage", "images", "single-group images"),
    PathSetting("CONTIMG_MOSAICS_DIR", "stage", "mosaics", "mosaic images"),
    PathSetting("CONTIMG_PHOTOMETRY_DIR", "stage", "photometry",
                "source measurements (Parquet, date=YYYY-MM-DD/) and light curves"),
    PathSetting("CONTIMG_STATIC_DIR", "stage", "static", "beam model, catalogues, imaging config"),
    PathSetting("CONTIMG_TMP_DIR", "stage", "tmp", "transient files (staging, parts, cache)"),
    PathSetting("CONTIMG_ARCHIVE_DIR", "stage", "archive", "long-term storage staging"),
    PathSetting("CONTIMG_TMPFS_DIR", "tmpfs", APP_NAME, "tmpfs staging root (/dev/shm/<app>)"),
)
SETTING_BY_NAME = {s.variable: s for s in SETTINGS}


@dataclass(frozen=True)
class StorageLayout:
    """Every resolved location, plus where each value came from."""

    paths: Mapping[str, Path]
    origins: Mapping[str, str] = field(default_factory=dict)

    state_dir = property(lambda self: self.paths["CONTIMG_STATE_DIR"])
    config_dir = property(lambda self: self.paths["CONTIMG_CONFIG_DIR"])
    logs_dir = property(lambda self: self.paths["CONTIMG_LOG_DIR"])
    backups_dir = property(lambda self: self.paths["CONTIMG_BACKUP_DIR"])
    incoming_dir = property(lambda self: self.paths["CONTIMG_INPUT_DIR"])
    ms_dir = property(lambda self: self.paths["CONTIMG_OUTPUT_DIR"])
    images_dir = property(lambda self: self.paths["CONTIMG_IMAGES_DIR"])
    mosaics_dir = property(lambda self: self.paths["CONTIMG_MOSAICS_DIR"])
    photometry_dir = property(lambda self: self.paths["CONTIMG_PHOTOMETRY_DIR"])
    static_dir = property(lambda self: self.paths["CONTIMG_STATIC_DIR"])
    tmp_dir = property(lambda self: self.paths["CONTIMG_TMP_DIR"])
    archive_dir = property(lambda self: self.paths["CONTIMG_ARCHIVE_DIR"])
    tmpfs_root = property(lambda self: self.paths["CONTIMG_TMPFS_DIR"])

    @property
    def staging_dir(self) -> Path:
        """Scratch-SSD staging, used when tmpfs lacks room."""
        return self.tmp_dir / "staging"

    def ms_date_dir(self, kind: str, moment: object) -> Path:
        """`ms/{calibrators,science,failed}/YYYY-MM-DD/` for a time (datetime or ISO)."""
        if kind not in MS_KINDS:
            raise ValueError(f"unknown MS kind {kind!r}; expected one of {MS_KINDS}")
        return self.ms_dir / kind / naming.date_dir(moment)  # type: ignore[arg-type]

    def image_set_dir(self, moment: object) -> Path:
        """`images/YYYY-MM-DD/<ts>.img/`: one group's image products."""
        return self.images_dir / naming.date_dir(moment) / naming.image_set_name(moment)  # type: ignore[arg-type]

    def failed_image_set_dir(self, moment: object) -> Path:
        """`images/failed/YYYY-MM-DD/<ts>.img.failed-<time>/`: what a failed imaging of the
        group left in its workspace (the imager's log among it), kept for the operator."""
        return (self.images_dir / "failed" / naming.date_dir(moment)  # type: ignore[arg-type]
                / f"{naming.image_set_name(moment)}.failed-{time.strftime('%Y%m%dT%H%M%S')}")  # type: ignore[arg-type]

    def mosaic_set_dir(self, kind: str, moment: object) -> Path:
        """`mosaics/{hourly,daily}/YYYY-MM-DD/<name>.mosaic/`: one mosaic's products."""
        return (self.mosaics_dir / kind / naming.date_dir(moment)  # type: ignore[arg-type]
                / naming.mosaic_set_name(kind, moment))  # type: ignore[arg-type]

    def database_path(self, name: str) -> Path:
        """Path of a state database, e.g. `ingest` -> state/ingest.sqlite3."""
        return self.state_dir / f"{name}.sqlite3"

    def directories(self) -> dict[str, Path]:
        """Every directory the platform expects, keyed by a short name."""
        dirs: dict[str, Path] = {s.variable: self.paths[s.variable] for s in SETTINGS}
        for kind in MS_KINDS:
            dirs[f"ms/{kind}"] = self.ms_dir / kind
        for sub in ("beam-model", "catalogs", "config"):
            dirs[f"static/{sub}"] = self.static_dir / sub
        for sub in ("staging", "parts", "cache"):
            dirs[f"tmp/{sub}"] = self.tmp_dir / sub
        for sub in ("ms", "images", "catalogs"):
            dirs[f"archive/{sub}"] = self.archive_dir / sub
        return dirs

    def storage_locations(self) -> dict[str, Path]:
        """Base directory of each kind of product, by the seed's storage_locations names."""
        return {
            "incoming": self.incoming_dir, "ms_files": self.ms_dir,
            "calibration_tables": self.ms_dir / "calibrators",
            "science_ms": self.ms_dir / "science", "failed_ms": self.ms_dir / "failed",
            "images": self.images_dir, "mosaics": self.mosaics_dir,
            "archive": self.archive_dir, "state": self.state_dir, "backups": self.backups_dir,
        }

    def monitored_areas(self) -> dict[str, Path]:
        """The areas whose file counts, bytes and ages the storage monitor tracks."""
        return {
            "incoming": self.incoming_dir, "ms_calibrators": self.ms_dir / "calibrators",
            "ms_science": self.ms_dir / "science", "ms_failed": self.ms_dir / "failed",
            "images": self.images_dir, "mosaics": self.mosaics_dir,
            "archive": self.archive_dir, "state": self.state_dir,
        }

    def ensure(self) -> StorageLayout:
        """Create missing directories and check that each is writable.

        Raises LayoutError naming the variable, the path and the fix. The tmpfs root
        is optional: when /dev/shm is unusable, staging falls back to the scratch disk.
        """
        for name, path in self.directories().items():
            if name == "CONTIMG_TMPFS_DIR":
                continue
            _ensure_writable_dir(self._variable_for(name), path, self.origins)
        return self

    def tmpfs_usable(self) -> bool:
        """True when the tmpfs root exists (or can be made) and is writable."""
        try:
            self.tmpfs_root.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return os.access(self.tmpfs_root, os.W_OK)

    def _variable_for(self, name: str) -> str:
        if name in SETTING_BY_NAME:
            return name
        parent = {"ms": "CONTIMG_OUTPUT_DIR", "static": "CONTIMG_STATIC_DIR",
                  "tmp": "CONTIMG_TMP_DIR", "archive": "CONTIMG_ARCHIVE_DIR"}
        return parent[name.split("/")[0]]


def resolve_layout(
    environ: Mapping[str, str] | None = None, *, home: Path | None = None
) -> StorageLayout:
    """Resolve every location from the environment, the optional TOML file and defaults."""
    env = dict(os.environ if environ is None else environ)
    for variable in ("CONTIMG_HOME", *SETTING_BY_NAME):
        _refuse_inline_comment(variable, env.get(variable, ""))
    file_values = _read_config_file(env.get("CONTIMG_CONFIG"))
    home_path = Path(env.get("CONTIMG_HOME") or file_values.get("CONTIMG_HOME") or home
                     or default_home()).expanduser()
    paths: dict[str, Path] = {}
    origins: dict[str, str] = {}
    for setting in SETTINGS:
        if setting.variable in env and not env[setting.variable].strip():
            raise LayoutError(f"{setting.variable} is set but empty. Fix: unset it or give a path.")
        if env.get(setting.variable):
            value, origin = env[setting.variable], "environment"
        elif setting.variable in file_values:
            value, origin = file_values[setting.variable], f"config file {env['CONTIMG_CONFIG']}"
        else:
            base = _default_base(setting.default_base, home_path, paths)
            value, origin = str(base / setting.default_relative), "default"
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = (Path.cwd() / path).resolve()
        paths[setting.variable], origins[setting.variable] = path, origin
    return StorageLayout(paths=paths, origins=origins)


def _refuse_inline_comment(variable: str, value: str) -> None:
    """An environment file (systemd's EnvironmentFile=, docker's --env-file) keeps all that
    follows `=` as the value, so `CONTIMG_HOME=/data  # note` would make a directory named
    with the note: refused, naming the variable and the fix."""
    if re.search(r"\s#", value):
        raise LayoutError(
            f"{variable}={value!r} holds a comment: an environment file keeps everything after "
            "'=' as the value. Fix: put the comment on a line of its own.")


def default_home() -> Path:
    """The embedded default: `var/` in the repository (or the current directory)."""
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").exists():
        return repo / "var"
    return Path.cwd() / "var"


def _default_base(kind: str, home: Path, resolved: Mapping[str, Path]) -> Path:
    if kind == "home":
        return home
    if kind == "persistent":
        return resolved["CONTIMG_DATA_DIR"]
    if kind == "stage":
        return resolved["CONTIMG_SCRATCH_DIR"]
    return Path("/dev/shm")


def _read_config_file(path_text: str | None) -> dict[str, str]:
    if not path_text:
        return {}
    path = Path(path_text).expanduser()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise LayoutError(
            f"CONTIMG_CONFIG={path}: file not found. Fix: create it or unset CONTIMG_CONFIG."
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise LayoutError(
            f"CONTIMG_CONFIG={path}: not valid TOML ({exc}). Fix the syntax of the file."
        ) from exc
    section = data.get("paths", {})
    if not isinstance(section, dict):
        raise LayoutError(f"CONTIMG_CONFIG={path}: [paths] must be a table of name = \"path\".")
    values: dict[str, str] = {}
    for key, value in section.items():
        variable = "CONTIMG_" + key.upper()
        if variable not in SETTING_BY_NAME and variable != "CONTIMG_HOME":
            known = ", ".join(s.variable[len("CONTIMG_"):].lower() for s in SETTINGS)
            raise LayoutError(
                f"CONTIMG_CONFIG={path}: unknown key paths.{key}. Fix: use one of home, {known}."
            )
        if not isinstance(value, str) or not value.strip():
            raise LayoutError(
                f"CONTIMG_CONFIG={path}: paths.{key} = {value!r} is not a path. "
                f"Fix: write it as a quoted, non-empty string, e.g. {key} = \"/data/{key}\"."
            )
        values[variable] = value
    return values


def _ensure_writable_dir(variable: str, path: Path, origins: Mapping[str, str]) -> None:
    origin = origins.get(variable, "default")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise LayoutError(
            f"{variable}={path} ({origin}): a file is in the way of this directory. "
            f"Fix: move the file away or set {variable} to a directory path."
        ) from exc
    except OSError as exc:
        raise LayoutError(
            f"{variable}={path} ({origin}): cannot create the directory ({exc.strerror}). "
            f"Fix: set {variable} to a location you can write, or create it and grant write access."
        ) from exc
    if not path.is_dir():
        raise LayoutError(
            f"{variable}={path} ({origin}): exists but is not a directory. "
            f"Fix: set {variable} to a directory path."
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise LayoutError(
            f"{variable}={path} ({origin}): directory is not writable by this user. "
            f"Fix: grant write access (chmod/chown) or set {variable} elsewhere."
        )
