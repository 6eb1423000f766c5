"""Small time conversions shared by every stage (no astropy import on hot paths)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_UNIX_EPOCH_MJD = 40587.0


def datetime_to_mjd(moment: datetime) -> float:
    """Modified Julian Date (UTC) of a datetime; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() / 86400.0 + _UNIX_EPOCH_MJD


def mjd_to_datetime(mjd: float) -> datetime:
    """UTC datetime of a Modified Julian Date."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=mjd - _UNIX_EPOCH_MJD)


def jd_to_datetime(jd: float) -> datetime:
    """UTC datetime of a Julian Date."""
    return mjd_to_datetime(jd - 2400000.5)
