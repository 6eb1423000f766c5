"""Small time conversions shared by every stage (no astropy import on hot paths)."""

from __future__ import annotations

from datetime import UTC, datetime

_UNIX_EPOCH_MJD = 40587.0


def datetime_to_mjd(moment: datetime) -> float:
    """Modified Julian Date (UTC) of a datetime; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() / 86400.0 + _UNIX_EPOCH_MJD


def mjd_to_datetime(mjd: float) -> datetime:
    """The UTC datetime of a Modified Julian Date (the inverse of `datetime_to_mjd`)."""
    return datetime.fromtimestamp((float(mjd) - _UNIX_EPOCH_MJD) * 86400.0, tz=UTC)


def iso_to_epoch(iso: str) -> float:
    """Unix seconds of a `YYYY-MM-DDTHH:MM:SS` UTC text (the state databases' `created`)."""
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
